package agi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// failureLine makes Asterisk end the AGI with AGISTATUS=FAILURE: run_agi()
// treats a line starting with "failure" that way (checked with Asterisk
// 22.10.1). A connection closed without it ends with AGISTATUS=SUCCESS.
const failureLine = "failure\n"

// failureWriteTimeout bounds the write of failureLine, which goes to a
// socket buffer that is empty or nearly so.
const failureWriteTimeout = 100 * time.Millisecond

// Session is one FastAGI connection from Asterisk, after its header. Its
// methods are safe for concurrent use; commands are sent one at a time.
type Session struct {
	conn    net.Conn
	r       *reader
	header  Header
	request Request
	timeout time.Duration

	// ctx is the context the server gives the handler. It ends only
	// together with a close of conn, and is nil in sessions that tests build.
	ctx context.Context

	serverLog *slog.Logger
	logOnce   sync.Once
	log       *slog.Logger // from serverLog, built by Logger

	hangups atomic.Int64
	// result is the last AGENT_RESULT set, for Config.OnSession.
	result atomic.Pointer[string]

	mu  sync.Mutex
	err error // the failure that closed the session; guarded by mu
}

func newSession(conn net.Conn, r *reader, h Header, req Request, timeout time.Duration, log *slog.Logger) *Session {
	return &Session{conn: conn, r: r, header: h, request: req, timeout: timeout, serverLog: log}
}

// Header returns the agi_* variables Asterisk sent.
func (s *Session) Header() Header {
	return s.header
}

// Request returns the script name, query and arguments of the session.
func (s *Session) Request() Request {
	return s.request
}

// Logger returns the session's logger, which adds the script name and the
// channel's uniqueid to each line. It is built on first use, because most
// sessions log nothing and With costs allocations.
func (s *Session) Logger() *slog.Logger {
	s.logOnce.Do(func() {
		s.log = s.serverLog.With("script", s.request.Script, "uniqueid", s.header.UniqueID())
	})
	return s.log
}

// HungUp reports whether Asterisk has sent HANGUP, meaning the channel hung
// up. Asterisk still runs the commands allowed on a dead channel, such as
// SET VARIABLE, until the session ends, unless AGIEXITONHANGUP=yes made it
// close the connection.
func (s *Session) HungUp() bool {
	return s.hangups.Load() > 0
}

// Command sends one command and returns its response. words are the
// command words, such as "SET VARIABLE". Each of args is sent quoted, so it
// may contain spaces, quotes and backslashes but no line break.
//
// The wait ends at the earlier of ctx's deadline and the session's command
// timeout. A 510, 511 or 520 response is returned together with an error
// wrapping ErrInvalidCommand, ErrDeadChannel or ErrUsage. A failed write or
// read, a timeout or an invalid response closes the session: every later
// command fails with ErrSessionClosed, because the next line could be the
// late response to the failed command.
func (s *Session) Command(ctx context.Context, words string, args ...string) (Response, error) {
	line, err := formatCommand(words, args)
	if err != nil {
		return Response{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return Response{}, fmt.Errorf("%w: %s not sent after an earlier failure: %w", ErrSessionClosed, words, s.err)
	}
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("AGI %s not sent: %w", words, err)
	}
	resp, err := s.roundTrip(ctx, line)
	if err != nil {
		s.err = err
		return Response{}, fmt.Errorf("AGI %s: %w", words, err)
	}
	return resp, statusError(words, resp)
}

// roundTrip writes one command line and reads its response under the
// command deadline. A ctx that ends during the wait moves the connection's
// deadline to the past, which unblocks the read.
func (s *Session) roundTrip(ctx context.Context, line string) (Response, error) {
	deadline := time.Now().Add(s.timeout)
	ctxDeadline, fromCtx := ctx.Deadline()
	if fromCtx && ctxDeadline.Before(deadline) {
		deadline = ctxDeadline
	} else {
		fromCtx = false
	}
	if err := s.conn.SetDeadline(deadline); err != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrSessionClosed, err)
	}
	if ctx == s.ctx {
		// The session's own context ends only together with a close of
		// the connection, which ends the read anyway.
		return s.exchange(ctx, line, fromCtx)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = s.conn.SetDeadline(time.Unix(1, 0)) // the error is the read's to report
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
		}
	}()
	return s.exchange(ctx, line, fromCtx)
}

// exchange writes line and reads its response under the deadline already
// set on the connection.
func (s *Session) exchange(ctx context.Context, line string, ctxDeadline bool) (Response, error) {
	if _, err := io.WriteString(s.conn, line); err != nil {
		return Response{}, s.ioError(ctx, err, ctxDeadline)
	}
	resp, err := s.r.readResponse()
	s.hangups.Store(int64(s.r.hangups))
	if err != nil {
		return Response{}, s.ioError(ctx, err, ctxDeadline)
	}
	return resp, nil
}

// ioError classifies a failed write or read. ctxDeadline reports that the
// connection's deadline was ctx's, which can expire a moment before ctx
// reports it.
func (s *Session) ioError(ctx context.Context, err error, ctxDeadline bool) error {
	timedOut := errors.Is(err, os.ErrDeadlineExceeded)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), timedOut && ctxDeadline:
		return fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrSessionClosed, ctx.Err())
	case timedOut:
		return fmt.Errorf("%w: no response within %v", ErrTimeout, s.timeout)
	case errors.Is(err, ErrInvalidResponse), errors.Is(err, ErrLineTooLong):
		return err
	default:
		return fmt.Errorf("%w: %w", ErrSessionClosed, err)
	}
}

// statusError returns the error for a response other than 200.
func statusError(words string, resp Response) error {
	switch resp.Code {
	case CodeInvalidCommand:
		return fmt.Errorf("%w: %s: %s", ErrInvalidCommand, words, resp.Text)
	case CodeDeadChannel:
		return fmt.Errorf("%w: %s: %s", ErrDeadChannel, words, resp.Text)
	case CodeUsage:
		return fmt.Errorf("%w: %s: %s", ErrUsage, words, resp.Text)
	default:
		return nil
	}
}

// fail writes failureLine unless a command is in flight, so that the
// dialplan gets AGISTATUS=FAILURE after a failed session. A write error is
// ignored because the connection is closed next anyway.
func (s *Session) fail() {
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	writeFailure(s.conn)
}

func writeFailure(conn net.Conn) {
	if err := conn.SetWriteDeadline(time.Now().Add(failureWriteTimeout)); err != nil {
		return
	}
	_, _ = io.WriteString(conn, failureLine) // best effort; see fail
}

// SetVariable sets a channel variable with SET VARIABLE. name may be a
// dialplan function such as QUEUE_MEMBER(sales,paused,PJSIP/1001), because
// Asterisk writes it with pbx_builtin_setvar_helper(). value may contain
// spaces, quotes and backslashes; a value with a line break or a NUL byte
// gives ErrInvalidArgument and sends nothing.
func (s *Session) SetVariable(ctx context.Context, name, value string) error {
	if name == "" {
		return fmt.Errorf("%w: SET VARIABLE needs a variable name", ErrInvalidArgument)
	}
	resp, err := s.Command(ctx, "SET VARIABLE", name, value)
	if err != nil {
		return err
	}
	// res_agi's handle_setvariable() returns result=1 whenever it ran.
	if resp.Result != 1 {
		return fmt.Errorf("%w: SET VARIABLE %s returned %q", ErrInvalidResponse, name, resp.String())
	}
	s.recordResult(name, value)
	return nil
}

// Variable is a channel variable for SetVariables.
type Variable struct {
	Name, Value string
}

// appNotFound is the result of EXEC for an application Asterisk does not
// have, as "agi show commands topic exec" documents it.
const appNotFound = -2

// SetVariables sets several channel variables. The plain ones (see
// msetPlain) go in EXEC MSet commands, one round trip for as many as fit
// in a command line. Each other variable gets its own SET VARIABLE after
// that. When Asterisk has no MSet, every variable goes by SET VARIABLE.
func (s *Session) SetVariables(ctx context.Context, vars []Variable) error {
	var plain, other []Variable
	for _, v := range vars {
		if msetPlain(v) {
			plain = append(plain, v)
		} else {
			other = append(other, v)
		}
	}
	var single []Variable
	batches := msetBatches(plain)
	for i, batch := range batches {
		if len(batch) == 1 {
			single = append(single, batch...)
			continue
		}
		done, err := s.mset(ctx, batch)
		if err != nil {
			return err
		}
		if !done {
			for _, rest := range batches[i:] {
				single = append(single, rest...)
			}
			break
		}
	}
	for _, v := range append(single, other...) {
		if err := s.SetVariable(ctx, v.Name, v.Value); err != nil {
			return err
		}
	}
	return nil
}

// msetRoom is the room for the pairs in an EXEC MSet command line: the
// command, its quotes and the line end take the rest of maxCommandBytes.
const msetRoom = maxCommandBytes - len(`EXEC "MSet" ""`+"\n")

// msetBatches splits plain variables, in order, into batches whose MSet
// command fits in a command line. A variable too long for any batch is
// alone in its batch.
func msetBatches(vars []Variable) [][]Variable {
	var batches [][]Variable
	var batch []Variable
	size := 0
	for _, v := range vars {
		n := len(v.Name) + 1 + len(v.Value)
		if len(batch) > 0 && size+1+n > msetRoom {
			batches = append(batches, batch)
			batch, size = nil, 0
		}
		if len(batch) > 0 {
			size++ // the comma
		}
		batch = append(batch, v)
		size += n
	}
	if len(batch) > 0 {
		batches = append(batches, batch)
	}
	return batches
}

// msetMissingLogged is set once the missing MSet application was logged,
// so an old Asterisk does not get the warning on every session.
var msetMissingLogged atomic.Bool

// mset sets vars with EXEC MSet. done is false when Asterisk has no MSet
// application or does not run EXEC: the caller then uses SET VARIABLE.
func (s *Session) mset(ctx context.Context, vars []Variable) (done bool, err error) {
	var b strings.Builder
	for i, v := range vars {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v.Name)
		b.WriteByte('=')
		b.WriteString(v.Value)
	}
	resp, err := s.Command(ctx, "EXEC", "MSet", b.String())
	if errors.Is(err, ErrDeadChannel) || errors.Is(err, ErrInvalidCommand) || errors.Is(err, ErrUsage) {
		// SET VARIABLE is permitted on a dead channel and known to every
		// res_agi. When EXEC is refused (511), unknown (510) or gets its
		// usage text (520), SET VARIABLE still sets the variables.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if resp.Result == appNotFound {
		if msetMissingLogged.CompareAndSwap(false, true) {
			s.Logger().Warn("Asterisk has no MSet application; setting variables one by one")
		}
		return false, nil
	}
	for _, v := range vars {
		s.recordResult(v.Name, v.Value)
	}
	return true, nil
}

// recordResult keeps the value of AGENT_RESULT, the session's outcome for
// Config.OnSession, when name is that variable.
func (s *Session) recordResult(name, value string) {
	if name == VarResult {
		s.result.Store(&value)
	}
}

// msetPlain reports whether MSet passes v's name and value through
// unchanged. Checked on Asterisk 22.10.1: MSet splits at commas, drops
// double quotes and backslashes, and a parenthesis or bracket without its
// pair joins the following pairs into the value. The other printable
// ASCII characters and UTF-8 text pass unchanged.
func msetPlain(v Variable) bool {
	if v.Name == "" {
		return false
	}
	for _, c := range []byte(v.Name) {
		if !isWordByte(c) {
			return false
		}
	}
	for _, c := range []byte(v.Value) {
		if c < ' ' || c == 0x7f || strings.IndexByte(msetSpecial, c) >= 0 {
			return false
		}
	}
	return true
}

// msetSpecial are the characters that MSet or the AGI command line
// change: separators, quotes, escapes, and the pairs that nest. '$' is
// among them because the help of EXEC says it expands ${...} when the
// channel has AGIEXECFULL=yes.
// NOTE: Asterisk 22.10.1 did not expand it in TestAsteriskSetVariables.
const msetSpecial = ",|\\\"'()[]{}$" + "`"

// GetVariable reads a channel variable or dialplan function with GET
// VARIABLE. ok is false when the variable is not set. Asterisk 22 returns
// at most 1023 bytes of the value.
func (s *Session) GetVariable(ctx context.Context, name string) (value string, ok bool, err error) {
	if name == "" {
		return "", false, fmt.Errorf("%w: GET VARIABLE needs a variable name", ErrInvalidArgument)
	}
	resp, err := s.Command(ctx, "GET VARIABLE", name)
	if err != nil {
		return "", false, err
	}
	if resp.Result != 1 {
		return "", false, nil
	}
	return resp.Data, true, nil
}

// Verbose writes message to the Asterisk console and log at the given
// verbosity level (1 to 4) with VERBOSE.
func (s *Session) Verbose(ctx context.Context, message string, level int) error {
	if level < 1 || level > 4 {
		return fmt.Errorf("%w: VERBOSE level %d is not between 1 and 4", ErrInvalidArgument, level)
	}
	_, err := s.Command(ctx, "VERBOSE", message, strconv.Itoa(level))
	return err
}
