package testbench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// amiBanner starts the first line Asterisk sends on a new AMI connection,
// followed by the AMI version (11.0.0 on Asterisk 22).
const amiBanner = "Asterisk Call Manager/"

// actionTimeout bounds one AMI exchange, from dial to the last list event.
const actionTimeout = 10 * time.Second

// noDeadline clears a deadline set on a net.Conn.
var noDeadline time.Time

var (
	errMalformedLine  = errors.New("malformed AMI line")
	errMalformedEvent = errors.New("malformed AMI event")
	errNotAsterisk    = errors.New("peer is not an Asterisk manager interface")
	errActionFailed   = errors.New("AMI action failed")
	errUnexpectedList = errors.New("unexpected AMI list end")
)

// actionIDs numbers the actions of every connection of this process, so an
// ActionID is unique in the Asterisk log even across connections.
var actionIDs atomic.Uint64

// amiHeader is one "Key: Value" line. Actions use a slice of them because
// some keys, such as Originate's Variable, repeat.
type amiHeader struct {
	key, value string
}

// actionError is an AMI response with "Response: Error".
type actionError struct {
	action  string
	message string
}

func (e *actionError) Error() string {
	return fmt.Sprintf("AMI action %s failed: %s", e.action, e.message)
}

func (e *actionError) Unwrap() error { return errActionFailed }

// amiConn is one logged-in AMI session. It is not safe for concurrent use.
type amiConn struct {
	conn   net.Conn
	reader *bufio.Reader
}

// dialAMI connects to addr, checks the banner and logs in. With events
// false the session receives no events, so only responses and the list
// events of its own actions arrive.
func dialAMI(addr, user, secret string, events bool) (*amiConn, error) {
	conn, err := net.DialTimeout("tcp", addr, actionTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial AMI %s: %w", addr, err)
	}
	c := &amiConn{conn: conn, reader: bufio.NewReader(conn)}

	if err := c.readBanner(); err != nil {
		conn.Close()
		return nil, err
	}

	eventMask := "off"
	if events {
		eventMask = "on"
	}
	_, err = c.do("Login", amiHeader{"Username", user}, amiHeader{"Secret", secret}, amiHeader{"Events", eventMask})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("AMI login as %s at %s: %w", user, addr, err)
	}
	return c, nil
}

func (c *amiConn) readBanner() error {
	if err := c.conn.SetReadDeadline(time.Now().Add(actionTimeout)); err != nil {
		return err
	}
	line, err := c.reader.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read AMI banner: %w", err)
	}
	if !strings.HasPrefix(line, amiBanner) {
		return fmt.Errorf("%w: banner %q", errNotAsterisk, strings.TrimSpace(line))
	}
	return nil
}

func (c *amiConn) close() {
	c.conn.Close()
}

// do sends one action and returns its response. A response with "EventList:
// start" is followed by list events, which doList collects; do is for
// actions without a list.
func (c *amiConn) do(action string, headers ...amiHeader) (map[string]string, error) {
	response, _, err := c.exchange(action, actionTimeout, headers)
	return response, err
}

// doList sends a list action such as QueueStatus and returns its events, up
// to the one carrying "EventList: Complete", which is included.
func (c *amiConn) doList(action string, headers ...amiHeader) ([]map[string]string, error) {
	_, events, err := c.exchange(action, actionTimeout, headers)
	return events, err
}

func (c *amiConn) exchange(action string, timeout time.Duration, headers []amiHeader) (map[string]string, []map[string]string, error) {
	id := "testbench-" + strconv.FormatUint(actionIDs.Add(1), 10)
	if err := c.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, nil, err
	}
	if err := c.write(action, id, headers); err != nil {
		return nil, nil, err
	}

	response, err := c.readResponse(id)
	if err != nil {
		return nil, nil, fmt.Errorf("AMI action %s: %w", action, err)
	}
	if response["Response"] == "Error" {
		return response, nil, &actionError{action: action, message: response["Message"]}
	}
	if response["EventList"] != "start" {
		return response, nil, nil
	}

	events, err := c.readList(id)
	if err != nil {
		return response, nil, fmt.Errorf("AMI action %s: %w", action, err)
	}
	return response, events, nil
}

func (c *amiConn) write(action, id string, headers []amiHeader) error {
	var frame strings.Builder
	frame.WriteString("Action: " + action + "\r\n")
	frame.WriteString("ActionID: " + id + "\r\n")
	for _, h := range headers {
		frame.WriteString(h.key + ": " + h.value + "\r\n")
	}
	frame.WriteString("\r\n")

	if _, err := io.WriteString(c.conn, frame.String()); err != nil {
		return fmt.Errorf("send AMI action %s: %w", action, err)
	}
	return nil
}

// readResponse skips events until the response to action id arrives.
func (c *amiConn) readResponse(id string) (map[string]string, error) {
	for {
		message, err := readAMIMessage(c.reader)
		if err != nil {
			return nil, err
		}
		if _, ok := message["Response"]; ok && message["ActionID"] == id {
			return message, nil
		}
	}
}

// readList collects the events of list action id until "EventList: Complete".
func (c *amiConn) readList(id string) ([]map[string]string, error) {
	var events []map[string]string
	for {
		message, err := readAMIMessage(c.reader)
		if err != nil {
			return nil, err
		}
		if message["ActionID"] != id {
			continue
		}
		events = append(events, message)

		switch message["EventList"] {
		case "Complete":
			return events, nil
		case "Cancelled":
			return nil, fmt.Errorf("%w: list cancelled: %v", errUnexpectedList, message)
		}
	}
}

// readAMIMessage reads one message: "Key: Value" lines ended by CRLF, then
// an empty line. A key that repeats within the message keeps its first value.
func readAMIMessage(r *bufio.Reader) (map[string]string, error) {
	message := make(map[string]string)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(message) == 0 {
				continue
			}
			return message, nil
		}

		key, value, found := strings.Cut(line, ":")
		if !found {
			return nil, fmt.Errorf("%w: %q", errMalformedLine, line)
		}
		if _, seen := message[key]; !seen {
			message[key] = strings.TrimPrefix(value, " ")
		}
	}
}
