package rawami

import (
	"bufio"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testTimeout = 5 * time.Second

func TestReadMessage(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Message
	}{
		{"crlf", "Response: Success\r\nActionID: 1\r\n\r\n", Message{"Response": "Success", "ActionID": "1"}},
		{"bare lf", "Response: Success\nActionID: 1\n\n", Message{"Response": "Success", "ActionID": "1"}},
		{"blank lines before", "\r\n\r\nEvent: X\r\n\r\n", Message{"Event": "X"}},
		{"repeated key keeps first", "Event: X\r\nVariable: a=1\r\nVariable: b=2\r\n\r\n", Message{"Event": "X", "Variable": "a=1"}},
		{"line without colon skipped", "Response: Follows\r\n--END COMMAND--\r\n\r\n", Message{"Response": "Follows"}},
		{"value with colon", "Event: X\r\nTime: 12:30:00\r\n\r\n", Message{"Event": "X", "Time": "12:30:00"}},
		{"empty value", "Event: X\r\nAccountCode: \r\n\r\n", Message{"Event": "X", "AccountCode": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadMessage(bufio.NewReader(strings.NewReader(tt.input)))

			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestReadMessageEndOfStream(t *testing.T) {
	_, err := ReadMessage(bufio.NewReader(strings.NewReader("Event: X\r\n")))

	assert.ErrorIs(t, err, io.EOF)
}

// fakeAMI is an AMI server on 127.0.0.1:0. It accepts the Login with
// secret "s3cret" and passes every other action to the function the test
// sets, which receives the actions of one write batch at a time.
type fakeAMI struct {
	ln     net.Listener
	answer func(w io.Writer, batch []Message)
	wg     sync.WaitGroup
}

func newFakeAMI(t testing.TB, answer func(w io.Writer, batch []Message)) *fakeAMI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeAMI{ln: ln, answer: answer}
	f.wg.Go(f.accept)
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeAMI) addr() string { return f.ln.Addr().String() }

func (f *fakeAMI) accept() {
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Go(func() { f.serve(nc) })
	}
}

func (f *fakeAMI) serve(nc net.Conn) {
	defer nc.Close()
	_, _ = io.WriteString(nc, Banner+"11.0.0\r\n")
	br := bufio.NewReader(nc)
	for {
		msg, err := ReadMessage(br)
		if err != nil {
			return
		}
		if msg["Action"] == "Login" {
			response := "Success"
			if msg["Secret"] != "s3cret" {
				response = "Error\r\nMessage: Authentication failed"
			}
			_, _ = io.WriteString(nc, "Response: "+response+"\r\nActionID: "+msg["ActionID"]+"\r\n\r\n")
			continue
		}
		batch := []Message{msg}
		for br.Buffered() > 0 {
			next, err := ReadMessage(br)
			if err != nil {
				return
			}
			batch = append(batch, next)
		}
		f.answer(nc, batch)
	}
}

// reply writes a success response to each action of batch in reverse order,
// with the action's Queue as Message.
func reverseReply(w io.Writer, batch []Message) {
	for _, m := range slices.Backward(batch) {
		_, _ = io.WriteString(w, "Response: Success\r\nActionID: "+m["ActionID"]+"\r\nMessage: "+m["Queue"]+"\r\n\r\n")
	}
}

func TestSendMatchesResponsesByActionID(t *testing.T) {
	srv := newFakeAMI(t, reverseReply)
	c, err := Dial(srv.addr(), "bench", "s3cret", "off", testTimeout)
	require.NoError(t, err)
	defer c.Close()

	resp, err := c.Send(testTimeout, NewAction("QueueAdd", "Queue", "q1"), NewAction("QueueAdd", "Queue", "q2"), NewAction("QueueAdd", "Queue", "q3"))

	require.NoError(t, err)
	require.Len(t, resp, 3)
	for i, want := range []string{"q1", "q2", "q3"} {
		assert.Equal(t, want, resp[i]["Message"], "response %d", i)
	}
}

func TestSendErrorResponseIsMessage(t *testing.T) {
	srv := newFakeAMI(t, func(w io.Writer, batch []Message) {
		for _, m := range batch {
			_, _ = io.WriteString(w, "Response: Error\r\nActionID: "+m["ActionID"]+"\r\nMessage: Unable to add interface: Already there\r\n\r\n")
		}
	})
	c, err := Dial(srv.addr(), "bench", "s3cret", "off", testTimeout)
	require.NoError(t, err)
	defer c.Close()

	resp, err := c.Send(testTimeout, NewAction("QueueAdd", "Queue", "q1"))

	require.NoError(t, err)
	assert.True(t, resp[0].IsError())
	assert.Equal(t, "Unable to add interface: Already there", resp[0]["Message"])
}

func TestDialRejectedLogin(t *testing.T) {
	srv := newFakeAMI(t, reverseReply)

	_, err := Dial(srv.addr(), "bench", "wrong", "off", testTimeout)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "Authentication failed")
}

func TestListCollectsEvents(t *testing.T) {
	srv := newFakeAMI(t, func(w io.Writer, batch []Message) {
		id := batch[0]["ActionID"]
		_, _ = io.WriteString(w, "Response: Success\r\nActionID: "+id+"\r\nEventList: start\r\n\r\n"+
			"Event: QueueMember\r\nActionID: "+id+"\r\nQueue: q1\r\nLocation: Local/b1@agent-phones/n\r\n\r\n"+
			"Event: QueueStatusComplete\r\nActionID: "+id+"\r\nEventList: Complete\r\n\r\n")
	})
	c, err := Dial(srv.addr(), "bench", "s3cret", "off", testTimeout)
	require.NoError(t, err)
	defer c.Close()

	events, err := c.List(testTimeout, NewAction("QueueStatus"))

	require.NoError(t, err)
	require.Len(t, events, 1)
	assert.Equal(t, "Local/b1@agent-phones/n", events[0]["Location"])
}

func TestEventsDelivered(t *testing.T) {
	srv := newFakeAMI(t, func(w io.Writer, batch []Message) {
		_, _ = io.WriteString(w, "Event: UserEvent\r\nUserEvent: AgentState\r\nAGENT: bench1\r\n\r\n")
		reverseReply(w, batch)
	})
	c, err := Dial(srv.addr(), "bench", "s3cret", "user", testTimeout)
	require.NoError(t, err)
	defer c.Close()

	_, err = c.Send(testTimeout, NewAction("Originate"))
	require.NoError(t, err)

	select {
	case ev := <-c.Events():
		assert.Equal(t, "bench1", ev["AGENT"])
	case <-time.After(testTimeout):
		t.Fatal("event not delivered")
	}
}

func TestSendFailsWhenConnectionCloses(t *testing.T) {
	srv := newFakeAMI(t, func(w io.Writer, _ []Message) {
		w.(net.Conn).Close()
	})
	c, err := Dial(srv.addr(), "bench", "s3cret", "off", testTimeout)
	require.NoError(t, err)
	defer c.Close()

	_, err = c.Send(testTimeout, NewAction("QueueAdd", "Queue", "q1"))

	assert.ErrorIs(t, err, ErrClosed)
}

func TestPoolSendKeepsOrder(t *testing.T) {
	srv := newFakeAMI(t, reverseReply)
	pool, err := DialPool(3, srv.addr(), "bench", "s3cret", "off", testTimeout)
	require.NoError(t, err)
	defer pool.Close()
	var actions []Action
	for _, q := range []string{"q1", "q2", "q3", "q4", "q5", "q6", "q7"} {
		actions = append(actions, NewAction("QueueAdd", "Queue", q))
	}

	resp, err := pool.Send(testTimeout, actions...)

	require.NoError(t, err)
	require.Len(t, resp, len(actions))
	for i, a := range actions {
		assert.Equal(t, a.Headers[0].Value, resp[i]["Message"], "response %d", i)
	}
}

func TestDialPoolRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = DialPool(2, addr, "bench", "s3cret", "off", time.Second)

	var opErr *net.OpError
	assert.ErrorAs(t, err, &opErr)
}

func BenchmarkReadMessage(b *testing.B) {
	frame := "Event: QueueMember\r\nActionID: agentd-bench-1-1\r\nQueue: bench-01\r\nName: bench1_Bench-1\r\n" +
		"Location: Local/b1@agent-phones/n\r\nStateInterface: Local/b1@agent-phones/n\r\nMembership: dynamic\r\n" +
		"Penalty: 0\r\nCallsTaken: 0\r\nLastCall: 0\r\nInCall: 0\r\nStatus: 1\r\nPaused: 0\r\nPausedReason: \r\n\r\n"
	r := strings.NewReader(frame)
	br := bufio.NewReader(r)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		r.Reset(frame)
		br.Reset(r)
		if _, err := ReadMessage(br); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendPipelined sends 10 actions in one write to the fake server
// and waits for the 10 responses.
func BenchmarkSendPipelined(b *testing.B) {
	srv := newFakeAMI(b, reverseReply)
	c, err := Dial(srv.addr(), "bench", "s3cret", "off", testTimeout)
	require.NoError(b, err)
	defer c.Close()
	actions := make([]Action, 10)
	for i := range actions {
		actions[i] = NewAction("QueueAdd", "Queue", "q", "Interface", "Local/b1@agent-phones/n")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Send(testTimeout, actions...); err != nil {
			b.Fatal(err)
		}
	}
}
