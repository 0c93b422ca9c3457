package httpapi

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"
)

// maxRequestIDLength bounds an X-Request-Id taken from the request.
const maxRequestIDLength = 128

// requestState is the per-request data shared by the middleware, the
// handlers and the error handler.
type requestState struct {
	requestID string
	lang      language
	agentID   string    // set once the credentials are verified
	failure   *apiError // set by the error handler
	writeErr  error     // error writing the error response
}

const stateKey = "httpapi.request_state"

// stateOf returns the request state that observe stored in c.
func stateOf(c echo.Context) *requestState {
	if st, ok := c.Get(stateKey).(*requestState); ok {
		return st
	}
	// Only reached when observe did not run, such as in a handler test
	// that calls the error handler directly.
	st := &requestState{requestID: rand.Text()}
	c.Set(stateKey, st)
	return st
}

// observe is the outermost middleware of every route: it sets the request
// id and the message language, turns a returned error or a panic into the
// error response, and logs the request once.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		st := &requestState{
			requestID: requestID(r.Header.Get(echo.HeaderXRequestID)),
			lang:      negotiateLanguage(r.Header.Get("Accept-Language")),
		}
		c.Set(stateKey, st)
		header := c.Response().Header()
		header.Set(echo.HeaderXRequestID, st.requestID)
		header.Set("Content-Language", st.lang.contentLanguage())

		if err := callRecovering(next, c); err != nil {
			c.Error(err)
		}
		s.logRequest(c, st, time.Since(start))
		return nil
	}
}

// callRecovering calls next and returns a panic as an error with its stack.
// http.ErrAbortHandler is passed on, because net/http uses it to abort a
// response on purpose.
func callRecovering(next echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		recovered := recover()
		if recovered == nil {
			return
		}
		// net/http (Go 1.26, server.go) compares the panic value by identity
		// too, so a wrapped ErrAbortHandler stays an ordinary panic.
		if recovered == http.ErrAbortHandler { //nolint:errorlint // a panic value, not an error chain
			panic(recovered)
		}
		err = fmt.Errorf("panic: %v\n%s", recovered, debug.Stack())
	}()
	return next(c)
}

// requestID returns the caller's X-Request-Id when it is 1 to 128
// printable ASCII characters without spaces, and a new random id
// otherwise.
func requestID(sent string) string {
	if sent == "" || len(sent) > maxRequestIDLength {
		return rand.Text()
	}
	for i := 0; i < len(sent); i++ {
		if sent[i] < '!' || sent[i] > '~' {
			return rand.Text()
		}
	}
	return sent
}

// logRequest logs one line per request. API routes log at Info and other
// routes, such as 404s and mounted health checks, at Debug. A 5xx response
// of an API route, or with an error from any handler, logs at Error with
// the error.
func (s *Server) logRequest(c echo.Context, st *requestState, elapsed time.Duration) {
	r := c.Request()
	status := c.Response().Status
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", c.Path()),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", elapsed),
		slog.String("agent_id", st.agentID),
		slog.String("request_id", st.requestID),
		slog.String("remote_addr", r.RemoteAddr),
	}
	if st.failure != nil {
		attrs = append(attrs, slog.String("code", st.failure.code))
		if st.failure.cause != nil {
			attrs = append(attrs, slog.Any("err", st.failure.cause))
		}
	}
	if st.writeErr != nil {
		attrs = append(attrs, slog.Any("write_err", st.writeErr))
	}

	level := slog.LevelInfo
	switch {
	case status >= http.StatusInternalServerError && (isAPIRoute(c.Path()) || st.failure != nil):
		level = slog.LevelError
	case !isAPIRoute(c.Path()):
		// This includes /readyz returning 503 while a connection is down,
		// because the connection logs that itself.
		level = slog.LevelDebug
	}
	s.log.LogAttrs(r.Context(), level, "http request", attrs...)
}
