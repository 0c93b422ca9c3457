package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var allRoutes = []struct {
	path    string
	method  string // fake method called
	pauseID bool
}{
	{"/api/v1/asterisk_login/", "Login", false},
	{"/api/v1/asterisk_login", "Login", false},
	{"/api/v1/asterisk_logout/", "Logout", false},
	{"/api/v1/asterisk_logout", "Logout", false},
	{"/api/v1/asterisk_pause/", "Pause", true},
	{"/api/v1/asterisk_pause", "Pause", true},
	{"/api/v1/asterisk_unpause/", "Unpause", true},
	{"/api/v1/asterisk_unpause", "Unpause", true},
}

func TestRoutesCallUseCase(t *testing.T) {
	for _, route := range allRoutes {
		t.Run(route.path, func(t *testing.T) {
			s, fake, _ := testServer(t)
			body := ""
			if route.pauseID {
				body = `{"pause_id":"5"}`
			}
			rec := serve(s, request{path: route.path, contentType: "application/json", body: body, auth: basic("1001", password1001)})

			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			calls := fake.recorded()
			require.Len(t, calls, 1)
			assert.Equal(t, route.method, calls[0].method)
			assert.Equal(t, "1001", calls[0].agentID)
			assert.Equal(t, agent.SourceAPI, calls[0].source)
			if route.pauseID {
				assert.Equal(t, "5", calls[0].pauseID)
			}
		})
	}
}

func TestRoutesRejectOtherMethods(t *testing.T) {
	methods := []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodHead, "PROPFIND", "BREW"}
	s, fake, _ := testServer(t)
	for _, route := range allRoutes {
		for _, method := range methods {
			t.Run(method+" "+route.path, func(t *testing.T) {
				rec := serve(s, request{method: method, path: route.path, auth: basic("1001", password1001)})

				require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
				assert.Equal(t, "POST", rec.Header().Get("Allow"))
				if method == http.MethodHead {
					return
				}
				e := decodeError(t, rec)
				assert.Equal(t, "method_not_allowed", e.Error.Code)
				assert.Contains(t, e.Error.Message, method)
			})
		}
	}
	assert.Empty(t, fake.recorded())
}

func TestUnknownPathIsNotFound(t *testing.T) {
	s, _, _ := testServer(t)
	for _, path := range []string{"/", "/api/v1/", "/api/v1/asterisk_login/extra", "/api/v1/asterisk_login//", "/api/v2/asterisk_login/"} {
		t.Run(path, func(t *testing.T) {
			rec := serve(s, request{path: path, auth: basic("1001", password1001)})

			require.Equal(t, http.StatusNotFound, rec.Code)
			e := decodeError(t, rec)
			assert.Equal(t, "not_found", e.Error.Code)
			assert.Contains(t, e.Error.Message, path)
		})
	}
}

func TestNotFoundMessageCutsLongPath(t *testing.T) {
	s, _, _ := testServer(t)
	path := "/" + strings.Repeat("a", 500)
	rec := serve(s, request{path: path})

	require.Equal(t, http.StatusNotFound, rec.Code)
	e := decodeError(t, rec)
	assert.Contains(t, e.Error.Message, "/"+strings.Repeat("a", 199)+"…")
	assert.NotContains(t, e.Error.Message, strings.Repeat("a", 200))
}

func TestLoginLogoutAcceptEmptyBody(t *testing.T) {
	for _, contentType := range []string{"", "application/json", "application/x-www-form-urlencoded", "text/plain"} {
		t.Run("content type "+contentType, func(t *testing.T) {
			s, fake, _ := testServer(t)
			for _, path := range []string{"/api/v1/asterisk_login/", "/api/v1/asterisk_logout/"} {
				rec := serve(s, request{path: path, contentType: contentType, auth: basic("1001", password1001)})
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			}
			assert.Len(t, fake.recorded(), 2)
		})
	}
}

func multipartBody(t *testing.T, fields map[string]string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	require.NoError(t, w.Close())
	return buf.String(), w.FormDataContentType()
}

func TestPauseIDEncodings(t *testing.T) {
	multipart5, multipartType := multipartBody(t, map[string]string{"pause_id": "5"})
	multipart00, multipartType00 := multipartBody(t, map[string]string{"pause_id": "00"})
	tests := []struct {
		name        string
		contentType string
		body        string
		want        string
	}{
		{"json string", "application/json", `{"pause_id":"5"}`, "5"},
		{"json number", "application/json", `{"pause_id":5}`, "5"},
		{"json charset", "application/json; charset=utf-8", `{"pause_id":"5"}`, "5"},
		{"json zero number", "application/json", `{"pause_id":0}`, "0"},
		{"json zero string", "application/json", `{"pause_id":"0"}`, "0"},
		{"json double zero string", "application/json", `{"pause_id":"00"}`, "00"},
		{"json big number", "application/json", `{"pause_id":123456789012345678901234}`, "123456789012345678901234"},
		{"json with other fields", "application/json", `{"csrf":"x","pause_id":"7","extra":{"a":[1]}}`, "7"},
		{"json whitespace", "application/json", "\n {\n \"pause_id\" : 5 \n}\n", "5"},
		{"form", "application/x-www-form-urlencoded", "pause_id=5", "5"},
		{"form zero", "application/x-www-form-urlencoded", "pause_id=0", "0"},
		{"form double zero", "application/x-www-form-urlencoded", "pause_id=00", "00"},
		{"form escaped", "application/x-www-form-urlencoded", "pause_id=%37&x=1", "7"},
		{"multipart", multipartType, multipart5, "5"},
		{"multipart double zero", multipartType00, multipart00, "00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, _ := testServer(t)
			rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: tt.contentType, body: tt.body, auth: basic("1001", password1001)})

			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			calls := fake.recorded()
			require.Len(t, calls, 1)
			assert.Equal(t, tt.want, calls[0].pauseID)
		})
	}
}

func TestInvalidBodyIsBadRequest(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		message     string // part of the English message
	}{
		{"pause_id missing", "application/json", `{}`, "pause_id is missing"},
		{"pause_id missing empty body", "", ``, "pause_id is missing"},
		{"pause_id missing form", "application/x-www-form-urlencoded", `other=1`, "pause_id is missing"},
		{"pause_id empty string", "application/json", `{"pause_id":""}`, "pause_id is empty"},
		{"pause_id empty form", "application/x-www-form-urlencoded", `pause_id=`, "pause_id is empty"},
		{"pause_id fraction", "application/json", `{"pause_id":5.5}`, "got 5.5"},
		{"pause_id negative", "application/json", `{"pause_id":-1}`, "got -1"},
		{"pause_id exponent", "application/json", `{"pause_id":1e2}`, "got 1e2"},
		{"pause_id true", "application/json", `{"pause_id":true}`, "got true"},
		{"pause_id null", "application/json", `{"pause_id":null}`, "got null"},
		{"pause_id object", "application/json", `{"pause_id":{"id": 5}}`, `got {"id":5}`},
		{"pause_id array", "application/json", `{"pause_id":["5"]}`, `got ["5"]`},
		{"pause_id long value cut", "application/json", `{"pause_id":[` + strings.Repeat(`"x",`, 30) + `"x"]}`, `got ["x","x","x","x","x","x","x","x","x","x"…. Send`},
		{"pause_id twice json", "application/json", `{"pause_id":"5","pause_id":"7"}`, "Field pause_id appears more than once"},
		{"pause_id twice form", "application/x-www-form-urlencoded", `pause_id=5&pause_id=7`, "Field pause_id appears more than once"},
		{"json truncated", "application/json", `{"pause_id":`, "not valid JSON at byte 12: unexpected end of JSON input"},
		{"json bad character", "application/json", `{"pause_id":x}`, "not valid JSON at byte 13"},
		{"json bad key", "application/json", `{pause_id:5}`, "not valid JSON at byte 2: invalid character 'p' looking for beginning of object key string"},
		{"json array", "application/json", `[{"pause_id":"5"}]`, "must be a JSON object, got an array"},
		{"json string", "application/json", `"5"`, "must be a JSON object, got a string"},
		{"json number", "application/json", `5`, "must be a JSON object, got 5"},
		{"json trailing data", "application/json", `{"pause_id":"5"} x`, "not valid JSON at byte 18: invalid character 'x' after top-level value"},
		{"json two objects", "application/json", `{"pause_id":"5"}{}`, "not valid JSON at byte 17"},
		{"json bad utf-8 escape", "application/json", `{"pause_id":"\u12"}`, "not valid JSON at byte 18"},
		{"form bad escape", "application/x-www-form-urlencoded", `pause_id=%zz`, "The form in the request body is invalid"},
		{"multipart without boundary", "multipart/form-data", "--x\r\n", "needs a boundary parameter"},
		{"multipart broken", "multipart/form-data; boundary=abc", "not multipart", "The form in the request body is invalid"},
		{"content type invalid", "application/json; =", `{"pause_id":"5"}`, `Content-Type header "application/json; =" is invalid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, _ := testServer(t)
			rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: tt.contentType, body: tt.body, auth: basic("1001", password1001)})

			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			e := decodeError(t, rec)
			assert.Equal(t, "invalid_request", e.Error.Code)
			assert.Contains(t, e.Error.Message, tt.message)
			assert.Empty(t, fake.recorded())
		})
	}
}

func TestUnsupportedContentType(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		contentType string
		message     string
	}{
		{"text plain pause", "/api/v1/asterisk_pause/", "text/plain", `Content-Type "text/plain" is not supported`},
		{"xml login", "/api/v1/asterisk_login/", "application/xml; charset=utf-8", `Content-Type "application/xml" is not supported`},
		{"missing pause", "/api/v1/asterisk_pause/", "", "no Content-Type header"},
		{"missing logout", "/api/v1/asterisk_logout/", "", "no Content-Type header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, _ := testServer(t)
			rec := serve(s, request{path: tt.path, contentType: tt.contentType, body: "pause_id=5", auth: basic("1001", password1001)})

			require.Equal(t, http.StatusUnsupportedMediaType, rec.Code, rec.Body.String())
			e := decodeError(t, rec)
			assert.Equal(t, "unsupported_media_type", e.Error.Code)
			assert.Contains(t, e.Error.Message, tt.message)
			assert.Empty(t, fake.recorded())
		})
	}
}

// chunkedReader hides the body length, as a chunked request does.
type chunkedReader struct{ r *strings.Reader }

func (c chunkedReader) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestBodyOverLimitIsTooLarge(t *testing.T) {
	limit := func(c *Config) { c.MaxBodyBytes = 100 }
	large := `{"pause_id":"5","pad":"` + strings.Repeat("x", 100) + `"}`
	atLimit := `{"pause_id":"5","pad":"` + strings.Repeat("x", 100-len(`{"pause_id":"5","pad":""}`)) + `"}`
	require.Len(t, atLimit, 100)

	t.Run("content length", func(t *testing.T) {
		s, fake, _ := testServer(t, limit)
		rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: large, auth: basic("1001", password1001)})

		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		e := decodeError(t, rec)
		assert.Equal(t, "request_too_large", e.Error.Code)
		assert.Contains(t, e.Error.Message, "larger than 100 bytes")
		assert.Empty(t, fake.recorded())
	})
	t.Run("chunked", func(t *testing.T) {
		s, fake, _ := testServer(t, limit)
		req := request{path: "/api/v1/asterisk_pause/", contentType: "application/json", auth: basic("1001", password1001)}.build()
		req.Body = ioNopCloser{chunkedReader{strings.NewReader(large)}}
		req.ContentLength = -1
		rec := serveRequest(s, req)

		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		assert.Equal(t, "request_too_large", decodeError(t, rec).Error.Code)
		assert.Empty(t, fake.recorded())
	})
	t.Run("at limit", func(t *testing.T) {
		s, _, _ := testServer(t, limit)
		rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: atLimit, auth: basic("1001", password1001)})

		assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	})
	t.Run("default limit", func(t *testing.T) {
		s, _, _ := testServer(t)
		body := `{"pause_id":"5","pad":"` + strings.Repeat("x", 64<<10) + `"}`
		rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: body, auth: basic("1001", password1001)})

		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	})
}

func TestAgentIDInBody(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"same string", "application/json", `{"agent_id":"1001"}`, http.StatusOK, ""},
		{"same number", "application/json", `{"agent_id":1001}`, http.StatusOK, ""},
		{"same form", "application/x-www-form-urlencoded", `agent_id=1001`, http.StatusOK, ""},
		{"other string", "application/json", `{"agent_id":"1003"}`, http.StatusForbidden, "forbidden"},
		{"other number", "application/json", `{"agent_id":1003}`, http.StatusForbidden, "forbidden"},
		{"other form", "application/x-www-form-urlencoded", `agent_id=1003`, http.StatusForbidden, "forbidden"},
		{"zero-padded", "application/json", `{"agent_id":"01001"}`, http.StatusForbidden, "forbidden"},
		{"boolean", "application/json", `{"agent_id":true}`, http.StatusBadRequest, "invalid_request"},
		{"fraction", "application/json", `{"agent_id":1001.0}`, http.StatusBadRequest, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, _ := testServer(t)
			rec := serve(s, request{path: "/api/v1/asterisk_login/", contentType: tt.contentType, body: tt.body, auth: basic("1001", password1001)})

			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.status == http.StatusOK {
				assert.Len(t, fake.recorded(), 1)
				return
			}
			e := decodeError(t, rec)
			assert.Equal(t, tt.code, e.Error.Code)
			assert.Empty(t, fake.recorded())
		})
	}
	t.Run("mismatch message names both agents", func(t *testing.T) {
		s, _, _ := testServer(t)
		rec := serve(s, request{path: "/api/v1/asterisk_login/", contentType: "application/json", body: `{"agent_id":"1003"}`, auth: basic("1001", password1001)})

		e := decodeError(t, rec)
		assert.Contains(t, e.Error.Message, `agent "1001"`)
		assert.Contains(t, e.Error.Message, `agent "1003"`)
	})
}

func pausedResult() agent.Result {
	since := time.Date(2026, 12, 4, 17, 15, 3, 123_000_000, time.FixedZone("ART", -3*3600))
	return agent.Result{
		Status: agent.Status{
			Agent: agent.Agent{ID: "1001"},
			Session: agent.Session{
				AgentID: "1001",
				State:   agent.StatePaused,
				PauseID: "5",
				Since:   since,
				Members: []agent.Member{
					{Queue: "sales", Interface: "PJSIP/1001", Penalty: 0},
					{Queue: "support", Interface: "PJSIP/1001", Penalty: 2},
				},
			},
			Pause: &agent.Pause{ID: "5", Name: "Lunch", Type: agent.PauseRecreational},
		},
		Warnings: []agent.Warning{{Code: agent.WarningNoSuchQueue, Queue: "x"}},
	}
}

func TestSuccessResponseJSON(t *testing.T) {
	tests := []struct {
		name     string
		result   agent.Result
		language string
		want     string
	}{
		{
			name:   "paused with warning",
			result: pausedResult(),
			want: `{"status":"OK","agent_id":"1001","state":"PAUSED","effective_state":"PAUSED","pause_id":"5","pause_name":"Lunch","pause_type":"recreational",
				"since":"2026-12-04T20:15:03.123Z",
				"queues":[{"name":"sales","penalty":0,"paused":true},{"name":"support","penalty":2,"paused":true}],
				"warnings":[{"code":"no_such_queue","queue":"x","message":"Queue \"x\" does not exist in Asterisk, so the agent was not added to it. Ask the administrator to create the queue or remove it from the agent."}]}`,
		},
		{
			name:     "warning in spanish",
			result:   agent.Result{Status: agent.Status{Agent: agent.Agent{ID: "1001"}, Session: agent.Session{State: agent.StateReady}}, Warnings: []agent.Warning{{Code: agent.WarningNoSuchQueue, Queue: "x"}}},
			language: "es",
			want: `{"status":"OK","agent_id":"1001","state":"READY","effective_state":"READY","queues":[],
				"warnings":[{"code":"no_such_queue","queue":"x","message":"La cola \"x\" no existe en Asterisk, así que el agente no fue agregado a ella. Pida al administrador que cree la cola o la quite del agente."}]}`,
		},
		{
			name: "ready",
			result: agent.Result{Status: agent.Status{
				Agent:   agent.Agent{ID: "1001"},
				Session: agent.Session{State: agent.StateReady, Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Members: []agent.Member{{Queue: "sales", Penalty: 1}}},
			}},
			want: `{"status":"OK","agent_id":"1001","state":"READY","effective_state":"READY","since":"2026-01-02T03:04:05.000Z","queues":[{"name":"sales","penalty":1,"paused":false}]}`,
		},
		{
			name:   "ready with the phone offline",
			result: agent.Result{Status: agent.Status{Agent: agent.Agent{ID: "1001"}, Session: agent.Session{State: agent.StateReady, Unavailable: true}}},
			want:   `{"status":"OK","agent_id":"1001","state":"READY","effective_state":"UNAVAILABLE","queues":[]}`,
		},
		{
			name:   "paused on a call",
			result: agent.Result{Status: agent.Status{Agent: agent.Agent{ID: "1001"}, Session: agent.Session{State: agent.StatePaused, CallState: agent.CallUp}}},
			want:   `{"status":"OK","agent_id":"1001","state":"PAUSED","effective_state":"ONCALL","queues":[]}`,
		},
		{
			name:   "offline never logged in",
			result: agent.Result{Status: agent.Status{Agent: agent.Agent{ID: "1001"}, Session: agent.Session{AgentID: "1001", State: agent.StateOffline}}},
			want:   `{"status":"OK","agent_id":"1001","state":"OFFLINE","effective_state":"OFFLINE","queues":[]}`,
		},
		{
			name:   "unknown warning code",
			result: agent.Result{Status: agent.Status{Agent: agent.Agent{ID: "1001"}, Session: agent.Session{State: agent.StateReady}}, Warnings: []agent.Warning{{Code: "new_code", Queue: "q"}}},
			want:   `{"status":"OK","agent_id":"1001","state":"READY","effective_state":"READY","queues":[],"warnings":[{"code":"new_code","queue":"q","message":"Warning new_code on queue \"q\"."}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, _ := testServer(t)
			fake.result = tt.result
			rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: `{"pause_id":"5"}`, auth: basic("1001", password1001), language: tt.language})

			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.JSONEq(t, tt.want, rec.Body.String())
		})
	}
}

func TestUseCaseErrorMapping(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		message    string
		retryAfter string
	}{
		{"unknown agent", fmt.Errorf("%w: %q", agent.ErrUnknownAgent, "1001"), http.StatusForbidden, "forbidden", `Agent "1001" is not in the agent directory`, ""},
		{"not logged in", fmt.Errorf("pause agent: %w", agent.ErrNotLoggedIn), http.StatusConflict, "not_logged_in", `Agent "1001" is not logged in. Call asterisk_login first.`, ""},
		{"unknown pause", fmt.Errorf("%w: %q", agent.ErrUnknownPause, "99"), http.StatusUnprocessableEntity, "unknown_pause", `pause_id "99" is not in the pause catalog. Use one of the configured pause ids (0, 00, 5, 7).`, ""},
		{"pause mismatch", fmt.Errorf("unpause: %w", agent.ErrPauseMismatch), http.StatusConflict, "pause_mismatch", `Agent "1001" is not in pause "99"`, ""},
		{"asterisk error", fmt.Errorf("pause: %w", &agent.AsteriskError{Action: "QueuePause", Message: "Interface not found"}), http.StatusBadGateway, "asterisk_error", "Asterisk rejected QueuePause: Interface not found.", ""},
		{"asterisk unavailable", fmt.Errorf("pause: %w", agent.ErrAsteriskUnavailable), http.StatusServiceUnavailable, "asterisk_unavailable", "agentd has no connection to Asterisk. Try again in 5 seconds.", "5"},
		{"store unavailable", fmt.Errorf("store: %w", agent.ErrStoreUnavailable), http.StatusServiceUnavailable, "store_unavailable", "could not store the session change", "5"},
		{"sessions not read", fmt.Errorf("login agent: %w", agent.ErrNotRestored), http.StatusServiceUnavailable, "store_unavailable", "has not read the agents' sessions", "5"},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), http.StatusGatewayTimeout, "timeout", "did not finish within 10s", ""},
		{"canceled", fmt.Errorf("wait: %w", context.Canceled), http.StatusGatewayTimeout, "timeout", "did not finish within 10s", ""},
		{"internal", errors.New("secret internal detail at 10.0.0.1"), http.StatusInternalServerError, "internal_error", "Internal error. Tell the administrator request id req-42.", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, logs := testServer(t)
			fake.err = tt.err
			rec := serve(s, request{path: "/api/v1/asterisk_unpause/", contentType: "application/json", body: `{"pause_id":"99"}`,
				auth: basic("1001", password1001), headers: map[string]string{"X-Request-Id": "req-42"}})

			require.Equal(t, tt.status, rec.Code)
			e := decodeError(t, rec)
			assert.Equal(t, tt.code, e.Error.Code)
			assert.Contains(t, e.Error.Message, tt.message)
			assert.NotContains(t, e.Error.Message, "10.0.0.1")
			assert.Equal(t, tt.retryAfter, rec.Header().Get("Retry-After"))

			lines := logLines(t, logs)
			require.Len(t, lines, 1)
			assert.Equal(t, tt.code, lines[0]["code"])
			assert.Contains(t, lines[0]["err"], tt.err.Error())
			if tt.status >= 500 {
				assert.Equal(t, "ERROR", lines[0]["level"])
			} else {
				assert.Equal(t, "INFO", lines[0]["level"])
			}
		})
	}
}

func TestPauseMismatchNamesCurrentPause(t *testing.T) {
	s, fake, _ := testServer(t)
	fake.err = fmt.Errorf("unpause: %w", agent.ErrPauseMismatch)
	fake.status = agent.Status{Session: agent.Session{State: agent.StatePaused, PauseID: "0"}}
	rec := serve(s, request{path: "/api/v1/asterisk_unpause/", contentType: "application/json", body: `{"pause_id":"5"}`, auth: basic("1001", password1001)})

	require.Equal(t, http.StatusConflict, rec.Code)
	e := decodeError(t, rec)
	assert.Equal(t, "pause_mismatch", e.Error.Code)
	assert.Equal(t, `Agent "1001" is in pause "0", not in pause "5". Send pause_id "0" to end the current pause.`, e.Error.Message)
}

func TestAsteriskErrorWithoutDetail(t *testing.T) {
	s, _, _ := testServer(t)
	e := s.useCaseError(&agent.AsteriskError{Action: "QueueAdd", Message: "x"}, useCaseCall{}, "id")
	assert.Equal(t, msgAsteriskRejected, e.msg)

	// agent.ErrorCode maps only *agent.AsteriskError to asterisk_error, so
	// the generic message is for a future code path.
	msg, args := asteriskErrorMessage(errors.New("plain"))
	assert.Equal(t, msgAsteriskError, msg)
	assert.Empty(t, args)
}

func TestRequestTimeout(t *testing.T) {
	t.Run("deadline set from config", func(t *testing.T) {
		s, fake, _ := testServer(t, func(c *Config) { c.RequestTimeout = 3 * time.Second })
		before := time.Now()
		rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)})

		require.Equal(t, http.StatusOK, rec.Code)
		calls := fake.recorded()
		require.Len(t, calls, 1)
		require.False(t, calls[0].deadline.IsZero())
		assert.WithinRange(t, calls[0].deadline, before.Add(3*time.Second), time.Now().Add(3*time.Second))
	})
	t.Run("default deadline", func(t *testing.T) {
		s, fake, _ := testServer(t)
		before := time.Now()
		serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)})

		calls := fake.recorded()
		require.Len(t, calls, 1)
		assert.WithinRange(t, calls[0].deadline, before.Add(DefaultRequestTimeout), time.Now().Add(DefaultRequestTimeout))
	})
	t.Run("deadline exceeded", func(t *testing.T) {
		s, fake, _ := testServer(t, func(c *Config) { c.RequestTimeout = 20 * time.Millisecond })
		fake.block = true
		rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)})

		require.Equal(t, http.StatusGatewayTimeout, rec.Code)
		e := decodeError(t, rec)
		assert.Equal(t, "timeout", e.Error.Code)
		assert.Contains(t, e.Error.Message, "20ms")
	})
}

func TestPanicIsInternalError(t *testing.T) {
	s, fake, logs := testServer(t)
	fake.panicWith = "boom in use case"
	rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)})

	require.Equal(t, http.StatusInternalServerError, rec.Code)
	e := decodeError(t, rec)
	assert.Equal(t, "internal_error", e.Error.Code)
	assert.NotContains(t, e.Error.Message, "boom")

	lines := logLines(t, logs)
	require.Len(t, lines, 1)
	assert.Equal(t, "ERROR", lines[0]["level"])
	assert.Contains(t, lines[0]["err"], "panic: boom in use case")
}

func TestAbortHandlerPanicPassesThrough(t *testing.T) {
	s, _, _ := testServer(t)
	s.Echo().GET("/abort", func(echo.Context) error { panic(http.ErrAbortHandler) })

	assert.PanicsWithValue(t, http.ErrAbortHandler, func() {
		serve(s, request{method: http.MethodGet, path: "/abort"})
	})
}

func TestLanguageOfMessages(t *testing.T) {
	tests := []struct {
		header  string
		content string
		message string
	}{
		{"", "en", `pause_id "99" is not in the pause catalog. Use one of the configured pause ids (0, 00, 5, 7).`},
		{"es", "es-419", `pause_id "99" no está en el catálogo de pausas. Use uno de los ids de pausa configurados (0, 00, 5, 7).`},
		{"es-AR,es;q=0.9,en;q=0.8", "es-419", `pause_id "99" no está en el catálogo de pausas.`},
		{"en-US,es;q=0.5", "en", `pause_id "99" is not in the pause catalog.`},
		{"fr-FR, es;q=0.3", "es-419", `no está en el catálogo`},
		{"de", "en", `is not in the pause catalog`},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			s, fake, _ := testServer(t)
			fake.err = fmt.Errorf("%w: %q", agent.ErrUnknownPause, "99")
			rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: `{"pause_id":"99"}`, auth: basic("1001", password1001), language: tt.header})

			require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
			assert.Equal(t, tt.content, rec.Header().Get("Content-Language"))
			assert.Contains(t, decodeError(t, rec).Error.Message, tt.message)
		})
	}
}

func TestContentLanguageOnSuccess(t *testing.T) {
	s, _, _ := testServer(t)
	rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001), language: "es-MX"})

	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "es-419", rec.Header().Get("Content-Language"))
}

func TestRequestID(t *testing.T) {
	s, _, logs := testServer(t)
	t.Run("echoed", func(t *testing.T) {
		rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001), headers: map[string]string{"X-Request-Id": "abc-123"}})
		assert.Equal(t, "abc-123", rec.Header().Get("X-Request-Id"))
	})
	t.Run("generated", func(t *testing.T) {
		first := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)}).Header().Get("X-Request-Id")
		second := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)}).Header().Get("X-Request-Id")
		assert.NotEmpty(t, first)
		assert.NotEqual(t, first, second)
	})
	t.Run("invalid replaced", func(t *testing.T) {
		for _, sent := range []string{"has space", strings.Repeat("x", 129), "tab\tid", "ñ"} {
			rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001), headers: map[string]string{"X-Request-Id": sent}})
			got := rec.Header().Get("X-Request-Id")
			assert.NotEqual(t, sent, got)
			assert.NotEmpty(t, got)
		}
	})
	t.Run("logged", func(t *testing.T) {
		logs.Reset()
		serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001), headers: map[string]string{"X-Request-Id": "log-me"}})
		lines := logLines(t, logs)
		require.Len(t, lines, 1)
		assert.Equal(t, "log-me", lines[0]["request_id"])
	})
}

func TestRequestLogLine(t *testing.T) {
	s, _, logs := testServer(t)
	serve(s, request{path: "/api/v1/asterisk_pause", contentType: "application/json", body: `{"pause_id":"5"}`, auth: basic("1001", password1001)})

	lines := logLines(t, logs)
	require.Len(t, lines, 1)
	line := lines[0]
	assert.Equal(t, "INFO", line["level"])
	assert.Equal(t, "http request", line["msg"])
	assert.Equal(t, "POST", line["method"])
	assert.Equal(t, "/api/v1/asterisk_pause", line["route"])
	assert.InDelta(t, 200, line["status"], 0)
	assert.Contains(t, line, "duration")
	assert.Equal(t, "1001", line["agent_id"])
	assert.NotEmpty(t, line["request_id"])
	assert.NotContains(t, line, "err")
}

func TestNotFoundLogsAtDebug(t *testing.T) {
	s, _, logs := testServer(t)
	serve(s, request{path: "/nope"})

	lines := logLines(t, logs)
	require.Len(t, lines, 1)
	assert.Equal(t, "DEBUG", lines[0]["level"])
	assert.Equal(t, "not_found", lines[0]["code"])
}

func TestMountedRoutes(t *testing.T) {
	s, _, logs := testServer(t)
	s.Echo().GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })

	rec := serve(s, request{method: http.MethodGet, path: "/healthz"})
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "ok", rec.Body.String())
	assert.NotEmpty(t, rec.Header().Get("X-Request-Id"))

	rec = serve(s, request{method: http.MethodPost, path: "/healthz"})
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "OPTIONS, GET", rec.Header().Get("Allow"))
	assert.Equal(t, "method_not_allowed", decodeError(t, rec).Error.Code)

	lines := logLines(t, logs)
	require.Len(t, lines, 2)
	for _, line := range lines {
		assert.Equal(t, "DEBUG", line["level"])
	}
}

func TestMounted503LogsAtDebug(t *testing.T) {
	s, _, logs := testServer(t)
	s.Echo().GET("/readyz", func(c echo.Context) error { return c.String(http.StatusServiceUnavailable, "ami down") })

	rec := serve(s, request{method: http.MethodGet, path: "/readyz"})

	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	lines := logLines(t, logs)
	require.Len(t, lines, 1)
	assert.Equal(t, "DEBUG", lines[0]["level"], "a readiness answer is not a failure of the request")
}

func TestUnexpectedHandlerErrorIsInternal(t *testing.T) {
	s, _, logs := testServer(t)
	s.Echo().GET("/fails", func(echo.Context) error { return errors.New("disk on fire") })

	rec := serve(s, request{method: http.MethodGet, path: "/fails", headers: map[string]string{"X-Request-Id": "r-1"}})
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	e := decodeError(t, rec)
	assert.Equal(t, "internal_error", e.Error.Code)
	assert.Equal(t, "Internal error. Tell the administrator request id r-1.", e.Error.Message)

	lines := logLines(t, logs)
	require.Len(t, lines, 1)
	assert.Equal(t, "ERROR", lines[0]["level"])
	assert.Contains(t, lines[0]["err"], "disk on fire")
}

func TestMountedRouteEchoErrors(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{echo.ErrBadRequest, http.StatusBadRequest, "invalid_request"},
		{echo.ErrUnauthorized, http.StatusUnauthorized, "unauthenticated"},
		{echo.ErrForbidden, http.StatusForbidden, "forbidden"},
		{echo.ErrStatusRequestEntityTooLarge, http.StatusRequestEntityTooLarge, "request_too_large"},
		{echo.ErrUnsupportedMediaType, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{echo.ErrNotFound, http.StatusNotFound, "not_found"},
		{echo.ErrTooManyRequests, http.StatusInternalServerError, "internal_error"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			s, _, _ := testServer(t)
			s.Echo().GET("/mounted", func(echo.Context) error { return tt.err })
			rec := serve(s, request{method: http.MethodGet, path: "/mounted"})

			require.Equal(t, tt.status, rec.Code)
			e := decodeError(t, rec)
			assert.Equal(t, tt.code, e.Error.Code)
			assert.NotEmpty(t, e.Error.Message)
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	keys := signingKeys(t)
	smallRSA := publicKeyPEM(t, &mustRSAKey(t, 1024).PublicKey)
	dir := testDirectory(t)
	valid := func() Config {
		return Config{Service: &fakeAgents{}, Directory: func() *agent.Directory { return dir }, Auth: AuthConfig{Basic: true}}
	}
	falseValue := false
	tests := []struct {
		name   string
		change func(*Config)
		err    string // empty: New succeeds
	}{
		{"basic only", func(*Config) {}, ""},
		{"hs256", func(c *Config) { c.Auth = AuthConfig{JWT: &JWTConfig{Algorithm: "HS256", Secret: []byte(testSecret)}} }, ""},
		{"rs256", func(c *Config) { c.Auth = AuthConfig{JWT: &JWTConfig{Algorithm: "RS256", PublicKeyPEM: keys.rsaPEM}} }, ""},
		{"eddsa", func(c *Config) { c.Auth = AuthConfig{JWT: &JWTConfig{Algorithm: "EdDSA", PublicKeyPEM: keys.edPEM}} }, ""},
		{"exp optional", func(c *Config) {
			c.Auth.JWT = &JWTConfig{Algorithm: "HS256", Secret: []byte(testSecret), RequireExp: &falseValue}
		}, ""},
		{"no service", func(c *Config) { c.Service = nil }, "Config.Service is nil"},
		{"no directory", func(c *Config) { c.Directory = nil }, "Config.Directory is nil"},
		{"no scheme", func(c *Config) { c.Auth = AuthConfig{} }, "no authentication scheme enabled"},
		{"negative body limit", func(c *Config) { c.MaxBodyBytes = -1 }, "MaxBodyBytes is -1"},
		{"negative timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "RequestTimeout is -1s"},
		{"empty algorithm", func(c *Config) { c.Auth.JWT = &JWTConfig{Secret: []byte(testSecret)} }, "JWT algorithm is empty"},
		{"none algorithm", func(c *Config) { c.Auth.JWT = &JWTConfig{Algorithm: "none"} }, `JWT algorithm "none" is not supported`},
		{"hs512 algorithm", func(c *Config) { c.Auth.JWT = &JWTConfig{Algorithm: "HS512", Secret: []byte(testSecret)} }, `JWT algorithm "HS512" is not supported`},
		{"short secret", func(c *Config) { c.Auth.JWT = &JWTConfig{Algorithm: "HS256", Secret: []byte("short")} }, "JWT secret has 5 bytes: HS256 needs at least 32"},
		{"hs256 with public key", func(c *Config) {
			c.Auth.JWT = &JWTConfig{Algorithm: "HS256", Secret: []byte(testSecret), PublicKeyPEM: keys.rsaPEM}
		}, "HS256 takes a secret, but a public key is set"},
		{"rs256 with secret", func(c *Config) {
			c.Auth.JWT = &JWTConfig{Algorithm: "RS256", Secret: []byte(testSecret), PublicKeyPEM: keys.rsaPEM}
		}, "RS256 takes a public key, but a secret is set"},
		{"rs256 without key", func(c *Config) { c.Auth.JWT = &JWTConfig{Algorithm: "RS256"} }, "JWT public key is empty"},
		{"rs256 with ed25519 key", func(c *Config) { c.Auth.JWT = &JWTConfig{Algorithm: "RS256", PublicKeyPEM: keys.edPEM} }, "not a PEM RSA public key"},
		{"eddsa with rsa key", func(c *Config) { c.Auth.JWT = &JWTConfig{Algorithm: "EdDSA", PublicKeyPEM: keys.rsaPEM} }, "not a PEM Ed25519 public key"},
		{"rs256 garbage", func(c *Config) { c.Auth.JWT = &JWTConfig{Algorithm: "RS256", PublicKeyPEM: []byte("not pem")} }, "not a PEM RSA public key"},
		{"rs256 small key", func(c *Config) { c.Auth.JWT = &JWTConfig{Algorithm: "RS256", PublicKeyPEM: smallRSA} }, "has 1024 bits: RS256 needs at least 2048"},
		{"negative leeway", func(c *Config) {
			c.Auth.JWT = &JWTConfig{Algorithm: "HS256", Secret: []byte(testSecret), Leeway: -time.Second}
		}, "JWT leeway is -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.change(&cfg)
			s, err := New(cfg)
			if tt.err == "" {
				require.NoError(t, err)
				assert.NotNil(t, s.Handler())
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
			assert.Nil(t, s)
		})
	}
}

func TestHashPassword(t *testing.T) {
	hash, err := HashPassword("s3cret")
	require.NoError(t, err)
	assert.NoError(t, bcryptCompare(hash, "s3cret"))
	require.Error(t, bcryptCompare(hash, "other"))

	_, err = HashPassword("")
	require.ErrorContains(t, err, "password is empty")
	_, err = HashPassword(strings.Repeat("x", 73))
	require.ErrorContains(t, err, "longer than 72 bytes")
}

func TestUnknownPauseListsPauseIDs(t *testing.T) {
	hash, _ := passwordHashes(t)
	yaml := "agents:\n  - {id: \"1001\", name: Ana Diaz, interface: PJSIP/1001, password_hash: \"" + hash + "\"}\npauses:\n"
	for id := 25; id >= 1; id-- {
		yaml += fmt.Sprintf("  - {id: %q, name: Pause %d}\n", strconv.Itoa(id), id)
	}
	large, err := agent.ParseDirectory("large.yaml", []byte(yaml))
	require.NoError(t, err)
	small := testDirectory(t)
	var inForce atomic.Pointer[agent.Directory]
	inForce.Store(small)
	s, fake, _ := testServer(t, func(c *Config) { c.Directory = inForce.Load })
	fake.err = fmt.Errorf("%w: %q", agent.ErrUnknownPause, "99")
	pause := func(language string) string {
		rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: `{"pause_id":"99"}`,
			auth: basic("1001", password1001), language: language})
		require.Equal(t, http.StatusUnprocessableEntity, rec.Code)
		return decodeError(t, rec).Error.Message
	}

	assert.Equal(t, `pause_id "99" is not in the pause catalog. Use one of the configured pause ids (0, 00, 5, 7).`, pause(""))

	inForce.Store(large)
	assert.Equal(t, `pause_id "99" is not in the pause catalog. Use one of the configured pause ids `+
		`(0, 00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, ...).`, pause(""))
	assert.Equal(t, `pause_id "99" no está en el catálogo de pausas. Use uno de los ids de pausa configurados `+
		`(0, 00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, ...).`, pause("es"))
}

func TestUnknownPauseWithoutDirectory(t *testing.T) {
	s, _, _ := testServer(t, func(c *Config) { c.Directory = func() *agent.Directory { return nil } })
	e := s.useCaseError(fmt.Errorf("%w: %q", agent.ErrUnknownPause, "99"), useCaseCall{agentID: "1001", pauseID: "99"}, "id")

	assert.Equal(t, msgPauseNotInCatalog, e.msg)
	assert.Equal(t, []any{"99"}, e.args)
}

func TestComparePauseIDs(t *testing.T) {
	ids := []string{"b", "10", "2", "00", "A", "0", "a", "1", "010", "x_1"}
	slices.SortFunc(ids, comparePauseIDs)

	assert.Equal(t, []string{"0", "00", "1", "2", "010", "10", "A", "a", "b", "x_1"}, ids)
}

func TestNotFoundMessages(t *testing.T) {
	apiRoutes := "POST /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ and /api/v1/asterisk_unpause/"
	tests := []struct {
		name     string
		method   string
		path     string
		mount    bool
		language string
		want     string
	}{
		{
			name: "health path with slash", method: http.MethodGet, path: "/healthz/", mount: true,
			want: "No route for GET /healthz/. The API routes are " + apiRoutes + ". The other routes are GET /healthz, GET /metrics, GET /readyz.",
		},
		{
			name: "unknown path without mounted routes", method: http.MethodPost, path: "/login",
			want: "No route for POST /login. The API routes are " + apiRoutes + ".",
		},
		{
			name: "in Spanish", method: http.MethodGet, path: "/status", mount: true, language: "es",
			want: "No hay ninguna ruta para GET /status. Las rutas de la API son POST /api/v1/asterisk_login/, /api/v1/asterisk_logout/, " +
				"/api/v1/asterisk_pause/ y /api/v1/asterisk_unpause/. Las demás rutas son GET /healthz, GET /metrics, GET /readyz.",
		},
		{
			name: "path under /api/", method: http.MethodPost, path: "/api/v1/asterisk_logn/", mount: true,
			want: "No endpoint at /api/v1/asterisk_logn/. Use POST on /api/v1/asterisk_login/, /api/v1/asterisk_logout/, /api/v1/asterisk_pause/ or /api/v1/asterisk_unpause/.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := testServer(t)
			if tt.mount {
				ok := func(c echo.Context) error { return c.NoContent(http.StatusOK) }
				s.Echo().GET("/readyz", ok)
				s.Echo().GET("/healthz", ok)
				s.Echo().GET("/metrics", ok)
			}
			rec := serve(s, request{method: tt.method, path: tt.path, language: tt.language})

			require.Equal(t, http.StatusNotFound, rec.Code)
			e := decodeError(t, rec)
			assert.Equal(t, "not_found", e.Error.Code)
			assert.Equal(t, tt.want, e.Error.Message)
		})
	}
}
