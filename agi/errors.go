package agi

import "errors"

// Errors of the protocol layer and of sessions. Test for them with
// errors.Is: the returned errors wrap them with the offending value.
var (
	// ErrInvalidHeader is a header line that is not "agi_<name>: <value>",
	// a repeated name, a gap in agi_arg_N or a header without variables.
	ErrInvalidHeader = errors.New("invalid AGI header")
	// ErrInvalidResponse is a line that is not a response Asterisk sends.
	ErrInvalidResponse = errors.New("invalid AGI response")
	// ErrLineTooLong is a line longer than Config.MaxLineBytes.
	ErrLineTooLong = errors.New("AGI line too long")
	// ErrInvalidCommand is a 510 response: Asterisk does not know the
	// command.
	ErrInvalidCommand = errors.New("asterisk rejected AGI command as unknown (510)")
	// ErrDeadChannel is a 511 response: the command is not permitted after
	// the channel hung up.
	ErrDeadChannel = errors.New("AGI command not permitted on a dead channel (511)")
	// ErrUsage is a 520 response: the command's arguments are invalid.
	ErrUsage = errors.New("invalid AGI command syntax (520)")
	// ErrInvalidArgument is a command word or argument that cannot be sent:
	// it contains a line break or a NUL byte, or the command line is longer
	// than Asterisk reads.
	ErrInvalidArgument = errors.New("invalid AGI command argument")
	// ErrTimeout is a command whose response did not arrive before its
	// deadline.
	ErrTimeout = errors.New("AGI command timed out")
	// ErrSessionClosed is a command on a session whose connection failed,
	// timed out or was closed by Asterisk. After such a failure the next
	// line could be the response to the earlier command, so the session
	// sends nothing more.
	ErrSessionClosed = errors.New("AGI session closed")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("agi: server closed")
)
