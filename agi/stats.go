package agi

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the counters of a Server since it was created.
type Stats struct {
	// Accepted counts connections that passed the allow list and the
	// session cap.
	Accepted uint64
	// Active is the number of sessions in progress.
	Active int
	// RejectedAddress counts connections closed because the peer address
	// is outside Config.Allow.
	RejectedAddress uint64
	// RejectedBusy counts connections closed because MaxSessions sessions
	// were in progress.
	RejectedBusy uint64
	// InvalidHeaders counts sessions closed before a handler ran: invalid
	// header, line too long, or no complete header within IdleTimeout.
	InvalidHeaders uint64
	// UnknownScripts counts sessions whose script has no handler.
	UnknownScripts uint64
	// Failed counts sessions whose handler returned an error or panicked,
	// except those that ended because the channel hung up.
	Failed uint64
	// Hangups counts sessions in which Asterisk reported that the channel
	// hung up.
	Hangups uint64
}

type counters struct {
	accepted        atomic.Uint64
	rejectedAddress atomic.Uint64
	rejectedBusy    atomic.Uint64
	invalidHeaders  atomic.Uint64
	unknownScripts  atomic.Uint64
	failed          atomic.Uint64
	hangups         atomic.Uint64
	workers         atomic.Uint64 // session goroutines started

	addressLog logLimiter
	busyLog    logLimiter
	headerLog  logLimiter
}

func (c *counters) snapshot() Stats {
	return Stats{
		Accepted:        c.accepted.Load(),
		RejectedAddress: c.rejectedAddress.Load(),
		RejectedBusy:    c.rejectedBusy.Load(),
		InvalidHeaders:  c.invalidHeaders.Load(),
		UnknownScripts:  c.unknownScripts.Load(),
		Failed:          c.failed.Load(),
		Hangups:         c.hangups.Load(),
	}
}

// logLimiter lets one warning through per rejectLogInterval, so a flood of
// rejected connections cannot flood the log. The next line that passes
// reports how many were suppressed.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *logLimiter) log(log *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < rejectLogInterval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	log.Warn(msg, append(args, "suppressed_since_last", suppressed)...)
}
