package ami

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Input limits of Asterisk 20–22 (main/manager.c): get_input() reads a
// line into a 1025-byte buffer, and an action may have at most
// AST_MAX_MANHEADERS (128) lines. Asterisk 22.10.1 responds to a 1023-byte
// line with "Failed to parse message: line too long" and to 129 lines with
// "Too many lines in message or allocation failure". Those errors look like
// any other error response, so Action rejects such a message before
// sending it.
const (
	asteriskMaxInputLine   = 1022
	asteriskMaxInputFields = 128
)

// Action sends msg and returns the response with the same ActionID. The
// ActionID of msg, if any, is replaced with a unique one, and msg itself is
// not changed. Many actions may be in flight at once.
//
// Errors:
//   - ErrNotConnected, at once, when no logged-in connection is up, or when
//     the connection is lost before the response arrives. In the second
//     case the outcome of the action is unknown.
//   - ErrTimeout when no response arrives before the deadline of ctx or
//     Config.ActionTimeout, whichever is earlier.
//   - *ResponseError for "Response: Error", returned together with the
//     response.
//   - ErrInvalidField when msg cannot be encoded or breaks the input
//     limits of Asterisk.
func (c *Client) Action(ctx context.Context, msg Message) (Message, error) {
	resp, _, err := c.send(ctx, msg, false)
	return resp, err
}

// ActionList sends an action to which Asterisk responds with a list, such as
// QueueStatus: a response with "EventList: start", events with the same
// ActionID, and a last event with "EventList: Complete". It returns the
// response and the events without the last one. A response without
// "EventList: start", an error response for example, ends the list at
// once. Errors are those of Action, and the deadline covers the whole list.
// The events of a list that arrive after its caller stopped waiting are
// dropped, not passed to OnEvent.
func (c *Client) ActionList(ctx context.Context, msg Message) (Message, []Message, error) {
	return c.send(ctx, msg, true)
}

func (c *Client) send(ctx context.Context, msg Message, list bool) (Message, []Message, error) {
	action := msg.Action()
	if action == "" {
		return Message{}, nil, fmt.Errorf("%w: message has no %s field", ErrInvalidField, KeyAction)
	}

	cn := c.current()
	if cn == nil {
		return Message{}, nil, c.notConnectedError(action)
	}

	msg = msg.Clone()
	msg.Set(KeyActionID, c.newActionID())
	if err := checkAsteriskInputLimits(msg); err != nil {
		return Message{}, nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, c.cfg.ActionTimeout)
	defer cancel()
	c.inFlight.Add(1)
	resp, items, err := cn.do(ctx, msg, list)
	c.inFlight.Add(-1)
	if err != nil {
		c.log.Debug("AMI action failed", "action", action, "action_id", msg.ActionID(), "err", err)
		return Message{}, nil, err
	}
	if strings.EqualFold(resp.Response(), ResponseValueError) {
		return resp, items, &ResponseError{Action: action, Message: resp.Get(KeyMessage)}
	}
	return resp, items, nil
}

func (c *Client) notConnectedError(action string) error {
	_, since, lastErr := c.Status()
	if lastErr == nil {
		return fmt.Errorf("%w: %s not sent, down since %s", ErrNotConnected, action, since.Format(time.RFC3339))
	}
	// lastErr is printed, not wrapped, because it belongs to an earlier
	// connection attempt. Wrapping a failed login's *ResponseError would make
	// mapQueueError return *agent.AsteriskError instead of
	// agent.ErrAsteriskUnavailable.
	return fmt.Errorf("%w: %s not sent, down since %s with last error: %v", ErrNotConnected, action, since.Format(time.RFC3339), lastErr) //nolint:errorlint // lastErr is not the cause of this error
}

func checkAsteriskInputLimits(msg Message) error {
	if msg.Len() > asteriskMaxInputFields {
		return fmt.Errorf("%w: %s has %d fields, but Asterisk accepts at most %d", ErrInvalidField, msg.Action(), msg.Len(), asteriskMaxInputFields)
	}
	for _, f := range msg.Fields {
		if n := len(f.Key) + len(": ") + len(f.Value); n > asteriskMaxInputLine {
			return fmt.Errorf("%w %q: line of %d bytes, but Asterisk accepts at most %d", ErrInvalidField, f.Key, n, asteriskMaxInputLine)
		}
	}
	return nil
}
