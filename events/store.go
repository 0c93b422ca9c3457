package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactcenter/agentd/agent"
)

// ErrClosed is wrapped, together with agent.ErrStoreUnavailable, by Commit
// after Close.
var ErrClosed = errors.New("events store closed")

var _ agent.Store = (*Store)(nil)

// Store keeps agent sessions in a JetStream key-value bucket and publishes
// every change as an event, with an on-disk outbox for NATS outages. It
// implements agent.Store. Open creates it and Close releases it.
type Store struct {
	cfg Config
	log *slog.Logger

	srv    *server.Server // embedded server, nil with external URLs
	nc     *nats.Conn
	js     jetstream.JetStream
	status *connStatus

	// connGen changes on every disconnect, so that ensureSetup can tell
	// whether the connection it set up is still the current one.
	connGen atomic.Uint64
	setupMu sync.Mutex
	kv      jetstream.KeyValue

	// mu guards outbox, closed and outboxFull. It is not held while a
	// change is stored in NATS, so commits of different agents overlap.
	mu         sync.Mutex
	outbox     *outbox
	closed     bool
	outboxFull bool
	// ackNotify is closed and replaced each time the flusher stores a
	// record, to wake Commit calls waiting for theirs.
	ackNotify chan struct{}
	// backlog is set while records wait in the outbox because NATS was
	// down when they were written.
	backlog bool
	// commits counts Commit calls in progress, for Close to wait on.
	commits sync.WaitGroup

	entityID atomic.Pointer[string]

	wake        chan struct{}
	stopping    chan struct{}
	flushCtx    context.Context
	cancelFlush context.CancelFunc
	flusherDone chan struct{}

	// lastReconnectErr is only used by the NATS callback goroutine.
	lastReconnectErr string

	published       atomic.Uint64
	duplicates      atomic.Uint64
	failed          atomic.Uint64
	outboxed        atomic.Uint64
	reconnectErrors atomic.Uint64
}

// Stats are counters of a Store since Open.
type Stats struct {
	// Published counts events the stream stored.
	Published uint64
	// Duplicates counts publishes the stream dropped because it had
	// stored the same event id within its duplicate window.
	Duplicates uint64
	// Failed counts failed attempts to store a change in NATS. A change
	// retried from the outbox counts once per attempt.
	Failed uint64
	// Outboxed counts changes written to the outbox.
	Outboxed uint64
	// OutboxDepth and OutboxBytes are the changes waiting in the outbox
	// now and their size on disk.
	OutboxDepth int
	OutboxBytes int64
	// Reconnects counts reconnections of the NATS client, and
	// ReconnectErrors failed reconnect attempts.
	Reconnects      uint64
	ReconnectErrors uint64
}

// setupTimeout bounds the creation or update of the stream and bucket.
const setupTimeout = 10 * time.Second

// Open starts the embedded NATS server or connects to the external one,
// creates or updates the stream and bucket, loads the outbox and starts the
// flusher. An external server that is unreachable for
// Config.Conn.ConnectTimeout does not fail Open: commits go to the outbox
// and the client keeps reconnecting. A stream or bucket that cannot be
// created on a reachable server does fail it.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:         cfg,
		log:         log,
		status:      newConnStatus(),
		wake:        make(chan struct{}, 1),
		stopping:    make(chan struct{}),
		flusherDone: make(chan struct{}),
		ackNotify:   make(chan struct{}),
	}
	s.flushCtx, s.cancelFlush = context.WithCancel(context.Background())

	ob, err := openOutbox(filepath.Join(cfg.DataDir, "outbox"), cfg.OutboxMaxEntries, cfg.OutboxMaxBytes, log)
	if err != nil {
		return nil, err
	}
	s.outbox = ob

	if err := s.connect(ctx); err != nil {
		s.cancelFlush()
		close(s.stopping)
		return nil, errors.Join(err, s.release())
	}
	go s.runFlusher()
	return s, nil
}

func (s *Store) connect(ctx context.Context) error {
	opts, err := natsOptions(s.cfg.Conn, "agentd "+s.cfg.Node, s.handlers(), s.log)
	if err != nil {
		return err
	}
	url := strings.Join(s.cfg.Conn.URLs, ",")
	if s.cfg.embedded() {
		if s.srv, err = startEmbedded(s.cfg, s.log); err != nil {
			return err
		}
		opts = append(opts, nats.InProcessServer(s.srv))
		url = nats.DefaultURL
	}

	if s.nc, err = nats.Connect(url, opts...); err != nil {
		return fmt.Errorf("connect to NATS %s: %w", redactedURLs(strings.Split(url, ",")), err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return fmt.Errorf("JetStream client: %w", err)
	}

	if !s.waitConnected(ctx) {
		s.log.Warn("NATS unreachable at start; changes go to the outbox until it is back",
			"urls", redactedURLs(s.cfg.Conn.URLs), "timeout", s.cfg.Conn.ConnectTimeout)
		return nil
	}
	if _, err := s.ensureSetup(ctx); err != nil {
		return err
	}
	return nil
}

func (s *Store) waitConnected(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Conn.ConnectTimeout)
	defer cancel()
	for !s.nc.IsConnected() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

func (s *Store) handlers() connHandlers {
	return connHandlers{
		connected: func(url string) {
			s.lastReconnectErr = ""
			if s.srv != nil {
				url = "embedded, in-process"
			}
			s.log.Info("connected to NATS", "url", url)
			s.wakeFlusher()
		},
		disconnected: func(err error) {
			s.connGen.Add(1)
			s.status.setDown(err)
			if err == nil && s.isStopping() {
				return // Close ended the connection
			}
			s.log.Warn("disconnected from NATS; reconnecting", "err", err)
		},
		reconnectErr: func(err error) {
			s.reconnectErrors.Add(1)
			s.status.setDown(err)
			if msg := err.Error(); msg != s.lastReconnectErr {
				s.lastReconnectErr = msg
				s.log.Warn("reconnecting to NATS failed; retrying", "err", err)
			}
		},
		closed: func() {
			s.connGen.Add(1)
			s.status.setDown(nats.ErrConnectionClosed)
			if !s.isStopping() {
				s.log.Error("NATS connection closed; changes go to the outbox until agentd restarts")
			}
		},
	}
}

// ensureSetup creates or updates the stream and the bucket once per
// connection and marks the store up. A disconnect marks the store down, so
// the next call after a reconnect checks them again: a server that lost
// its state gets them back.
func (s *Store) ensureSetup(ctx context.Context) (jetstream.KeyValue, error) {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if s.kv != nil && s.status.isUp() {
		return s.kv, nil
	}
	gen := s.connGen.Load()
	if !s.nc.IsConnected() {
		return nil, errNotConnected
	}

	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	kv, err := s.createStreamAndBucket(ctx)
	if err != nil {
		s.status.setDown(err)
		return nil, err
	}
	s.kv = kv
	if s.connGen.Load() != gen || !s.nc.IsConnected() {
		return nil, errNotConnected
	}
	s.status.setUp()
	return kv, nil
}

func (s *Store) createStreamAndBucket(ctx context.Context) (jetstream.KeyValue, error) {
	if _, err := s.js.CreateOrUpdateStream(ctx, streamConfig(s.cfg)); err != nil {
		return nil, fmt.Errorf("create or update stream %s: %w", s.cfg.Stream, err)
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, bucketConfig(s.cfg))
	if err != nil {
		return nil, fmt.Errorf("create or update bucket %s: %w", s.cfg.Bucket, err)
	}
	return kv, nil
}

func streamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "agentd agent session events",
		Subjects:    []string{cfg.SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.StreamMaxAge,
		Replicas:    cfg.StreamReplicas,
		Duplicates:  cfg.DuplicateWindow,
	}
}

func bucketConfig(cfg Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "agentd agent sessions by agent id",
		History:     uint8(cfg.BucketHistory), // validated to 1..64
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.BucketReplicas,
	}
}

// Commit stores c.Session in the bucket and publishes c as one event. If
// NATS is not ready, or the outbox still holds older changes, the change
// is appended to the outbox instead and Commit returns once it is synced to
// disk. A full or failing outbox gives an error wrapping
// agent.ErrStoreUnavailable.
//
// Commits of different agents may run concurrently. Commits of one agent
// must not overlap, as agent.Store requires. Then a change never overtakes
// an earlier change of its agent: that change is either stored or in the
// outbox, and a non-empty outbox sends every new change behind it.
func (s *Store) Commit(ctx context.Context, c agent.Change) error {
	// Every change is written to the outbox and synced first, so a crash
	// between the bucket put and the publish cannot lose the event. After a
	// restart the flusher stores the record again, and the stream drops a
	// second copy by its id.
	rec, err := s.writeChange(c, false)
	if err != nil {
		return err
	}
	defer s.commits.Done()
	s.waitIfUp(ctx, rec.Seq)
	return nil
}

// writeChange encodes c and appends it to the outbox, held back from the
// flusher if held. On success it returns the record with its sequence
// number and has added one to s.commits, which the caller must end.
func (s *Store) writeChange(c agent.Change, held bool) (record, error) {
	rec, err := s.newRecord(c)
	if err != nil {
		return record{}, err
	}
	if err := s.beginCommit(); err != nil {
		return record{}, err
	}
	s.mu.Lock()
	err = s.appendOutbox(rec, held)
	rec.Seq = s.outbox.nextSeq - 1
	s.mu.Unlock()
	if err != nil {
		s.commits.Done()
		return record{}, err
	}
	return rec, nil
}

// waitIfUp waits, while NATS is up, for the flusher to store record seq,
// so a subscriber or a bucket read after the commit finds it. The change
// is durable either way, so a timeout here is not an error.
func (s *Store) waitIfUp(ctx context.Context, seq uint64) {
	if s.status.isUp() {
		s.waitStored(ctx, seq)
	}
}

// waitStored waits until the outbox record seq is stored in NATS, ctx ends
// or PublishTimeout passes.
func (s *Store) waitStored(ctx context.Context, seq uint64) {
	timer := time.NewTimer(s.cfg.PublishTimeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		stored := !s.outbox.isPending(seq)
		notify := s.ackNotify
		s.mu.Unlock()
		if stored {
			return
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		}
	}
}

func (s *Store) beginCommit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%w: %w", agent.ErrStoreUnavailable, ErrClosed)
	}
	s.commits.Add(1)
	return nil
}

func (s *Store) newRecord(c agent.Change) (record, error) {
	id := newEventID(time.Now())
	ev, err := newEvent(c, id, eventOrigin{node: s.cfg.Node, asteriskEntityID: s.AsteriskEntityID()})
	if err != nil {
		return record{}, err
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return record{}, fmt.Errorf("encode event of agent %s: %w", ev.AgentID, err)
	}
	session, err := json.Marshal(c.Session)
	if err != nil {
		return record{}, fmt.Errorf("encode session of agent %s: %w", ev.AgentID, err)
	}
	return record{AgentID: ev.AgentID, Type: ev.Type, EventID: id, Event: payload, Session: session}, nil
}

// appendOutbox writes rec to the outbox, held back from the flusher if
// held. The caller holds s.mu.
func (s *Store) appendOutbox(rec record, held bool) error {
	if err := s.outbox.append(rec, held); err != nil {
		if !s.outboxFull {
			s.log.Error("writing change to the outbox failed; commits fail until NATS takes the outbox",
				"agent_id", rec.AgentID, "event_id", rec.EventID, "err", err)
		}
		s.outboxFull = true
		return fmt.Errorf("%w: %w", agent.ErrStoreUnavailable, err)
	}

	s.outboxFull = false
	if up, _, lastErr := s.status.get(); !up {
		// Outboxed counts the changes that wait for NATS, not the
		// write-ahead copy every change gets.
		s.outboxed.Add(1)
		if !s.backlog {
			s.backlog = true
			s.log.Warn("NATS unavailable; changes go to the outbox until it is back",
				"agent_id", rec.AgentID, "event_id", rec.EventID, "err", lastErr)
		}
	}
	s.wakeFlusher()
	return nil
}

// storeRecord puts the session in the bucket, then publishes the event with
// its id as Nats-Msg-Id, so that storing a record again is harmless.
func (s *Store) storeRecord(ctx context.Context, rec record) error {
	kv, err := s.ensureSetup(ctx)
	if err != nil {
		s.failed.Add(1)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()

	if _, err := kv.Put(ctx, rec.AgentID, rec.Session); err != nil {
		s.failed.Add(1)
		return fmt.Errorf("put session of agent %s in bucket %s: %w", rec.AgentID, s.cfg.Bucket, err)
	}

	msg := &nats.Msg{Subject: subject(s.cfg.SubjectPrefix, rec.AgentID, rec.Type), Data: rec.Event, Header: nats.Header{}}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(rec.EventID), jetstream.WithExpectStream(s.cfg.Stream))
	if err != nil {
		s.failed.Add(1)
		return fmt.Errorf("publish event %s on %s: %w", rec.EventID, msg.Subject, err)
	}
	if ack.Duplicate {
		s.duplicates.Add(1)
	} else {
		s.published.Add(1)
	}
	s.log.Debug("change stored", "agent_id", rec.AgentID, "event_id", rec.EventID, "stream_seq", ack.Sequence)
	return nil
}

func (s *Store) wakeFlusher() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// SetAsteriskEntityID sets the Asterisk entity id written in later events
// as asterisk_entity_id, as ARI GET /asterisk/info returns it in
// system.entity_id.
func (s *Store) SetAsteriskEntityID(id string) {
	s.entityID.Store(&id)
}

// AsteriskEntityID returns the id set by SetAsteriskEntityID, or "".
func (s *Store) AsteriskEntityID() string {
	if id := s.entityID.Load(); id != nil {
		return *id
	}
	return ""
}

// Status reports whether the store is connected to NATS with its stream and
// bucket in place, since when that holds, and the last error while it does
// not hold. Commits go to the outbox while up is false.
func (s *Store) Status() (up bool, since time.Time, lastErr error) {
	return s.status.get()
}

// Stats returns the counters of the store.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	entries, bytes := s.outbox.depth()
	s.mu.Unlock()
	return Stats{
		Published:       s.published.Load(),
		Duplicates:      s.duplicates.Load(),
		Failed:          s.failed.Load(),
		Outboxed:        s.outboxed.Load(),
		OutboxDepth:     entries,
		OutboxBytes:     bytes,
		Reconnects:      s.nc.Stats().Reconnects,
		ReconnectErrors: s.reconnectErrors.Load(),
	}
}

// Close stops new commits, lets the flusher store what it can of the
// outbox until ctx ends, then closes the connection and stops the embedded
// server. Changes left in the outbox are stored after the next Open. A
// second Close returns nil.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	// A commit in progress ends within PublishTimeout, or setupTimeout if
	// it must create the stream first, in the outbox at worst. A staged
	// change ends when its request releases or withdraws it, after the
	// request's Asterisk actions, which ctx does not bound. The flusher
	// then drains the outbox.
	s.commits.Wait()
	close(s.stopping)
	select {
	case <-s.flusherDone:
	case <-ctx.Done():
		s.cancelFlush()
		<-s.flusherDone
	}
	s.cancelFlush()

	if entries, _ := s.outbox.depth(); entries > 0 {
		s.log.Warn("closing with changes in the outbox; they are stored after the next start", "entries", entries)
	}
	return s.release()
}

// release closes the connection, the embedded server and the outbox files.
func (s *Store) release() error {
	if s.nc != nil {
		s.nc.Close()
	}
	if s.srv != nil {
		stopEmbedded(s.srv, s.log)
	}
	return s.outbox.close()
}

func redactedURLs(urls []string) string {
	out := make([]string, 0, len(urls))
	for _, u := range urls {
		out = append(out, redactURL(u))
	}
	return strings.Join(out, ",")
}

// redactURL hides the password or token that a NATS URL may carry. A
// user info without a colon is a token, so it is hidden whole.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	user, _, hasPassword := strings.Cut(userinfo, ":")
	if !hasPassword {
		return scheme + "://xxxxx@" + host
	}
	return scheme + "://" + user + ":xxxxx@" + host
}
