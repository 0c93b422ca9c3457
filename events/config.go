package events

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Defaults applied by Open to zero fields of Config.
const (
	DefaultSubjectPrefix    = "agentd.agent"
	DefaultStream           = "AGENT_EVENTS"
	DefaultStreamMaxAge     = 7 * 24 * time.Hour
	DefaultDuplicateWindow  = 24 * time.Hour
	DefaultBucket           = "agent_sessions"
	DefaultBucketHistory    = 5
	DefaultPublishTimeout   = 2 * time.Second
	DefaultOutboxMaxEntries = 100_000
	DefaultOutboxMaxBytes   = 64 << 20
	DefaultConnectTimeout   = 5 * time.Second
	DefaultReconnectWaitMin = 250 * time.Millisecond
	DefaultReconnectWaitMax = 10 * time.Second
	DefaultEmbeddedHost     = "127.0.0.1"
	DefaultEmbeddedPort     = 4222
	DefaultReadyTimeout     = 10 * time.Second
	DefaultTailURL          = "nats://127.0.0.1:4222"
)

// maxReplicas is the largest replica count JetStream accepts for a stream.
const maxReplicas = 5

// maxBucketHistory is the largest history JetStream accepts for a
// key-value bucket.
const maxBucketHistory = 64

// ErrInvalidConfig is wrapped by every configuration error of Open and Tail.
var ErrInvalidConfig = errors.New("invalid events configuration")

// Config configures a Store. Zero fields take the defaults listed on each
// field. Open fills them in and validates the result.
type Config struct {
	// Node is the name of this daemon, written in every event as "node" and
	// used as the NATS client name and the embedded server name. Required,
	// without whitespace.
	Node string
	// DataDir is agentd's data directory. The outbox lives in
	// DataDir/outbox and the embedded server's JetStream store in
	// DataDir/nats. Required.
	DataDir string

	// Conn selects the NATS server. With no URLs, Open starts an embedded
	// server configured by Embedded.
	Conn ConnConfig
	// Embedded configures the in-process nats-server used when Conn.URLs
	// is empty.
	Embedded EmbeddedConfig

	// SubjectPrefix is the first part of every event subject
	// <prefix>.<agent_id>.<type>. Default agentd.agent.
	SubjectPrefix string
	// Stream is the JetStream stream that stores the events, with subjects
	// <prefix>.>. Default AGENT_EVENTS.
	Stream string
	// StreamMaxAge is how long the stream keeps an event. Default 7 days.
	StreamMaxAge time.Duration
	// StreamReplicas is the stream's replica count (1 to 5). Default 1, the
	// only value an embedded server accepts.
	StreamReplicas int
	// DuplicateWindow is how long the stream remembers event ids to drop a
	// second copy. A change whose publish reached the server but whose ack
	// was lost is published again from the outbox once NATS is back, so the
	// window must cover the longest outage to de-duplicate. Default 24 hours,
	// at most StreamMaxAge.
	DuplicateWindow time.Duration
	// Bucket is the key-value bucket of sessions. Default agent_sessions.
	Bucket string
	// BucketReplicas is the bucket's replica count (1 to 5). Default 1, the
	// only value an embedded server accepts.
	BucketReplicas int
	// BucketHistory is how many values the bucket keeps per agent (1 to
	// 64). Default 5.
	BucketHistory int

	// PublishTimeout bounds the key-value put and the publish of one change.
	// A change not stored within it goes to the outbox. Default 2 seconds.
	PublishTimeout time.Duration
	// OutboxMaxEntries is the maximum number of changes waiting in the
	// outbox. Default 100000.
	OutboxMaxEntries int
	// OutboxMaxBytes is the maximum size in bytes of the outbox file.
	// Default 64 MiB.
	OutboxMaxBytes int64
}

// ConnConfig selects and authenticates the NATS connection. At most one of
// User, Token, NKeySeedFile and CredentialsFile may be set.
type ConnConfig struct {
	// URLs of an external NATS server or cluster, e.g.
	// nats://10.0.0.1:4222. Empty means the embedded server.
	URLs []string
	// User and Password authenticate with a user name and password. For the
	// embedded server they are also the credentials it requires.
	User     string
	Password string
	// Token authenticates with a token. For the embedded server it is also
	// the token it requires.
	Token string
	// NKeySeedFile is a file holding an NKey user seed (external only).
	NKeySeedFile string
	// CredentialsFile is a NATS .creds file with a user JWT and seed
	// (external only).
	CredentialsFile string
	// TLSCAFile is a PEM file of CAs that verify the server certificate.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a PEM client certificate and key, for
	// servers that verify clients.
	TLSCertFile string
	TLSKeyFile  string
	// ConnectTimeout is how long Open waits for the first connection to an
	// external server. After it, Open returns anyway, commits go to the
	// outbox and the client keeps reconnecting. Default 5 seconds.
	ConnectTimeout time.Duration
	// ReconnectWaitMin and ReconnectWaitMax bound the exponential backoff
	// between reconnect rounds (each round tries every URL). Defaults 250ms
	// and 10s. A jitter of up to 20% is added.
	ReconnectWaitMin time.Duration
	ReconnectWaitMax time.Duration
}

// EmbeddedConfig configures the in-process nats-server.
type EmbeddedConfig struct {
	// Host is the address the server listens on. Default 127.0.0.1.
	Host string
	// Port is the client port. Default 4222, and -1 picks a free port.
	Port int
	// DontListen starts the server without a socket. Only this process can
	// use it then, so the nats CLI and Tail cannot connect.
	DontListen bool
	// ReadyTimeout bounds the server start. Default 10 seconds.
	ReadyTimeout time.Duration
}

var (
	// tokenPattern matches what agentd accepts as one subject token, as a
	// key-value key and as a stream or bucket name. The directory restricts
	// agent ids to it.
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// eventTypePattern matches event type names such as logged_in.
	eventTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

func (c *Config) applyDefaults() {
	c.SubjectPrefix = defaultString(c.SubjectPrefix, DefaultSubjectPrefix)
	c.Stream = defaultString(c.Stream, DefaultStream)
	c.StreamMaxAge = defaultDuration(c.StreamMaxAge, DefaultStreamMaxAge)
	c.StreamReplicas = defaultInt(c.StreamReplicas, 1)
	c.DuplicateWindow = defaultDuration(c.DuplicateWindow, DefaultDuplicateWindow)
	c.Bucket = defaultString(c.Bucket, DefaultBucket)
	c.BucketReplicas = defaultInt(c.BucketReplicas, 1)
	c.BucketHistory = defaultInt(c.BucketHistory, DefaultBucketHistory)
	c.PublishTimeout = defaultDuration(c.PublishTimeout, DefaultPublishTimeout)
	c.OutboxMaxEntries = defaultInt(c.OutboxMaxEntries, DefaultOutboxMaxEntries)
	if c.OutboxMaxBytes == 0 {
		c.OutboxMaxBytes = DefaultOutboxMaxBytes
	}
	c.Conn.applyDefaults()
	c.Embedded.Host = defaultString(c.Embedded.Host, DefaultEmbeddedHost)
	c.Embedded.Port = defaultInt(c.Embedded.Port, DefaultEmbeddedPort)
	c.Embedded.ReadyTimeout = defaultDuration(c.Embedded.ReadyTimeout, DefaultReadyTimeout)
}

func (c *ConnConfig) applyDefaults() {
	c.ConnectTimeout = defaultDuration(c.ConnectTimeout, DefaultConnectTimeout)
	c.ReconnectWaitMin = defaultDuration(c.ReconnectWaitMin, DefaultReconnectWaitMin)
	c.ReconnectWaitMax = defaultDuration(c.ReconnectWaitMax, DefaultReconnectWaitMax)
}

func (c *Config) embedded() bool {
	return len(c.Conn.URLs) == 0
}

func (c *Config) validate() error {
	var errs []error
	if c.Node == "" || strings.ContainsAny(c.Node, " \t\r\n") {
		errs = append(errs, fmt.Errorf("node %q: set a name without whitespace", c.Node))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir missing: set agentd's data directory"))
	}
	errs = append(errs, validatePrefix(c.SubjectPrefix))
	errs = append(errs, c.validateStream(), c.validateBucket(), c.validateOutbox())
	errs = append(errs, c.Conn.validate())
	if c.embedded() {
		errs = append(errs, c.validateEmbedded())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c *Config) validateStream() error {
	var errs []error
	if !tokenPattern.MatchString(c.Stream) {
		errs = append(errs, fmt.Errorf("stream name %q: use letters, digits, _ and -", c.Stream))
	}
	if c.StreamMaxAge < 0 {
		errs = append(errs, fmt.Errorf("stream max age %s is negative", c.StreamMaxAge))
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > maxReplicas {
		errs = append(errs, fmt.Errorf("stream replicas %d: use 1 to %d", c.StreamReplicas, maxReplicas))
	}
	if c.DuplicateWindow < 0 {
		errs = append(errs, fmt.Errorf("duplicate window %s is negative", c.DuplicateWindow))
	}
	if c.StreamMaxAge > 0 && c.DuplicateWindow > c.StreamMaxAge {
		errs = append(errs, fmt.Errorf("duplicate window %s exceeds stream max age %s", c.DuplicateWindow, c.StreamMaxAge))
	}
	return errors.Join(errs...)
}

func (c *Config) validateBucket() error {
	var errs []error
	if !tokenPattern.MatchString(c.Bucket) {
		errs = append(errs, fmt.Errorf("bucket name %q: use letters, digits, _ and -", c.Bucket))
	}
	if c.BucketReplicas < 1 || c.BucketReplicas > maxReplicas {
		errs = append(errs, fmt.Errorf("bucket replicas %d: use 1 to %d", c.BucketReplicas, maxReplicas))
	}
	if c.BucketHistory < 1 || c.BucketHistory > maxBucketHistory {
		errs = append(errs, fmt.Errorf("bucket history %d: use 1 to %d", c.BucketHistory, maxBucketHistory))
	}
	return errors.Join(errs...)
}

func (c *Config) validateOutbox() error {
	var errs []error
	if c.PublishTimeout < 0 {
		errs = append(errs, fmt.Errorf("publish timeout %s is negative", c.PublishTimeout))
	}
	if c.OutboxMaxEntries < 1 {
		errs = append(errs, fmt.Errorf("outbox max entries %d: use at least 1", c.OutboxMaxEntries))
	}
	if c.OutboxMaxBytes < maxRecordSize {
		errs = append(errs, fmt.Errorf("outbox max bytes %d: use at least %d", c.OutboxMaxBytes, maxRecordSize))
	}
	return errors.Join(errs...)
}

func (c *Config) validateEmbedded() error {
	var errs []error
	if c.StreamReplicas != 1 || c.BucketReplicas != 1 {
		errs = append(errs, errors.New("replicas above 1 need an external NATS cluster: set conn URLs or replicas 1"))
	}
	if c.Conn.NKeySeedFile != "" || c.Conn.CredentialsFile != "" {
		errs = append(errs, errors.New("nkey seed and credentials files need an external NATS server: use user/password or token"))
	}
	if c.Embedded.Port < -1 || c.Embedded.Port > 65535 {
		errs = append(errs, fmt.Errorf("embedded port %d: use 1 to 65535, or -1 for a free port", c.Embedded.Port))
	}
	return errors.Join(errs...)
}

func (c *ConnConfig) validate() error {
	var errs []error
	methods := 0
	for _, set := range []bool{c.User != "", c.Token != "", c.NKeySeedFile != "", c.CredentialsFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		errs = append(errs, errors.New("several NATS authentication methods set: use one of user, token, nkey seed file and credentials file"))
	}
	if c.Password != "" && c.User == "" {
		errs = append(errs, errors.New("NATS password set without user"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("TLS client certificate and key must be set together"))
	}
	if c.ReconnectWaitMin < 0 || c.ReconnectWaitMax < c.ReconnectWaitMin {
		errs = append(errs, fmt.Errorf("reconnect wait %s to %s: min must be positive and at most max", c.ReconnectWaitMin, c.ReconnectWaitMax))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("connect timeout %s is negative", c.ConnectTimeout))
	}
	for _, u := range c.URLs {
		if strings.TrimSpace(u) == "" {
			errs = append(errs, errors.New("empty NATS URL"))
		}
	}
	return errors.Join(errs...)
}

func validatePrefix(prefix string) error {
	for token := range strings.SplitSeq(prefix, ".") {
		if !tokenPattern.MatchString(token) {
			return fmt.Errorf("subject prefix %q: use dot-separated tokens of letters, digits, _ and -", prefix)
		}
	}
	return nil
}

func defaultString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func defaultInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func defaultDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// ValidateConfig checks cfg as Open does, with the defaults applied,
// without opening anything. agentd check-config uses it.
func ValidateConfig(cfg Config) error {
	cfg.applyDefaults()
	return cfg.validate()
}
