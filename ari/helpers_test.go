package ari

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testUser     = "agentd"
	testPassword = "s3cret:with:colons"
	testApp      = "agentd"
)

// recordedRequest is what a fake ARI handler saw.
type recordedRequest struct {
	Method     string
	RequestURI string // raw, as sent on the wire
	RawPath    string // escaped path, from RequestURI
	Query      url.Values
	User       string
	Password   string
	HasAuth    bool
	RemoteAddr string
}

// fakeREST is an httptest server that records every request and responds
// with respond.
type fakeREST struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []recordedRequest
}

func newFakeREST(t *testing.T, respond http.HandlerFunc) *fakeREST {
	t.Helper()
	f := &fakeREST{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		respond(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeREST) record(r *http.Request) {
	user, password, ok := r.BasicAuth()
	rawPath, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	query, _ := url.ParseQuery(rawQuery)

	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, recordedRequest{
		Method: r.Method, RequestURI: r.RequestURI, RawPath: rawPath, Query: query,
		User: user, Password: password, HasAuth: ok, RemoteAddr: r.RemoteAddr,
	})
}

func (f *fakeREST) recorded() []recordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recordedRequest(nil), f.requests...)
}

func (f *fakeREST) last(t *testing.T) recordedRequest {
	t.Helper()
	all := f.recorded()
	require.NotEmpty(t, all, "no request reached the fake ARI server")
	return all[len(all)-1]
}

// newTestClient returns a Client for baseURL that is closed at cleanup.
func newTestClient(t *testing.T, baseURL string, mutate ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: baseURL, Username: testUser, Password: testPassword, Application: testApp, Logger: testLogger(t)}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// respondJSON responds with status and body as application/json.
func respondJSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// asteriskDecodePath splits an escaped path on "/" and decodes each
// segment as Asterisk 20 to 22 does in res_ari.c: ast_uri_decode in legacy
// mode turns "+" into a space and %XX into its byte.
func asteriskDecodePath(rawPath string) []string {
	var segments []string
	for _, seg := range strings.Split(strings.TrimPrefix(rawPath, "/"), "/") {
		var b strings.Builder
		for i := 0; i < len(seg); i++ {
			switch {
			case seg[i] == '+':
				b.WriteByte(' ')
			case seg[i] == '%' && i+2 < len(seg) && isHex(seg[i+1]) && isHex(seg[i+2]):
				b.WriteByte(unhex(seg[i+1])<<4 | unhex(seg[i+2]))
				i += 2
			default:
				b.WriteByte(seg[i])
			}
		}
		segments = append(segments, b.String())
	}
	return segments
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// logRecorder is a slog.Handler that keeps records for assertions and
// forwards them to the test log.
type logRecorder struct {
	t       *testing.T
	mu      *sync.Mutex
	records *[]slog.Record
	attrs   []slog.Attr
}

func newLogRecorder(t *testing.T) *logRecorder {
	return &logRecorder{t: t, mu: &sync.Mutex{}, records: &[]slog.Record{}}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.mu.Lock()
	*h.records = append(*h.records, r)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// count returns how many records have level and message.
func (h *logRecorder) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.records {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}

// errs returns the "err" attribute of each record with msg.
func (h *logRecorder) errs(msg string) []error {
	var errs []error
	for _, v := range h.attrValues(msg, "err") {
		if err, ok := v.Any().(error); ok {
			errs = append(errs, err)
		}
	}
	return errs
}

// durations returns the duration attribute key of each record with msg.
func (h *logRecorder) durations(msg, key string) []time.Duration {
	var ds []time.Duration
	for _, v := range h.attrValues(msg, key) {
		ds = append(ds, v.Duration())
	}
	return ds
}

func (h *logRecorder) attrValues(msg, key string) []slog.Value {
	h.mu.Lock()
	defer h.mu.Unlock()
	var values []slog.Value
	for _, r := range *h.records {
		if r.Message != msg {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				values = append(values, a.Value)
			}
			return true
		})
	}
	return values
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
