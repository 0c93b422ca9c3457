package httpapi

import (
	"context"
	"net/http"

	"github.com/contactcenter/agentd/agent"
	"github.com/labstack/echo/v4"
)

// useCase is one agent.Service method bound to its arguments.
type useCase func(ctx context.Context, call useCaseCall) (agent.Result, error)

func (s *Server) handleLogin(c echo.Context) error {
	return s.run(c, false, func(ctx context.Context, call useCaseCall) (agent.Result, error) {
		return s.agents.Login(ctx, call.agentID, agent.SourceAPI)
	})
}

func (s *Server) handleLogout(c echo.Context) error {
	return s.run(c, false, func(ctx context.Context, call useCaseCall) (agent.Result, error) {
		return s.agents.Logout(ctx, call.agentID, agent.SourceAPI)
	})
}

func (s *Server) handlePause(c echo.Context) error {
	return s.run(c, true, func(ctx context.Context, call useCaseCall) (agent.Result, error) {
		return s.agents.Pause(ctx, call.agentID, call.pauseID, agent.SourceAPI)
	})
}

func (s *Server) handleUnpause(c echo.Context) error {
	return s.run(c, true, func(ctx context.Context, call useCaseCall) (agent.Result, error) {
		return s.agents.Unpause(ctx, call.agentID, call.pauseID, agent.SourceAPI)
	})
}

// run decodes the body, calls the use case under the request timeout and
// writes its result. The authenticated agent is already in the request
// state.
func (s *Server) run(c echo.Context, needsPauseID bool, call useCase) error {
	state := stateOf(c)
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	args, err := body.useCaseArgs(state.agentID, needsPauseID)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), s.requestTimeout)
	defer cancel()
	result, err := call(ctx, args)
	if err != nil {
		return s.useCaseError(err, args, state.requestID)
	}
	return c.JSON(http.StatusOK, newStatusResponse(result, state.lang))
}

// statusResponse is the JSON of a successful request.
type statusResponse struct {
	Status    string            `json:"status"`
	AgentID   string            `json:"agent_id"`
	State     agent.State       `json:"state"`
	Effective agent.State       `json:"effective_state"`
	PauseID   string            `json:"pause_id,omitempty"`
	PauseName string            `json:"pause_name,omitempty"`
	PauseType agent.PauseType   `json:"pause_type,omitempty"`
	Since     string            `json:"since,omitempty"`
	Queues    []queueResponse   `json:"queues"`
	Warnings  []warningResponse `json:"warnings,omitempty"`
}

type queueResponse struct {
	Name    string `json:"name"`
	Penalty int    `json:"penalty"`
	Paused  bool   `json:"paused"`
}

type warningResponse struct {
	Code    string `json:"code"`
	Queue   string `json:"queue,omitempty"`
	Message string `json:"message"`
}

// sinceLayout is RFC 3339 in UTC with milliseconds, such as
// 2026-12-04T20:15:03.123Z.
const sinceLayout = "2006-01-02T15:04:05.000Z07:00"

// newStatusResponse builds the success JSON. queues lists the members the
// session applied to Asterisk, each paused when the session is paused.
func newStatusResponse(result agent.Result, lang language) statusResponse {
	st := result.Status
	resp := statusResponse{
		Status:    "OK",
		AgentID:   st.Agent.ID,
		State:     st.Session.State,
		Effective: st.Session.Effective(),
		Queues:    make([]queueResponse, 0, len(st.Session.Members)),
	}
	if st.Session.Paused() && st.Pause != nil {
		resp.PauseID = st.Pause.ID
		resp.PauseName = st.Pause.Name
		resp.PauseType = st.Pause.Type
	}
	if !st.Session.Since.IsZero() {
		resp.Since = st.Session.Since.UTC().Format(sinceLayout)
	}
	for _, m := range st.Session.Members {
		resp.Queues = append(resp.Queues, queueResponse{Name: m.Queue, Penalty: m.Penalty, Paused: st.Session.Paused()})
	}
	for _, w := range result.Warnings {
		resp.Warnings = append(resp.Warnings, warningResponse{Code: w.Code, Queue: w.Queue, Message: warningMessage(w, lang)})
	}
	return resp
}

func warningMessage(w agent.Warning, lang language) string {
	if w.Code == agent.WarningNoSuchQueue {
		return lang.format(msgWarningNoSuchQueue, w.Queue)
	}
	return lang.format(msgWarningUnknownCondition, w.Code, w.Queue)
}

// Compile-time check that the domain service satisfies Agents.
var _ Agents = (*agent.Service)(nil)
