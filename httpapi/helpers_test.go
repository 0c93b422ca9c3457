package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Passwords of the test agents. Their hashes use bcrypt.MinCost so that
// tests stay fast; the dummy hash for unknown agents has cost 10.
const (
	password1001 = "correct horse 1001"
	password1003 = "battery staple 1003"
	testSecret   = "0123456789abcdef0123456789abcdef-test"
)

var (
	hashOnce sync.Once
	hash1001 string
	hash1003 string
)

func passwordHashes(t testing.TB) (string, string) {
	t.Helper()
	hashOnce.Do(func() {
		h1, err := bcrypt.GenerateFromPassword([]byte(password1001), bcrypt.MinCost)
		require.NoError(t, err)
		h3, err := bcrypt.GenerateFromPassword([]byte(password1003), bcrypt.MinCost)
		require.NoError(t, err)
		hash1001, hash1003 = string(h1), string(h3)
	})
	return hash1001, hash1003
}

// testDirectory has agent 1001 with a password, 1002 without one, 1003
// with a password, and the pauses 5 (Lunch) and 7 (Training) besides the
// built-in 0 and 00.
func testDirectory(t testing.TB) *agent.Directory {
	t.Helper()
	h1, h3 := passwordHashes(t)
	return directoryWithHashes(t, h1, h3)
}

func directoryWithHashes(t testing.TB, hash1001, hash1003 string) *agent.Directory {
	t.Helper()
	yaml := `
pauses:
  - {id: "5", name: Lunch, type: recreational}
  - {id: "7", name: Training, type: productive}
agents:
  - id: "1001"
    name: Ana Diaz
    interface: PJSIP/1001
    password_hash: "` + hash1001 + `"
    queues:
      - {name: sales, penalty: 0}
      - {name: support, penalty: 2}
  - id: "1002"
    name: Bruno Paz
    interface: PJSIP/1002
    queues:
      - {name: sales}
  - id: "1003"
    name: Carla Rey
    interface: PJSIP/1003
    password_hash: "` + hash1003 + `"
`
	d, err := agent.ParseDirectory("test.yaml", []byte(yaml))
	require.NoError(t, err)
	return d
}

// fakeAgents records use case calls and returns canned results.
type fakeAgents struct {
	mu     sync.Mutex
	calls  []fakeCall
	result agent.Result
	err    error
	status agent.Status
	// block makes a call wait until its context ends.
	block bool
	// panicWith makes a call panic with this value.
	panicWith any
}

type fakeCall struct {
	method   string
	agentID  string
	pauseID  string
	source   agent.Source
	deadline time.Time
}

func (f *fakeAgents) record(ctx context.Context, method, agentID, pauseID string, src agent.Source) (agent.Result, error) {
	deadline, _ := ctx.Deadline()
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method: method, agentID: agentID, pauseID: pauseID, source: src, deadline: deadline})
	result, err, block, panicWith := f.result, f.err, f.block, f.panicWith
	f.mu.Unlock()

	if panicWith != nil {
		panic(panicWith)
	}
	if block {
		<-ctx.Done()
		return agent.Result{}, ctx.Err()
	}
	if result.Status.Agent.ID == "" {
		result.Status.Agent.ID = agentID
	}
	return result, err
}

func (f *fakeAgents) Login(ctx context.Context, agentID string, src agent.Source) (agent.Result, error) {
	return f.record(ctx, "Login", agentID, "", src)
}

func (f *fakeAgents) Logout(ctx context.Context, agentID string, src agent.Source) (agent.Result, error) {
	return f.record(ctx, "Logout", agentID, "", src)
}

func (f *fakeAgents) Pause(ctx context.Context, agentID, pauseID string, src agent.Source) (agent.Result, error) {
	return f.record(ctx, "Pause", agentID, pauseID, src)
}

func (f *fakeAgents) Unpause(ctx context.Context, agentID, pauseID string, src agent.Source) (agent.Result, error) {
	return f.record(ctx, "Unpause", agentID, pauseID, src)
}

func (f *fakeAgents) Status(string) (agent.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, nil
}

func (f *fakeAgents) recorded() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// testKeys holds the key pairs used to sign test tokens.
type testKeys struct {
	rsaPrivate *rsa.PrivateKey
	rsaPEM     []byte
	edPrivate  ed25519.PrivateKey
	edPEM      []byte
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func signingKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		edPublic, edPrivate, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		keys = testKeys{
			rsaPrivate: rsaKey,
			rsaPEM:     publicKeyPEM(t, &rsaKey.PublicKey),
			edPrivate:  edPrivate,
			edPEM:      publicKeyPEM(t, edPublic),
		}
	})
	return keys
}

func publicKeyPEM(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sign returns a token with claims signed by method and key.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return token
}

// validClaims returns claims for agent 1001 that expire in an hour.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{"agent_id": "1001", "exp": time.Now().Add(time.Hour).Unix()}
}

func hsToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims)
}

// serverOptions adjusts the Config of a test server.
type serverOptions func(*Config)

// testServer returns a server with HS256 bearer tokens and Basic enabled,
// a fake service, and a logger writing JSON lines to logs.
func testServer(t testing.TB, opts ...serverOptions) (*Server, *fakeAgents, *bytes.Buffer) {
	t.Helper()
	fake := &fakeAgents{}
	logs := &bytes.Buffer{}
	dir := testDirectory(t)
	cfg := Config{
		Service:   fake,
		Directory: func() *agent.Directory { return dir },
		Auth: AuthConfig{
			JWT:   &JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret)},
			Basic: true,
		},
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	return s, fake, logs
}

// lockedWriter serializes writes to a buffer shared by handler goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// request describes one test request.
type request struct {
	method      string
	path        string
	contentType string
	body        string
	auth        string // Authorization header; "" sends none
	language    string // Accept-Language header
	headers     map[string]string
}

func (r request) build() *http.Request {
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	req := httptest.NewRequest(method, r.path, strings.NewReader(r.body))
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.language != "" {
		req.Header.Set("Accept-Language", r.language)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	return req
}

func serve(s *Server, r request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r.build())
	return rec
}

func bearer(token string) string {
	return "Bearer " + token
}

func basic(user, password string) string {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

// errorResponse is the decoded error JSON.
type errorResponse struct {
	Status string `json:"status"`
	Error  struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeError(t testing.TB, rec *httptest.ResponseRecorder) errorResponse {
	t.Helper()
	var out errorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), "body: %s", rec.Body.String())
	require.Equal(t, "ERROR", out.Status)
	return out
}

// logLines decodes the JSON log lines.
func logLines(t testing.TB, logs *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), "log line: %s", line)
		lines = append(lines, entry)
	}
	return lines
}

type ioNopCloser struct{ io.Reader }

func (ioNopCloser) Close() error { return nil }

func serveRequest(s *Server, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func mustRSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	require.NoError(t, err)
	return key
}

func bcryptCompare(hash, password string) error {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
}

func (c *passwordCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
