package agent

import (
	"context"
	"errors"
	"fmt"
)

// Errors returned by the use cases. The HTTP and FastAGI layers map each of
// them to one stable error code; see httpapi for the table.
var (
	ErrUnknownAgent        = errors.New("agent not in the directory")
	ErrNotLoggedIn         = errors.New("agent not logged in")
	ErrUnknownPause        = errors.New("pause not in the pause catalog")
	ErrPauseMismatch       = errors.New("agent is not in this pause")
	ErrAsteriskUnavailable = errors.New("no connection to Asterisk")
	ErrStoreUnavailable    = errors.New("session store unavailable")

	// Errors of a Queues implementation that the use cases handle.
	ErrNoSuchQueue   = errors.New("no such queue")
	ErrAlreadyMember = errors.New("member already in queue")
	ErrNotMember     = errors.New("member not in queue")
)

// AsteriskError is an error reply from Asterisk to an AMI action or an ARI
// request.
type AsteriskError struct {
	Action  string // AMI action or ARI request, e.g. "QueueAdd"
	Message string // Asterisk's own message
}

func (e *AsteriskError) Error() string {
	return fmt.Sprintf("asterisk rejected %s: %s", e.Action, e.Message)
}

// Error codes shared by the HTTP API and FastAGI (AGENT_ERROR). They are
// part of the API: never rename one.
const (
	CodeUnknownAgent        = "forbidden"
	CodeNotLoggedIn         = "not_logged_in"
	CodeUnknownPause        = "unknown_pause"
	CodePauseMismatch       = "pause_mismatch"
	CodeAsteriskError       = "asterisk_error"
	CodeAsteriskUnavailable = "asterisk_unavailable"
	CodeStoreUnavailable    = "store_unavailable"
	CodeTimeout             = "timeout"
	CodeInternal            = "internal_error"
)

// ErrorCode returns the stable code of an error returned by a use case.
func ErrorCode(err error) string {
	var asteriskErr *AsteriskError
	switch {
	case errors.Is(err, ErrUnknownAgent):
		return CodeUnknownAgent
	case errors.Is(err, ErrNotLoggedIn):
		return CodeNotLoggedIn
	case errors.Is(err, ErrUnknownPause):
		return CodeUnknownPause
	case errors.Is(err, ErrPauseMismatch):
		return CodePauseMismatch
	case errors.Is(err, ErrAsteriskUnavailable):
		return CodeAsteriskUnavailable
	case errors.As(err, &asteriskErr):
		return CodeAsteriskError
	case errors.Is(err, ErrStoreUnavailable):
		return CodeStoreUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return CodeTimeout
	default:
		return CodeInternal
	}
}
