package agi

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readUntilClosed returns what the server wrote before it closed conn. A
// close with unread input makes the kernel send a reset, so a reset counts
// as closed too. The reset can also discard bytes written just before it.
func readUntilClosed(t *testing.T, conn net.Conn) string {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	got, err := io.ReadAll(conn)
	if err != nil {
		require.ErrorIs(t, err, syscall.ECONNRESET, "read")
	}
	return string(got)
}

// requireDropped checks that the server closed conn without writing
// anything.
func requireDropped(t *testing.T, conn net.Conn) {
	t.Helper()
	assert.Empty(t, readUntilClosed(t, conn))
}

// requireServing checks that the server still serves a valid session.
func requireServing(t *testing.T, addr string) {
	t.Helper()
	assert.Equal(t, "READY", runScript(t, addr, ScriptAgentState, "1001")[VarState])
}

func hostileServer(t *testing.T, edit func(*Config)) (*Server, string) {
	t.Helper()
	srv := newTestServer(t, newFakeAgents(readyAg), func(c *Config) {
		c.IdleTimeout = 300 * time.Millisecond
		if edit != nil {
			edit(c)
		}
	})
	return srv, startServer(t, srv)
}

func TestHostileNoBlankLine(t *testing.T) {
	srv, addr := hostileServer(t, nil)
	f := dialAGI(t, addr)
	f.write("agi_network: yes\nagi_network_script: agent_state\nagi_arg_1: 1001\n")

	requireDropped(t, f.conn)

	assert.Equal(t, uint64(1), srv.Stats().InvalidHeaders)
	requireServing(t, addr)
}

func TestHostileHugeLine(t *testing.T) {
	srv, addr := hostileServer(t, nil)
	f := dialAGI(t, addr)
	// The write may fail once the server has closed the connection.
	_, _ = f.conn.Write(bytes.Repeat([]byte("a"), DefaultMaxLineBytes+100))

	requireDropped(t, f.conn)

	assert.Equal(t, uint64(1), srv.Stats().InvalidHeaders)
	requireServing(t, addr)
}

func TestHostileHugeResponseLine(t *testing.T) {
	errs := make(chan error, 1)
	srv := newTestServer(t, newFakeAgents(readyAg), nil)
	require.NoError(t, srv.Handle("probe", func(ctx context.Context, s *Session) error {
		_, err := s.Command(ctx, "NOOP")
		errs <- err
		return err
	}))
	addr := startServer(t, srv)
	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	f.mustCommand()
	_, _ = f.conn.Write(append([]byte("200 result=1 ("), bytes.Repeat([]byte("v"), DefaultMaxLineBytes)...))

	require.ErrorIs(t, <-errs, ErrLineTooLong)
	// The failure line is sent but the reset caused by the unread rest of
	// the long line may discard it.
	assert.Contains(t, []string{"", failureLine}, readUntilClosed(t, f.conn))
	requireServing(t, addr)
}

func TestHostileBinaryGarbage(t *testing.T) {
	srv, addr := hostileServer(t, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	f := dialAGI(t, addr)
	_, _ = f.conn.Write(garbage)

	requireDropped(t, f.conn)

	assert.Equal(t, uint64(1), srv.Stats().InvalidHeaders)
	requireServing(t, addr)
}

func TestHostileSlowloris(t *testing.T) {
	srv, addr := hostileServer(t, nil)
	f := dialAGI(t, addr)
	header := []byte(asteriskHeader(ScriptAgentState, "1001"))

	// One byte every 20 ms would take about 8 s for the whole header. The
	// server must close the connection at its idle timeout although bytes
	// keep arriving.
	sent := 0
	for ; sent < len(header); sent++ {
		if _, err := f.conn.Write(header[sent : sent+1]); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
		if srv.Stats().InvalidHeaders == 1 {
			break
		}
	}

	assert.Less(t, sent, len(header), "the server read the whole header")
	requireDropped(t, f.conn)
	assert.Equal(t, uint64(1), srv.Stats().InvalidHeaders)
	requireServing(t, addr)
}

func TestHostileAddressNotAllowed(t *testing.T) {
	agents := newFakeAgents(readyAg)
	srv := newTestServer(t, agents, func(c *Config) {
		c.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	addr := startServer(t, srv)
	f := dialAGI(t, addr)
	// The write may fail once the server has closed the connection.
	_, _ = io.WriteString(f.conn, asteriskHeader(ScriptAgentLogin, "1001"))

	requireDropped(t, f.conn)

	st := srv.Stats()
	assert.Equal(t, uint64(1), st.RejectedAddress)
	assert.Equal(t, uint64(0), st.Accepted)
	assert.Empty(t, agents.recorded())
}

func TestAllowedAddresses(t *testing.T) {
	srv := newTestServer(t, newFakeAgents(), func(c *Config) {
		c.Allow = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	})
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5000}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 5000}, true},
		{&net.TCPAddr{IP: net.ParseIP("10.2.0.1"), Port: 5000}, false},
		{&net.TCPAddr{IP: net.ParseIP("fd00::1"), Port: 5000, Zone: "eth0"}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5000}, false},
		{&net.UnixAddr{Name: "/run/agi.sock", Net: "unix"}, false},
	}
	for _, tt := range tests {
		_, ok := srv.allowed(tt.addr)
		assert.Equal(t, tt.want, ok, "address %s", tt.addr)
	}
}

func TestSessionCap(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := newTestServer(t, newFakeAgents(readyAg), func(c *Config) { c.MaxSessions = 1 })
	require.NoError(t, srv.Handle("hold", func(ctx context.Context, s *Session) error {
		entered <- struct{}{}
		<-release
		return s.SetVariable(ctx, "HELD", "1")
	}))
	addr := startServer(t, srv)

	first := dialAGI(t, addr)
	first.write(asteriskHeader("hold"))
	<-entered
	second := dialAGI(t, addr)
	second.requireFailure()
	st := srv.Stats()
	assert.Equal(t, uint64(1), st.RejectedBusy)
	assert.Equal(t, 1, st.Active)

	close(release)
	assert.Equal(t, map[string]string{"HELD": "1"}, first.serveVariables())
	require.Eventually(t, func() bool { return srv.Stats().Active == 0 }, 2*time.Second, 10*time.Millisecond)
	requireServing(t, addr)
}

func TestShutdownWaitsForSession(t *testing.T) {
	agents := newFakeAgents(readyAg)
	agents.block = make(chan struct{})
	agents.entered = make(chan struct{}, 1)
	srv := newTestServer(t, agents, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	f := dialAGI(t, ln.Addr().String())
	f.write(asteriskHeader(ScriptAgentLogin, "1001"))
	<-agents.entered
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- srv.Shutdown(ctx)
	}()
	require.ErrorIs(t, <-served, ErrServerClosed)
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	require.Error(t, err, "the listener is closed")

	close(agents.block)
	vars := f.serveVariables()

	assert.Equal(t, ResultOK, vars[VarResult], "the session in flight finished")
	assert.Equal(t, "READY", vars[VarState])
	require.NoError(t, <-shutdown)
}

func TestShutdownDeadlineClosesSessions(t *testing.T) {
	agents := newFakeAgents(readyAg)
	agents.block = make(chan struct{}) // never closed
	agents.entered = make(chan struct{}, 1)
	srv := newTestServer(t, agents, func(c *Config) { c.CommandTimeout = time.Minute })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	f := dialAGI(t, ln.Addr().String())
	f.write(asteriskHeader(ScriptAgentLogin, "1001"))
	<-agents.entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()

	err = srv.Shutdown(ctx)

	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "closed 1 sessions")
	require.ErrorIs(t, <-served, ErrServerClosed)
	assert.Equal(t, 0, srv.Stats().Active)
	rest, _ := io.ReadAll(f.br) // closed by the server; a reset is fine too
	assert.Empty(t, string(rest), "no command after the forced close")
}
