package httpapi

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/contactcenter/agentd/agent"
	"github.com/labstack/echo/v4"
)

// Error codes of the API. The codes shared with FastAGI come from package
// agent. Codes are part of the API: never rename one.
const (
	codeInvalidRequest       = "invalid_request"
	codeUnauthenticated      = "unauthenticated"
	codeForbidden            = agent.CodeUnknownAgent
	codeNotFound             = "not_found"
	codeMethodNotAllowed     = "method_not_allowed"
	codeNotLoggedIn          = agent.CodeNotLoggedIn
	codePauseMismatch        = agent.CodePauseMismatch
	codeRequestTooLarge      = "request_too_large"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeUnknownPause         = agent.CodeUnknownPause
	codeAsteriskError        = agent.CodeAsteriskError
	codeAsteriskUnavailable  = agent.CodeAsteriskUnavailable
	codeStoreUnavailable     = agent.CodeStoreUnavailable
	codeTimeout              = agent.CodeTimeout
	codeInternal             = agent.CodeInternal
)

// statusByCode maps each error code to its HTTP status.
var statusByCode = map[string]int{
	codeInvalidRequest:       http.StatusBadRequest,
	codeUnauthenticated:      http.StatusUnauthorized,
	codeForbidden:            http.StatusForbidden,
	codeNotFound:             http.StatusNotFound,
	codeMethodNotAllowed:     http.StatusMethodNotAllowed,
	codeNotLoggedIn:          http.StatusConflict,
	codePauseMismatch:        http.StatusConflict,
	codeRequestTooLarge:      http.StatusRequestEntityTooLarge,
	codeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	codeUnknownPause:         http.StatusUnprocessableEntity,
	codeAsteriskError:        http.StatusBadGateway,
	codeAsteriskUnavailable:  http.StatusServiceUnavailable,
	codeStoreUnavailable:     http.StatusServiceUnavailable,
	codeTimeout:              http.StatusGatewayTimeout,
	codeInternal:             http.StatusInternalServerError,
}

// codeByEchoStatus maps the statuses of echo.HTTPError values that handlers
// of mounted routes may return to the API's codes.
var codeByEchoStatus = map[int]string{
	http.StatusBadRequest:            codeInvalidRequest,
	http.StatusUnauthorized:          codeUnauthenticated,
	http.StatusForbidden:             codeForbidden,
	http.StatusRequestEntityTooLarge: codeRequestTooLarge,
	http.StatusUnsupportedMediaType:  codeUnsupportedMediaType,
}

// retryAfterSeconds is the Retry-After value sent with 503 responses. It
// is an estimate of how long a reconnect to Asterisk or to the store takes,
// not a measured time.
const retryAfterSeconds = 5

// apiError is a failed request: the error code, the message to render in
// the caller's language, and the cause to log.
type apiError struct {
	code  string
	msg   messageID
	args  []any
	cause error
	// invalidToken adds error="invalid_token" to the Bearer challenge
	// (RFC 6750 section 3.1) when a bearer token was sent and rejected.
	invalidToken bool
}

func newAPIError(code string, msg messageID, args ...any) *apiError {
	return &apiError{code: code, msg: msg, args: args}
}

// withCause sets the error that is logged with the response.
func (e *apiError) withCause(cause error) *apiError {
	e.cause = cause
	return e
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.code + ": " + e.cause.Error()
	}
	return e.code
}

func (e *apiError) Unwrap() error {
	return e.cause
}

func (e *apiError) status() int {
	if status, ok := statusByCode[e.code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// useCaseCall contains the arguments a handler passes to a use case. Error
// messages quote them.
type useCaseCall struct {
	agentID string
	pauseID string
}

// useCaseError maps an error of an agent.Service method to the response:
// agent.ErrorCode gives the code, statusByCode the HTTP status.
func (s *Server) useCaseError(err error, call useCaseCall, requestID string) *apiError {
	code := agent.ErrorCode(err)
	e := &apiError{code: code, cause: err}
	switch code {
	case codeForbidden:
		e.msg, e.args = msgAgentNotInDirectory, []any{call.agentID}
	case codeNotLoggedIn:
		e.msg, e.args = msgAgentNotLoggedIn, []any{call.agentID}
	case codePauseMismatch:
		e.msg, e.args = s.pauseMismatchMessage(call)
	case codeUnknownPause:
		e.msg, e.args = s.unknownPauseMessage(call)
	case codeAsteriskError:
		e.msg, e.args = asteriskErrorMessage(err)
	case codeAsteriskUnavailable:
		e.msg, e.args = msgAsteriskDisconnected, []any{retryAfterSeconds}
	case codeStoreUnavailable:
		e.msg, e.args = msgStoreFailed, []any{retryAfterSeconds}
		if errors.Is(err, agent.ErrNotRestored) {
			e.msg = msgSessionsNotRead
		}
	case codeTimeout:
		e.msg, e.args = msgDeadlineExceeded, []any{s.requestTimeout.String()}
	default:
		e.msg, e.args = msgInternalWithID, []any{requestID}
	}
	return e
}

// pauseMismatchMessage names the agent's current pause, read again after
// the use case failed, so the caller knows which pause_id ends it.
func (s *Server) pauseMismatchMessage(call useCaseCall) (messageID, []any) {
	st, err := s.agents.Status(call.agentID)
	if err != nil || !st.Session.Paused() {
		return msgAgentNotInPause, []any{call.agentID, call.pauseID}
	}
	current := st.Session.PauseID
	return msgAgentInOtherPause, []any{call.agentID, current, call.pauseID, current}
}

// maxListedPauseIDs bounds the pause ids that an unknown_pause message
// lists, so that a large catalog keeps the message short.
const maxListedPauseIDs = 20

// unknownPauseMessage lists the pause ids of the directory in force, so
// the caller sees which ids it may send.
func (s *Server) unknownPauseMessage(call useCaseCall) (messageID, []any) {
	var ids []string
	if dir := s.directory(); dir != nil {
		for _, p := range dir.Pauses() {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return msgPauseNotInCatalog, []any{call.pauseID}
	}
	return msgPauseNotInList, []any{call.pauseID, listPauseIDs(ids)}
}

// listPauseIDs sorts ids with comparePauseIDs and joins the first
// maxListedPauseIDs of them, adding "..." when it leaves some out.
func listPauseIDs(ids []string) string {
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, comparePauseIDs)
	if len(sorted) <= maxListedPauseIDs {
		return strings.Join(sorted, ", ")
	}
	return strings.Join(sorted[:maxListedPauseIDs], ", ") + ", ..."
}

// comparePauseIDs orders numeric ids by value, so 2 comes before 10, and
// before the other ids, which sort as strings. Ids of equal value, such
// as 0 and 00, sort as strings.
func comparePauseIDs(a, b string) int {
	aNumeric, bNumeric := isDigits(a), isDigits(b)
	switch {
	case aNumeric && bNumeric:
		// Without leading zeros, the longer digit string is the larger
		// number, and digit strings of equal length compare as strings.
		x, y := strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if c := cmp.Compare(len(x), len(y)); c != 0 {
			return c
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	case aNumeric:
		return -1
	case bNumeric:
		return 1
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// asteriskErrorMessage quotes the AMI action and Asterisk's own message.
// Neither carries credentials: the AMI login is not a use case action.
func asteriskErrorMessage(err error) (messageID, []any) {
	var asteriskErr *agent.AsteriskError
	if !errors.As(err, &asteriskErr) {
		return msgAsteriskError, nil
	}
	return msgAsteriskRejected, []any{asteriskErr.Action, asteriskErr.Message}
}

// errorBody is the JSON of an error response.
type errorBody struct {
	Status string      `json:"status"`
	Error  errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// handleError is the echo HTTPErrorHandler: it writes any error returned
// by a handler or the router in the API's error format.
func (s *Server) handleError(err error, c echo.Context) {
	e := s.toAPIError(err, c)
	state := stateOf(c)
	state.failure = e
	if c.Response().Committed {
		return
	}

	header := c.Response().Header()
	switch e.code {
	case codeUnauthenticated:
		for _, challenge := range s.auth.challenges(e.invalidToken) {
			header.Add("WWW-Authenticate", challenge)
		}
	case codeMethodNotAllowed:
		header.Set("Allow", s.allowedMethods(c))
	case codeAsteriskUnavailable, codeStoreUnavailable:
		header.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}

	body := errorBody{Status: "ERROR", Error: errorDetail{Code: e.code, Message: state.lang.format(e.msg, e.args...)}}
	if writeErr := c.JSON(e.status(), body); writeErr != nil {
		state.writeErr = writeErr
	}
}

// toAPIError turns errors of echo's router and unexpected errors into an
// apiError. An unexpected error becomes internal_error, and its text is
// logged but never sent.
func (s *Server) toAPIError(err error, c echo.Context) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	var httpErr *echo.HTTPError
	if errors.As(err, &httpErr) {
		method, path := truncate(c.Request().Method, maxShownValue), truncate(c.Request().URL.Path, maxShownPath)
		switch httpErr.Code {
		case http.StatusNotFound:
			return s.notFoundError(method, path).withCause(err)
		case http.StatusMethodNotAllowed:
			return newAPIError(codeMethodNotAllowed, msgMethodRejected, method, path, s.allowedMethods(c)).withCause(err)
		}
		if code, ok := codeByEchoStatus[httpErr.Code]; ok {
			return newAPIError(code, messageID(code)).withCause(err)
		}
	}
	return newAPIError(codeInternal, msgInternalWithID, stateOf(c).requestID).withCause(fmt.Errorf("unexpected handler error: %w", err))
}

// allowedMethods returns the Allow header for a 405 response. The API
// routes accept only POST. Routes mounted through Echo keep the list that
// echo's router computed.
func (s *Server) allowedMethods(c echo.Context) string {
	if isAPIRoute(c.Path()) {
		return http.MethodPost
	}
	if allow, ok := c.Get(echo.ContextKeyHeaderAllow).(string); ok && allow != "" {
		return allow
	}
	return http.MethodPost
}
