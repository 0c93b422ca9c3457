package ami

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	fakeUser   = "agentd"
	fakeSecret = "fake-secret-4711"
)

// fakeAMI is an AMI server on 127.0.0.1:0 that speaks like Asterisk 22:
// banner, Login, Logoff and Ping, and a test handler for other actions.
type fakeAMI struct {
	t  testing.TB
	ln net.Listener
	wg sync.WaitGroup

	// rejectLogins is the number of logins still to reject with
	// "Authentication failed", after which Asterisk closes the connection.
	rejectLogins atomic.Int32
	handler      atomic.Pointer[func(*fakeSession, Message)]
	logins       chan *fakeSession // each accepted login
	logoffs      atomic.Int32
	lastLogin    atomic.Pointer[Message]

	mu       sync.Mutex
	sessions []*fakeSession
	closed   bool
}

// fakeSession is one client connection of fakeAMI.
type fakeSession struct {
	id int // 1 for the first connection
	// events is the Events field of the accepted Login. It is set before
	// the session is sent on fakeAMI.logins.
	events string
	nc     net.Conn
	wmu    sync.Mutex
}

func newFakeAMI(t testing.TB) *fakeAMI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	srv := &fakeAMI{t: t, ln: ln, logins: make(chan *fakeSession, 100)}
	srv.wg.Go(srv.acceptLoop)
	t.Cleanup(srv.close)
	return srv
}

func (srv *fakeAMI) addr() string { return srv.ln.Addr().String() }

// handle sets the handler for actions other than Login and Logoff. Without
// one, Ping gets "Ping: Pong" and other actions get "Response: Success".
func (srv *fakeAMI) handle(h func(s *fakeSession, req Message)) {
	srv.handler.Store(&h)
}

func (srv *fakeAMI) close() {
	srv.mu.Lock()
	srv.closed = true
	sessions := srv.sessions
	srv.mu.Unlock()

	_ = srv.ln.Close()
	for _, s := range sessions {
		s.close()
	}
	srv.wg.Wait()
}

func (srv *fakeAMI) acceptLoop() {
	for {
		nc, err := srv.ln.Accept()
		if err != nil {
			return
		}

		srv.mu.Lock()
		if srv.closed {
			srv.mu.Unlock()
			_ = nc.Close()
			return
		}
		s := &fakeSession{id: len(srv.sessions) + 1, nc: nc}
		srv.sessions = append(srv.sessions, s)
		srv.mu.Unlock()

		srv.wg.Go(func() { srv.serve(s) })
	}
}

func (srv *fakeAMI) serve(s *fakeSession) {
	defer s.close()
	if _, err := io.WriteString(s.nc, "Asterisk Call Manager/11.0.0\r\n"); err != nil {
		return
	}

	r := NewReader(s.nc, Limits{})
	for {
		req, err := r.ReadMessage()
		if err != nil {
			return
		}
		if !srv.dispatch(s, req) {
			return
		}
	}
}

// dispatch handles one action and reports whether the session goes on.
func (srv *fakeAMI) dispatch(s *fakeSession, req Message) bool {
	switch req.Action() {
	case ActionLogin:
		return srv.login(s, req)
	case ActionLogoff:
		srv.logoffs.Add(1)
		s.reply(req, "Response", "Goodbye", "Message", "Thanks for all the fish.")
		return false
	}

	if h := srv.handler.Load(); h != nil {
		(*h)(s, req)
		return true
	}
	switch req.Action() {
	case ActionPing:
		s.reply(req, "Response", "Success", "Ping", "Pong", "Timestamp", "1754000000.000000")
	default:
		s.reply(req, "Response", "Success", "Message", "done")
	}
	return true
}

func (srv *fakeAMI) login(s *fakeSession, req Message) bool {
	srv.lastLogin.Store(&req)
	if srv.rejectLogins.Add(-1) >= 0 || req.Get("Username") != fakeUser || req.Get("Secret") != fakeSecret {
		s.reply(req, "Response", "Error", "Message", "Authentication failed")
		return false
	}
	s.reply(req, "Response", "Success", "Message", "Authentication accepted")
	s.events = req.Get("Events")
	srv.logins <- s
	return true
}

// waitLogin returns the session of the next accepted login.
func (srv *fakeAMI) waitLogin(t testing.TB) *fakeSession {
	t.Helper()
	select {
	case s := <-srv.logins:
		return s
	case <-t.Context().Done():
		t.Fatal("test ended before a login")
		return nil
	}
}

// send writes one message built from key, value pairs.
func (s *fakeSession) send(keyValues ...string) {
	var m Message
	for i := 0; i+1 < len(keyValues); i += 2 {
		m.Add(keyValues[i], keyValues[i+1])
	}
	frame, err := m.Encode()
	if err != nil {
		panic(err)
	}
	s.write(frame)
}

// reply sends a message with the ActionID of req after the first field,
// where Asterisk puts it.
func (s *fakeSession) reply(req Message, keyValues ...string) {
	fields := append([]string{keyValues[0], keyValues[1], KeyActionID, req.ActionID()}, keyValues[2:]...)
	s.send(fields...)
}

func (s *fakeSession) write(b []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, _ = s.nc.Write(b)
}

func (s *fakeSession) close() {
	_ = s.nc.Close()
}

// logBuffer collects slog output of a Client for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) count(substr string) int {
	return strings.Count(b.String(), substr)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfig returns a Config for srv with short backoffs and the
// keepalive off, so tests decide when pings happen.
func testConfig(srv *fakeAMI, logs *logBuffer) Config {
	return Config{
		Addr:         srv.addr(),
		Username:     fakeUser,
		Secret:       fakeSecret,
		BackoffMin:   time.Millisecond,
		BackoffMax:   10 * time.Millisecond,
		PingInterval: -1,
		Logger:       logs.logger(),
	}
}

// startClient runs a Client for cfg until the test ends.
func startClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c := New(cfg)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(t.Context()) }()
	t.Cleanup(func() {
		require.NoError(t, c.Close())
		require.NoError(t, <-runErr)
	})
	return c
}

// startConnected runs a Client for cfg and waits for its first login.
func startConnected(t *testing.T, srv *fakeAMI, cfg Config) (*Client, *fakeSession) {
	t.Helper()
	c := startClient(t, cfg)
	s := srv.waitLogin(t)
	require.Eventually(t, c.Connected, 5*time.Second, time.Millisecond)
	return c, s
}
