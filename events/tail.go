package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TailConfig configures Tail.
type TailConfig struct {
	// Conn selects the server. With no URLs, Tail connects to
	// nats://127.0.0.1:4222, where the embedded server listens by default.
	Conn ConnConfig
	// SubjectPrefix and Stream are as in Config, with the same defaults.
	SubjectPrefix string
	Stream        string
	// AgentID limits the output to the events of one agent.
	AgentID string
	// FromStart prints the events the stream holds before the new ones.
	FromStart bool
}

// Tail prints one line per event of the stream to w until ctx ends, then
// returns nil. It reads through an ephemeral ordered consumer and deletes
// it when it returns. If that fails, the server deletes it after
// tailInactiveThreshold.
func Tail(ctx context.Context, cfg TailConfig, w io.Writer) error {
	if err := cfg.prepare(); err != nil {
		return err
	}
	opts, err := authOptions(cfg.Conn)
	if err != nil {
		return err
	}
	opts = append(opts, nats.Name("agentd events"), nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay(cfg.Conn.ReconnectWaitMin, cfg.Conn.ReconnectWaitMax)))

	url := strings.Join(cfg.Conn.URLs, ",")
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS %s: %w", redactedURLs(cfg.Conn.URLs), err)
	}
	defer nc.Close()

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("JetStream client: %w", err)
	}
	cons, err := tailConsumer(ctx, js, cfg)
	if err != nil {
		return err
	}
	defer deleteConsumer(js, cfg.Stream, cons)

	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume stream %s: %w", cfg.Stream, err)
	}
	defer it.Stop()
	return printMessages(ctx, it, w)
}

// tailInactiveThreshold is how long the server keeps the consumer of Tail
// after its last pull request.
const tailInactiveThreshold = time.Minute

func (cfg *TailConfig) prepare() error {
	if len(cfg.Conn.URLs) == 0 {
		cfg.Conn.URLs = []string{DefaultTailURL}
	}
	cfg.Conn.applyDefaults()
	cfg.SubjectPrefix = defaultString(cfg.SubjectPrefix, DefaultSubjectPrefix)
	cfg.Stream = defaultString(cfg.Stream, DefaultStream)

	errs := []error{cfg.Conn.validate(), validatePrefix(cfg.SubjectPrefix)}
	if !tokenPattern.MatchString(cfg.Stream) {
		errs = append(errs, fmt.Errorf("stream name %q: use letters, digits, _ and -", cfg.Stream))
	}
	if cfg.AgentID != "" && !tokenPattern.MatchString(cfg.AgentID) {
		errs = append(errs, fmt.Errorf("agent id %q: use letters, digits, _ and -", cfg.AgentID))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func tailConsumer(ctx context.Context, js jetstream.JetStream, cfg TailConfig) (jetstream.Consumer, error) {
	filter := cfg.SubjectPrefix + ".>"
	if cfg.AgentID != "" {
		filter = cfg.SubjectPrefix + "." + cfg.AgentID + ".*"
	}
	policy := jetstream.DeliverNewPolicy
	if cfg.FromStart {
		policy = jetstream.DeliverAllPolicy
	}

	cons, err := js.OrderedConsumer(ctx, cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{filter},
		DeliverPolicy:     policy,
		InactiveThreshold: tailInactiveThreshold,
	})
	if err != nil {
		return nil, fmt.Errorf("consume stream %s: %w", cfg.Stream, err)
	}
	return cons, nil
}

// deleteConsumer removes the consumer of Tail from the server. A failure
// only leaves the consumer until tailInactiveThreshold has passed.
func deleteConsumer(js jetstream.JetStream, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = js.DeleteConsumer(ctx, stream, info.Name)
}

func printMessages(ctx context.Context, it jetstream.MessagesContext, w io.Writer) error {
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the end of ctx is how Tail stops, and Tail documents nil for it
		}
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		if _, err := io.WriteString(w, formatMessage(msg)+"\n"); err != nil {
			return fmt.Errorf("write event line: %w", err)
		}
	}
}

// formatMessage returns one line: occurred_at, stream sequence, then the
// event fields as key=value.
func formatMessage(msg jetstream.Msg) string {
	seq := "?"
	if meta, err := msg.Metadata(); err == nil {
		seq = strconv.FormatUint(meta.Sequence.Stream, 10)
	}
	var ev Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		return fmt.Sprintf("seq=%s subject=%s invalid event payload: %v", seq, msg.Subject(), err)
	}
	return formatEvent(seq, ev)
}

func formatEvent(seq string, ev Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s seq=%s agent_id=%s type=%s state=%s previous_state=%s effective_state=%s",
		ev.OccurredAt, seq, ev.AgentID, ev.Type, ev.State, ev.PreviousState, ev.EffectiveState)
	if ev.Pause != nil {
		fmt.Fprintf(&b, " pause_id=%s pause_name=%q", ev.Pause.ID, ev.Pause.Name)
	}
	queues := make([]string, 0, len(ev.Queues))
	for _, q := range ev.Queues {
		queues = append(queues, q.Name)
	}
	fmt.Fprintf(&b, " queues=%s source=%s node=%s revision=%d id=%s",
		strings.Join(queues, ","), ev.Source, ev.Node, ev.Revision, ev.ID)
	return b.String()
}
