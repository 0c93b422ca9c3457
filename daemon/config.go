package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/events"
)

// EnvPrefix starts every environment variable that overrides a key of the
// configuration file: ami.password is AGENTD_AMI_PASSWORD.
const EnvPrefix = "AGENTD_"

// Config is the main configuration file. Every key is documented in
// docs/configuration.md.
type Config struct {
	Node            string            `yaml:"node"`
	DataDir         string            `yaml:"data_dir"`
	Directory       string            `yaml:"directory"`
	Log             LogConfig         `yaml:"log"`
	HTTP            HTTPConfig        `yaml:"http"`
	AMI             AMIConfig         `yaml:"ami"`
	ARI             ARIConfig         `yaml:"ari"`
	AGI             AGIConfig         `yaml:"agi"`
	NATS            NATSConfig        `yaml:"nats"`
	DeviceStates    map[string]string `yaml:"device_states"`
	Reconcile       ReconcileConfig   `yaml:"reconcile"`
	Debug           DebugConfig       `yaml:"debug"`
	ShutdownTimeout time.Duration     `yaml:"shutdown_timeout"`
}

// LogConfig sets the log output.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// HTTPConfig configures the HTTP API.
type HTTPConfig struct {
	Listen         string        `yaml:"listen"`
	MaxBodyBytes   int64         `yaml:"max_body_bytes"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	Auth           AuthConfig    `yaml:"auth"`
	CORS           CORSConfig    `yaml:"cors"`
}

// CORSConfig lets a webphone served from another origin call the API.
type CORSConfig struct {
	// AllowedOrigins lists origins such as https://omnileads.example.com;
	// empty disables CORS, "*" is rejected because requests carry
	// credentials.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// AuthConfig selects how callers prove they are the agent.
type AuthConfig struct {
	Basic bool      `yaml:"basic"`
	JWT   JWTConfig `yaml:"jwt"`
}

// JWTConfig configures Bearer tokens. An empty Algorithm disables them.
type JWTConfig struct {
	Algorithm     string        `yaml:"algorithm"` // HS256, RS256 or EdDSA
	Secret        string        `yaml:"secret"`
	SecretFile    string        `yaml:"secret_file"`
	PublicKeyFile string        `yaml:"public_key_file"`
	AgentClaim    string        `yaml:"agent_claim"`
	Issuer        string        `yaml:"issuer"`
	Audience      string        `yaml:"audience"`
	Leeway        time.Duration `yaml:"leeway"`
	RequireExp    *bool         `yaml:"require_exp"`
}

// AMIConfig configures the AMI connection.
type AMIConfig struct {
	Address       string        `yaml:"address"`
	Username      string        `yaml:"username"`
	Password      string        `yaml:"password"`
	PasswordFile  string        `yaml:"password_file"`
	ActionTimeout time.Duration `yaml:"action_timeout"`
	// PingInterval is the time between keepalive Ping actions. A negative
	// value disables the keepalive, and 0 selects ami.DefaultPingInterval.
	PingInterval time.Duration `yaml:"ping_interval"`
	// ReconnectMax caps the wait between reconnect attempts.
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// Connections is the number of AMI sessions: the event session and
	// Connections-1 action-only sessions that share QueueAdd, QueueRemove
	// and QueuePause with it.
	Connections int `yaml:"connections"`
}

// ARIConfig configures the ARI connection.
type ARIConfig struct {
	URL            string        `yaml:"url"`
	Username       string        `yaml:"username"`
	Password       string        `yaml:"password"`
	PasswordFile   string        `yaml:"password_file"`
	Application    string        `yaml:"application"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	ReconnectMax   time.Duration `yaml:"reconnect_max"`
}

// ReconcileConfig sets how agentd treats changes made outside it.
type ReconcileConfig struct {
	// MemberPolicy is restore or adopt, for members of agentd's agents
	// added or removed outside agentd.
	MemberPolicy string `yaml:"member_policy"`
	// AutopausePauseID is the pause id of an app_queue autopause.
	AutopausePauseID string `yaml:"autopause_pause_id"`
	// ExternalPauseID is the pause id of an outside pause without reason.
	ExternalPauseID string `yaml:"external_pause_id"`
	// UnavailableLogout logs out an agent whose endpoint stayed offline
	// that long; 0 never does.
	UnavailableLogout time.Duration `yaml:"unavailable_logout"`
}

// AGIConfig configures the FastAGI server.
type AGIConfig struct {
	Listen      string   `yaml:"listen"` // empty disables FastAGI
	Allow       []string `yaml:"allow"`
	MaxSessions int      `yaml:"max_sessions"`
}

// DebugConfig configures the listener of the net/http/pprof handlers.
type DebugConfig struct {
	Listen string `yaml:"listen"` // host:port. Empty, the default, disables the server.
}

// NATSConfig configures where events and sessions are stored.
type NATSConfig struct {
	URLs             []string      `yaml:"urls"` // empty: embedded server
	User             string        `yaml:"user"`
	Password         string        `yaml:"password"`
	PasswordFile     string        `yaml:"password_file"`
	Token            string        `yaml:"token"`
	TokenFile        string        `yaml:"token_file"`
	NKeySeedFile     string        `yaml:"nkey_seed_file"`
	CredentialsFile  string        `yaml:"credentials_file"`
	TLSCAFile        string        `yaml:"tls_ca_file"`
	TLSCertFile      string        `yaml:"tls_cert_file"`
	TLSKeyFile       string        `yaml:"tls_key_file"`
	Embedded         EmbeddedNATS  `yaml:"embedded"`
	SubjectPrefix    string        `yaml:"subject_prefix"`
	Stream           string        `yaml:"stream"`
	StreamMaxAge     time.Duration `yaml:"stream_max_age"`
	StreamReplicas   int           `yaml:"stream_replicas"`
	Bucket           string        `yaml:"bucket"`
	BucketReplicas   int           `yaml:"bucket_replicas"`
	OutboxMaxEntries int           `yaml:"outbox_max_entries"`
	OutboxMaxBytes   int64         `yaml:"outbox_max_bytes"`
}

// EmbeddedNATS configures the in-process NATS server.
type EmbeddedNATS struct {
	Listen string `yaml:"listen"` // host:port, or "none" for no socket
}

// Defaults of the keys that have one. The nats keys take the defaults of
// the events package, so that a 0 written in the file can be rejected.
func defaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Node:      host,
		DataDir:   "/var/lib/agentd",
		Directory: "/etc/agentd/directory.yaml",
		Log:       LogConfig{Level: "info", Format: "text"},
		HTTP: HTTPConfig{
			Listen:         "127.0.0.1:8080",
			MaxBodyBytes:   64 << 10,
			RequestTimeout: 10 * time.Second,
			Auth:           AuthConfig{Basic: true, JWT: JWTConfig{AgentClaim: "agent_id", Leeway: 30 * time.Second}},
		},
		AMI: AMIConfig{Address: "127.0.0.1:5038", ActionTimeout: 5 * time.Second, PingInterval: 10 * time.Second, ReconnectMax: 2 * time.Second, Connections: 1},
		ARI: ARIConfig{URL: "http://127.0.0.1:8088", Application: "agentd", RequestTimeout: 5 * time.Second, ReconnectMax: 2 * time.Second},
		Reconcile: ReconcileConfig{
			MemberPolicy:     string(agent.MemberRestore),
			AutopausePauseID: agent.DefaultAutopausePauseID,
			ExternalPauseID:  agent.DefaultExternalPauseID,
		},
		AGI: AGIConfig{Listen: "127.0.0.1:4573", Allow: []string{"127.0.0.0/8", "::1/128"}, MaxSessions: 1000},
		NATS: NATSConfig{
			Embedded:         EmbeddedNATS{Listen: "127.0.0.1:4222"},
			SubjectPrefix:    events.DefaultSubjectPrefix,
			Stream:           events.DefaultStream,
			StreamMaxAge:     events.DefaultStreamMaxAge,
			StreamReplicas:   1,
			Bucket:           events.DefaultBucket,
			BucketReplicas:   1,
			OutboxMaxEntries: events.DefaultOutboxMaxEntries,
			OutboxMaxBytes:   events.DefaultOutboxMaxBytes,
		},
		ShutdownTimeout: 10 * time.Second,
	}
}

// LoadConfig reads the configuration file at path, applies the
// environment overrides and the secret files, and validates the result.
// Every problem is reported, each with the file and line when it has one.
func LoadConfig(path string, environ []string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	return ParseConfig(path, data, environ)
}

// ParseConfig is LoadConfig on data already read.
func ParseConfig(name string, data []byte, environ []string) (Config, error) {
	cfg, p := parseConfig(name, data, environ)
	if err := p.err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// parseConfig returns the part of the configuration that could be decoded
// and every problem found in it, so that check-config can run more checks
// and name the lines of their keys. After a YAML syntax error the
// configuration is the defaults and no other check runs.
func parseConfig(name string, data []byte, environ []string) (Config, *problems) {
	cfg := defaultConfig()
	p := newProblems(name)
	if !decodeConfig(&cfg, data, p) {
		return cfg, p
	}

	applyEnv(&cfg, environ, p)
	cfg.readSecrets(p)
	cfg.validate(p)
	return cfg, p
}

// readSecrets loads the *_file keys. A secret set both inline and by file
// is an error, so it is clear which one is used.
func (c *Config) readSecrets(p *problems) {
	readSecret(&c.AMI.Password, c.AMI.PasswordFile, "ami.password", p)
	readSecret(&c.ARI.Password, c.ARI.PasswordFile, "ari.password", p)
	readSecret(&c.HTTP.Auth.JWT.Secret, c.HTTP.Auth.JWT.SecretFile, "http.auth.jwt.secret", p)
	readSecret(&c.NATS.Password, c.NATS.PasswordFile, "nats.password", p)
	readSecret(&c.NATS.Token, c.NATS.TokenFile, "nats.token", p)
}

func readSecret(dst *string, file, key string, p *problems) {
	if file == "" {
		return
	}
	fileKey := key + "_file"
	if *dst != "" {
		p.add(p.envKey(key, fileKey), "%s and %s are both set: keep one", key, fileKey)
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		p.add(fileKey, "%s %q cannot be read: %v: set it to the file that holds %s", fileKey, file, pathErrorCause(err), key)
		p.undecoded[key] = true // the secret is unknown, not empty
		return
	}
	*dst = strings.TrimRight(string(data), "\r\n")
}

// pathErrorCause returns the cause of a file error without the operation
// and the path, which the caller's message already names.
func pathErrorCause(err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}

// secretKey returns the key that set a secret: its *_file key when file is
// set, so that a problem points at the line the user wrote.
func secretKey(key, file string) string {
	if file != "" {
		return key + "_file"
	}
	return key
}

// StateMap returns the device state mapping: the defaults with the
// configured entries over them.
func (c *Config) StateMap() agent.DeviceStateMap {
	m := agent.DefaultDeviceStates()
	for state, value := range c.DeviceStates {
		m[agent.State(state)] = value
	}
	return m
}
