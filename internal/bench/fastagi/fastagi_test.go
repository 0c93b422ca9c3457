package fastagi

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testTimeout = 5 * time.Second

// scriptServer is a FastAGI server on 127.0.0.1:0 that reads the header,
// sends commands, reads one response line after each, and closes. It
// records the headers and responses it read.
type scriptServer struct {
	ln        net.Listener
	commands  []string
	wg        sync.WaitGroup
	mu        sync.Mutex
	headers   []string
	responses []string
}

func newScriptServer(t testing.TB, commands ...string) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &scriptServer{ln: ln, commands: commands}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *scriptServer) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	var header strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\n" {
			break
		}
		header.WriteString(line)
	}
	s.mu.Lock()
	s.headers = append(s.headers, header.String())
	s.mu.Unlock()
	for _, c := range s.commands {
		if _, err := io.WriteString(conn, c+"\n"); err != nil {
			return
		}
		resp, err := br.ReadString('\n')
		if err != nil {
			return
		}
		s.mu.Lock()
		s.responses = append(s.responses, resp)
		s.mu.Unlock()
	}
}

func TestHeaderArgumentsAndEnd(t *testing.T) {
	h := Header("127.0.0.1:4573", "agent_state", "1796415647.48", "1001", "7")

	assert.Contains(t, h, "agi_network: yes\n")
	assert.Contains(t, h, "agi_request: agi://127.0.0.1:4573/agent_state\n")
	assert.Contains(t, h, "agi_arg_1: 1001\nagi_arg_2: 7\n")
	assert.True(t, strings.HasSuffix(h, "\n\n"), "the header ends with a blank line")
}

func TestSessionAnswersEveryCommand(t *testing.T) {
	srv := newScriptServer(t, `SET VARIABLE "AGENT_STATE" "READY"`, `SET VARIABLE "AGENT_RESULT" "OK"`)

	commands, err := Session(srv.ln.Addr().String(), Header(srv.ln.Addr().String(), "agent_state", "1.1", "1001"), testTimeout)

	require.NoError(t, err)
	assert.Equal(t, []string{`SET VARIABLE "AGENT_STATE" "READY"`, `SET VARIABLE "AGENT_RESULT" "OK"`}, commands)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	assert.Equal(t, []string{"200 result=1\n", "200 result=1\n"}, srv.responses)
	require.Len(t, srv.headers, 1)
	assert.Contains(t, srv.headers[0], "agi_arg_1: 1001\n")
}

func TestSessionWithoutCommands(t *testing.T) {
	srv := newScriptServer(t)

	commands, err := Session(srv.ln.Addr().String(), Header(srv.ln.Addr().String(), "agent_state", "1.1"), testTimeout)

	require.NoError(t, err)
	assert.Empty(t, commands)
}

func TestSessionDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = Session(addr, Header(addr, "agent_state", "1.1"), time.Second)

	assert.ErrorContains(t, err, "dial FastAGI")
}

// BenchmarkSession runs one session of eight commands, as agentd's
// agent_state sends, against the script server on loopback.
func BenchmarkSession(b *testing.B) {
	commands := make([]string, 8)
	for i := range commands {
		commands[i] = `SET VARIABLE "AGENT_STATE" "PAUSED"`
	}
	srv := newScriptServer(b, commands...)
	addr := srv.ln.Addr().String()
	header := Header(addr, "agent_state", "1.1", "1001")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Session(addr, header, testTimeout); err != nil {
			b.Fatal(err)
		}
	}
}
