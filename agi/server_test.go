package agi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handlerResult carries what a test handler saw back to the test.
type handlerResult struct {
	resp Response
	ok   bool // of GetVariable
	err  error
}

// probeServer serves a single test script "probe" that runs fn.
func probeServer(t *testing.T, edit func(*Config), fn Handler) (*Server, string) {
	t.Helper()
	srv := newTestServer(t, newFakeAgents(readyAg), edit)
	require.NoError(t, srv.Handle("probe", fn))
	return srv, startServer(t, srv)
}

func TestSessionErrorResponses(t *testing.T) {
	results := make(chan handlerResult, 4)
	_, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		resp, err := s.Command(ctx, "FOO BAR")
		results <- handlerResult{resp: resp, err: err}
		err = s.SetVariable(ctx, "X", "1")
		results <- handlerResult{err: err}
		resp, err = s.Command(ctx, "SET VARIABLE")
		results <- handlerResult{resp: resp, err: err}
		value, ok, err := s.GetVariable(ctx, "X")
		results <- handlerResult{resp: Response{Data: value}, ok: ok, err: err}
		return nil
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	assert.Equal(t, []string{"FOO", "BAR"}, f.mustCommand())
	f.write("510 Invalid or unknown command\n")
	assert.Equal(t, []string{"SET", "VARIABLE", "X", "1"}, f.mustCommand())
	f.write("511 Command Not Permitted on a dead channel or intercept routine\n")
	assert.Equal(t, []string{"SET", "VARIABLE"}, f.mustCommand())
	f.write(usage520)
	assert.Equal(t, []string{"GET", "VARIABLE", "X"}, f.mustCommand())
	f.write("200 result=1 (after usage)\n")
	f.requireClosed()

	r := <-results
	require.ErrorIs(t, r.err, ErrInvalidCommand)
	assert.Equal(t, CodeInvalidCommand, r.resp.Code)
	r = <-results
	require.ErrorIs(t, r.err, ErrDeadChannel)
	r = <-results
	require.ErrorIs(t, r.err, ErrUsage)
	assert.Equal(t, []string{"Sets a variable to the current channel."}, r.resp.Usage)
	r = <-results
	require.NoError(t, r.err)
	assert.True(t, r.ok)
	assert.Equal(t, "after usage", r.resp.Data, "the command after a 520 block gets its own response")
}

func TestSessionHangupKeepsPairing(t *testing.T) {
	// Each GET VARIABLE returns the variable's name as its value, so a
	// response paired with the wrong command shows up as a wrong value.
	names := []string{"A", "B", "C", "D"}
	results := make(chan handlerResult, len(names))
	hungUp := make(chan bool, 1)
	srv, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		for _, name := range names {
			value, ok, err := s.GetVariable(ctx, name)
			results <- handlerResult{resp: Response{Data: value}, ok: ok, err: err}
		}
		hungUp <- s.HungUp()
		return nil
	})

	f := dialAGI(t, addr)
	// HANGUP before the first command, between commands, while a command
	// waits, and after the last response.
	f.write(asteriskHeader("probe") + "HANGUP\n")
	f.mustCommand()
	f.write("200 result=1 (A)\n")
	f.write("HANGUP\n")
	f.mustCommand()
	f.write("200 result=1 (B)\n")
	f.mustCommand()
	f.write("HANGUP\n200 result=1 (C)\n")
	f.mustCommand()
	f.write("200 result=1 (D)\nHANGUP\n")
	f.requireClosed()

	for _, name := range names {
		r := <-results
		require.NoError(t, r.err)
		assert.True(t, r.ok)
		assert.Equal(t, name, r.resp.Data)
	}
	assert.True(t, <-hungUp)
	require.Eventually(t, func() bool { return srv.Stats().Hangups == 1 }, 2*time.Second, 10*time.Millisecond)
	assert.Equal(t, uint64(0), srv.Stats().Failed)
}

func TestAgentStateWithHangup(t *testing.T) {
	srv := newTestServer(t, newFakeAgents(readyAg), nil)
	addr := startServer(t, srv)
	f := dialAGI(t, addr)
	f.write(asteriskHeader(ScriptAgentState, "1001") + "HANGUP\n")

	vars := f.serveVariables()

	assert.Equal(t, "READY", vars[VarState])
	assert.Len(t, vars, 8)
}

func TestSessionHangupThenClose(t *testing.T) {
	// With AGIEXITONHANGUP=yes Asterisk writes HANGUP and closes.
	errs := make(chan error, 2)
	srv, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		err := s.SetVariable(ctx, "X", "1")
		errs <- err
		errs <- s.SetVariable(ctx, "Y", "2")
		return err
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	f.mustCommand()
	f.write("HANGUP\n")
	require.NoError(t, f.conn.Close())

	require.ErrorIs(t, <-errs, ErrSessionClosed)
	second := <-errs
	require.ErrorIs(t, second, ErrSessionClosed)
	require.ErrorContains(t, second, "not sent after an earlier failure")
	require.Eventually(t, func() bool { return srv.Stats().Active == 0 }, 2*time.Second, 10*time.Millisecond)
	st := srv.Stats()
	assert.Equal(t, uint64(1), st.Hangups)
	assert.Equal(t, uint64(0), st.Failed, "a session ended by a hangup is not a failure")
}

func TestCommandTimeout(t *testing.T) {
	errs := make(chan error, 2)
	srv, addr := probeServer(t, func(c *Config) { c.CommandTimeout = 100 * time.Millisecond }, func(ctx context.Context, s *Session) error {
		_, err := s.Command(ctx, "NOOP")
		errs <- err
		_, err2 := s.Command(ctx, "NOOP")
		errs <- err2
		return err
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	assert.Equal(t, []string{"NOOP"}, f.mustCommand())
	require.ErrorIs(t, <-errs, ErrTimeout)
	require.ErrorIs(t, <-errs, ErrSessionClosed)
	f.requireFailure() // the second NOOP was never sent
	require.Eventually(t, func() bool { return srv.Stats().Failed == 1 }, 2*time.Second, 10*time.Millisecond)
}

func TestCommandContextEnds(t *testing.T) {
	tests := []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		want error
	}{
		{"canceled", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 50*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := make(chan error, 1)
			_, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
				ctx, cancel := tt.ctx(ctx)
				defer cancel()
				_, err := s.Command(ctx, "NOOP")
				errs <- err
				return nil
			})

			f := dialAGI(t, addr)
			f.write(asteriskHeader("probe"))
			f.mustCommand()

			err := <-errs
			require.ErrorIs(t, err, tt.want)
			f.requireClosed()
		})
	}
}

func TestCommandInvalidResponse(t *testing.T) {
	errs := make(chan error, 2)
	_, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		_, err := s.Command(ctx, "NOOP")
		errs <- err
		_, err = s.Command(ctx, "NOOP")
		errs <- err
		return nil
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	f.mustCommand()
	f.write("hello there\n")

	require.ErrorIs(t, <-errs, ErrInvalidResponse)
	require.ErrorIs(t, <-errs, ErrSessionClosed)
	f.requireClosed()
}

func TestSessionArguments(t *testing.T) {
	errs := make(chan error, 3)
	_, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		errs <- s.Verbose(ctx, `agent "1001" logged in`, 3)
		errs <- s.Verbose(ctx, "x", 9)
		errs <- s.SetVariable(ctx, "X", "line\nbreak")
		return nil
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	assert.Equal(t, []string{"VERBOSE", `agent "1001" logged in`, "3"}, f.mustCommand())
	f.write("200 result=1\n")
	f.requireClosed()

	require.NoError(t, <-errs)
	require.ErrorIs(t, <-errs, ErrInvalidArgument)
	require.ErrorIs(t, <-errs, ErrInvalidArgument, "a value with a line break is rejected, not sent")
}

func TestSessionCommandsOneAtATime(t *testing.T) {
	const workers = 8
	_, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for i := range workers {
			wg.Go(func() { errs[i] = s.SetVariable(ctx, "X", "1") })
		}
		wg.Wait()
		return errors.Join(errs...)
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	for range workers {
		f.mustCommand()
		// A second command written before this response would be in the
		// buffer or arrive within the wait.
		time.Sleep(20 * time.Millisecond)
		require.Zero(t, f.br.Buffered(), "a command was sent before the previous response")
		f.write("200 result=1\n")
	}
	f.requireClosed()
}

func TestHandlerPanic(t *testing.T) {
	srv, addr := probeServer(t, nil, func(context.Context, *Session) error {
		panic("handler bug")
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	f.requireFailure()

	require.Eventually(t, func() bool { return srv.Stats().Failed == 1 }, 2*time.Second, 10*time.Millisecond)
	assert.Equal(t, "READY", runScript(t, addr, ScriptAgentState, "1001")[VarState], "the server still serves")
}

func TestHandleRegistration(t *testing.T) {
	srv := newTestServer(t, newFakeAgents(), nil)
	noop := func(context.Context, *Session) error { return nil }

	require.NoError(t, srv.Handle("custom", noop))
	require.ErrorContains(t, srv.Handle("custom", noop), "already registered")
	require.ErrorContains(t, srv.Handle(ScriptAgentState, noop), "already registered")
	for _, bad := range []string{"", "a?b", "/a", "a/", "a,b"} {
		require.ErrorContains(t, srv.Handle(bad, noop), "cannot register", "script %q", bad)
	}
	assert.ErrorContains(t, srv.Handle("nil_handler", nil), "cannot register")
}

func TestNewServerConfig(t *testing.T) {
	srv, err := NewServer(Config{}, newFakeAgents())
	require.NoError(t, err)
	assert.Equal(t, DefaultAddr, srv.cfg.Addr)
	assert.Equal(t, DefaultAllow(), srv.cfg.Allow)
	assert.Equal(t, DefaultMaxSessions, srv.cfg.MaxSessions)
	assert.Equal(t, DefaultCommandTimeout, srv.cfg.CommandTimeout)
	assert.Equal(t, DefaultIdleTimeout, srv.cfg.IdleTimeout)
	assert.Equal(t, DefaultMaxLineBytes, srv.cfg.MaxLineBytes)
	assert.Nil(t, srv.Addr())

	_, err = NewServer(Config{}, nil)
	require.ErrorContains(t, err, "needs an Agents")

	_, err = NewServer(Config{Allow: []netip.Prefix{}}, newFakeAgents())
	require.ErrorContains(t, err, "allow list is empty")

	_, err = NewServer(Config{
		MaxSessions:  -1,
		IdleTimeout:  -time.Second,
		MaxLineBytes: 100,
		Allow:        []netip.Prefix{{}},
	}, newFakeAgents())
	require.Error(t, err)
	for _, msg := range []string{"max sessions -1", "idle timeout -1s", "max line bytes 100", "allow entry"} {
		assert.ErrorContains(t, err, msg)
	}
}

func TestListenAndServe(t *testing.T) {
	srv := newTestServer(t, newFakeAgents(readyAg), func(c *Config) { c.Addr = "127.0.0.1:0" })
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(context.Background()) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 2*time.Second, 5*time.Millisecond)

	assert.Equal(t, "READY", runScript(t, srv.Addr().String(), ScriptAgentState, "1001")[VarState])

	require.NoError(t, srv.Shutdown(context.Background()))
	require.ErrorIs(t, <-done, ErrServerClosed)
	require.NoError(t, srv.Shutdown(context.Background()), "a second Shutdown is harmless")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.ErrorIs(t, srv.Serve(context.Background(), ln), ErrServerClosed, "Serve after Shutdown")
}

func TestListenAndServeAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	srv := newTestServer(t, newFakeAgents(), func(c *Config) { c.Addr = ln.Addr().String() })

	err = srv.ListenAndServe(context.Background())

	assert.ErrorContains(t, err, "listen on "+ln.Addr().String())
}

func TestServeContextEnds(t *testing.T) {
	entered := make(chan struct{})
	handlerErr := make(chan error, 1)
	srv := newTestServer(t, newFakeAgents(), nil)
	require.NoError(t, srv.Handle("hold", func(ctx context.Context, s *Session) error {
		close(entered)
		<-ctx.Done()
		handlerErr <- ctx.Err()
		return nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	f := dialAGI(t, ln.Addr().String())
	f.write(asteriskHeader("hold"))
	<-entered
	cancel()

	require.ErrorIs(t, <-done, context.Canceled)
	require.ErrorIs(t, <-handlerErr, context.Canceled)
	_, err = io.ReadAll(f.br)
	require.NoError(t, err, "the session's connection is closed")
	assert.Equal(t, 0, srv.Stats().Active)
}

func TestCommandContextAlreadyDone(t *testing.T) {
	errs := make(chan error, 2)
	_, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		done, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.Command(done, "NOOP")
		errs <- err
		errs <- s.SetVariable(ctx, "X", "1")
		return nil
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	assert.Equal(t, []string{"SET", "VARIABLE", "X", "1"}, f.mustCommand(), "the canceled NOOP was not sent")
	f.write("200 result=1\n")
	f.requireClosed()

	require.ErrorIs(t, <-errs, context.Canceled)
	require.NoError(t, <-errs, "a command not sent leaves the session usable")
}

func TestGetVariableUnset(t *testing.T) {
	type result struct {
		value string
		ok    bool
		err   error
	}
	results := make(chan result, 1)
	_, addr := probeServer(t, nil, func(ctx context.Context, s *Session) error {
		value, ok, err := s.GetVariable(ctx, "NOPE")
		results <- result{value, ok, err}
		return nil
	})

	f := dialAGI(t, addr)
	f.write(asteriskHeader("probe"))
	assert.Equal(t, []string{"GET", "VARIABLE", "NOPE"}, f.mustCommand())
	f.write("200 result=0\n")
	f.requireClosed()

	r := <-results
	require.NoError(t, r.err)
	assert.False(t, r.ok)
	assert.Empty(t, r.value)
}

func TestSessionGoroutinesReused(t *testing.T) {
	srv := newTestServer(t, newFakeAgents(readyAg), nil)
	addr := startServer(t, srv)

	for range 20 {
		vars := runScript(t, addr, ScriptAgentState, "1001")
		require.Equal(t, "READY", vars[VarState])
		require.Eventually(t, func() bool { return srv.Stats().Active == 0 }, 5*time.Second, time.Millisecond)
	}

	assert.Equal(t, uint64(20), srv.Stats().Accepted)
	// Without reuse each session starts a goroutine. A session may start
	// one when it arrives before the last goroutine is back in its wait.
	assert.Less(t, srv.counters.workers.Load(), uint64(10), "sessions one after another reuse goroutines")
}
