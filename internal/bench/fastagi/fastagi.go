// Package fastagi plays Asterisk's side of a FastAGI session: it connects
// to the server, sends the agi_* header and responds to every command as
// res_agi does when it succeeds: "200 result=0" to EXEC (the result of
// the application, 0 for MSet) and "200 result=1" to the others, such as
// SET VARIABLE.
package fastagi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Header returns the header Asterisk 22.10.1 sends for
// AGI(agi://addr/script,args...) from the agentd-agi context of the
// sandbox, ended by the blank line.
func Header(addr, script, uniqueID string, args ...string) string {
	var b strings.Builder
	line := func(key, value string) { b.WriteString("agi_" + key + ": " + value + "\n") }
	line("network", "yes")
	line("network_script", script)
	line("request", "agi://"+addr+"/"+script)
	line("channel", "Local/agi@agent-phones-00000018;1")
	line("language", "en")
	line("type", "Local")
	line("uniqueid", uniqueID)
	line("version", "22.10.1")
	line("callerid", "unknown")
	line("calleridname", "unknown")
	line("callingpres", "67")
	line("callingani2", "0")
	line("callington", "0")
	line("callingtns", "0")
	line("dnid", "unknown")
	line("rdnis", "unknown")
	line("context", "agentd-agi")
	line("extension", "state")
	line("priority", "1")
	line("enhanced", "0.0")
	line("accountcode", "")
	line("threadid", "139960680269504")
	for i, a := range args {
		line(fmt.Sprintf("arg_%d", i+1), a)
	}
	b.WriteString("\n")
	return b.String()
}

// Session runs one session against addr with the given header and returns
// the commands the server sent, in order. It ends when the server closes
// the connection, which is how a FastAGI script ends, or at the deadline.
func Session(addr, header string, timeout time.Duration) ([]string, error) {
	return NewClient().Session(addr, header, timeout)
}

// Client runs sessions one after another and reuses its buffers between
// them, so that the Go garbage collector, which the client shares with the
// server under test, has little of the client's memory to collect. It is
// not safe for concurrent use.
type Client struct {
	br       *bufio.Reader
	header   string
	headerB  []byte
	commands []string
}

// NewClient returns a Client.
func NewClient() *Client {
	return &Client{br: bufio.NewReader(nil)}
}

// Session is the package's Session on c's buffers. The returned slice is
// valid until the next call.
func (c *Client) Session(addr, header string, timeout time.Duration) ([]string, error) {
	// No TCP keepalive, so the client makes no system calls beyond the
	// session itself.
	dialer := net.Dialer{Timeout: timeout, KeepAlive: -1}
	conn, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial FastAGI %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))

	if header != c.header {
		c.header, c.headerB = header, []byte(header)
	}
	if _, err := conn.Write(c.headerB); err != nil {
		return nil, fmt.Errorf("write FastAGI header: %w", err)
	}
	c.commands = c.commands[:0]
	c.br.Reset(conn)
	defer c.br.Reset(nil)
	for {
		line, err := c.br.ReadSlice('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return c.commands, nil
		}
		if err != nil {
			return c.commands, fmt.Errorf("read FastAGI command %d: %w", len(c.commands)+1, err)
		}
		command := strings.TrimRight(string(line), "\r\n")
		c.commands = append(c.commands, command)
		resp := resultOne
		if strings.HasPrefix(command, "EXEC ") {
			resp = resultZero
		}
		if _, err := conn.Write(resp); err != nil {
			return c.commands, fmt.Errorf("write the response to FastAGI command %q: %w", command, err)
		}
	}
}

// Responses of res_agi to a command that succeeded.
var (
	resultOne  = []byte("200 result=1\n")
	resultZero = []byte("200 result=0\n")
)
