package ami

import (
	"errors"
	"fmt"
)

// Errors of Client.
var (
	// ErrNotConnected means that no logged-in connection was available, or
	// that the connection was lost while an action waited for its response.
	ErrNotConnected = errors.New("ami: not connected to Asterisk")
	// ErrTimeout means that no response arrived before the deadline of the
	// context or Config.ActionTimeout.
	ErrTimeout = errors.New("ami: action timed out")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("ami: client closed")
	// ErrRunning is returned by Run while another Run is active.
	ErrRunning = errors.New("ami: client already running")
	// ErrInvalidConfig is returned by Run when the Config cannot work.
	ErrInvalidConfig = errors.New("ami: invalid config")
)

// ResponseError is a "Response: Error" reply of Asterisk to an action.
type ResponseError struct {
	Action  string // action name, e.g. "QueueAdd"
	Message string // the Message field of the response
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("ami: Asterisk rejected %s: %s", e.Action, e.Message)
}
