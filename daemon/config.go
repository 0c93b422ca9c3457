package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/ari"
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
		AMI: AMIConfig{Address: "127.0.0.1:5038", ActionTimeout: 5 * time.Second, PingInterval: 10 * time.Second, ReconnectMax: 2 * time.Second},
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

func (c *Config) validate(p *problems) {
	if c.Node == "" || strings.ContainsAny(c.Node, " \t.*>") {
		p.add("node", "node %q is invalid: set a name without spaces, '.', '*' or '>'", c.Node)
	}
	if c.DataDir == "" {
		p.add("data_dir", "data_dir is empty: set a directory agentd may write to")
	}
	if c.Directory == "" {
		p.add("directory", "directory is empty: set the path of the agent directory file")
	}
	c.validateLog(p)
	c.validateHTTP(p)
	c.validateAMI(p)
	c.validateARI(p)
	c.validateAGI(p)
	c.validateReconcile(p)
	c.validateNATS(p)
	if c.ShutdownTimeout <= 0 {
		p.add("shutdown_timeout", "shutdown_timeout %s is not positive: use a duration such as 10s", formatDuration(c.ShutdownTimeout))
	}
	c.validateDeviceStates(p)
}

func (c *Config) validateLog(p *problems) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "log.level %q is invalid: use debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		p.add("log.format", "log.format %q is invalid: use text or json", c.Log.Format)
	}
}

// minRequestTimeout is the shortest http.request_timeout. A login runs an
// AMI action per queue, an ARI request and a store write within it.
const minRequestTimeout = time.Second

func (c *Config) validateHTTP(p *problems) {
	checkHostPort(p, "http.listen", c.HTTP.Listen, "127.0.0.1:8080", true)
	if c.HTTP.MaxBodyBytes < 1024 {
		p.add("http.max_body_bytes", "http.max_body_bytes %d is too small: use 1024 or more", c.HTTP.MaxBodyBytes)
	}
	for _, origin := range c.HTTP.CORS.AllowedOrigins {
		if u, err := url.Parse(origin); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			p.add("http.cors.allowed_origins", "http.cors.allowed_origins has %q: write an origin such as https://omnileads.example.com, without a path; \"*\" is not allowed with credentials", origin)
		}
	}
	if c.HTTP.RequestTimeout < minRequestTimeout {
		p.add("http.request_timeout", "http.request_timeout %s is below %s: a login runs an AMI action per queue, an ARI request and a store write within this limit, so use %s or more, such as 10s",
			formatDuration(c.HTTP.RequestTimeout), formatDuration(minRequestTimeout), formatDuration(minRequestTimeout))
	}
	c.validateJWT(p)
}

func (c *Config) validateJWT(p *problems) {
	jwt := c.HTTP.Auth.JWT
	switch jwt.Algorithm {
	case "":
		if !c.HTTP.Auth.Basic {
			p.add("http.auth.basic", "no authentication enabled: set http.auth.basic: true or http.auth.jwt.algorithm")
		}
		return
	case "HS256":
		if len(jwt.Secret) < 32 {
			p.add(secretKey("http.auth.jwt.secret", jwt.SecretFile), "http.auth.jwt.secret has %d bytes: HS256 needs at least 32", len(jwt.Secret))
		}
		if jwt.PublicKeyFile != "" {
			p.add("http.auth.jwt.public_key_file", "http.auth.jwt.public_key_file is set, but HS256 takes http.auth.jwt.secret: remove the public key file or use RS256 or EdDSA")
		}
	case "RS256", "EdDSA":
		if jwt.PublicKeyFile == "" {
			p.add("http.auth.jwt.public_key_file", "http.auth.jwt.public_key_file is empty: %s needs the PEM public key", jwt.Algorithm)
		}
		if jwt.Secret != "" {
			p.add(secretKey("http.auth.jwt.secret", jwt.SecretFile), "http.auth.jwt.secret is set, but %s takes http.auth.jwt.public_key_file: remove the secret or use HS256", jwt.Algorithm)
		}
	default:
		p.add("http.auth.jwt.algorithm", "http.auth.jwt.algorithm %q is not supported: use HS256, RS256 or EdDSA", jwt.Algorithm)
	}
	if jwt.Leeway < 0 {
		p.add("http.auth.jwt.leeway", "http.auth.jwt.leeway %s is negative: use 0 or a positive duration, such as 30s", formatDuration(jwt.Leeway))
	}
}

// validateAMI checks what the AMI client rejects when it starts. A negative
// ami.ping_interval is valid: it disables the keepalive.
func (c *Config) validateAMI(p *problems) {
	checkHostPort(p, "ami.address", c.AMI.Address, "127.0.0.1:5038", false)
	if c.AMI.Username == "" {
		p.add("ami.username", "ami.username is empty: set the manager.conf user")
	}
	if c.AMI.Password == "" {
		p.add("ami.password", "ami.password is empty: set ami.password or ami.password_file")
	}
	// AMI sends each field as one line, so a line break would end it early.
	if strings.ContainsAny(c.AMI.Username, "\r\n") {
		p.add("ami.username", "ami.username %q contains a line break: remove it", c.AMI.Username)
	}
	if strings.ContainsAny(c.AMI.Password, "\r\n") {
		p.add(secretKey("ami.password", c.AMI.PasswordFile), "ami.password contains a line break: remove it")
	}
	if c.AMI.ActionTimeout <= 0 {
		p.add("ami.action_timeout", "ami.action_timeout %s is not positive: use a duration such as 5s", formatDuration(c.AMI.ActionTimeout))
	}
	if c.AMI.ReconnectMax <= 0 {
		p.add("ami.reconnect_max", "ami.reconnect_max %s is not positive: use a duration such as 2s", formatDuration(c.AMI.ReconnectMax))
	}
}

// maxARIReconnect is the longest ari.reconnect_max, the cap that the ari
// package puts on its reconnect wait so that the doubling cannot overflow.
const maxARIReconnect = time.Hour

func (c *Config) validateARI(p *problems) {
	checkARIURL(p, c.ARI.URL)
	if c.ARI.Username == "" {
		p.add("ari.username", "ari.username is empty: set the ari.conf user")
	}
	if c.ARI.Password == "" {
		p.add("ari.password", "ari.password is empty: set ari.password or ari.password_file")
	}
	if c.ARI.Application == "" || strings.ContainsAny(c.ARI.Application, " ,/?&") {
		p.add("ari.application", "ari.application %q is invalid: use a name without spaces, ',', '/', '?' or '&'", c.ARI.Application)
	}
	if c.ARI.RequestTimeout <= 0 {
		p.add("ari.request_timeout", "ari.request_timeout %s is not positive: use a duration such as 5s", formatDuration(c.ARI.RequestTimeout))
	}
	if c.ARI.ReconnectMax < ari.DefaultBackoffInitial || c.ARI.ReconnectMax > maxARIReconnect {
		p.add("ari.reconnect_max", "ari.reconnect_max %s is outside %s to %s, the range that the ARI client accepts: use a value such as 2s",
			formatDuration(c.ARI.ReconnectMax), formatDuration(ari.DefaultBackoffInitial), formatDuration(maxARIReconnect))
	}
}

// checkARIURL rejects what the ari package rejects. The message shows a
// URL with user info redacted, because the user info may hold a password.
func checkARIURL(p *problems, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		p.add("ari.url", "ari.url %q is invalid: write it as http://127.0.0.1:8088", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		p.add("ari.url", "ari.url %q has user info, a query or a fragment: remove them, and set ari.username and ari.password for the user", u.Redacted())
	}
}

func (c *Config) validateReconcile(p *problems) {
	r := c.Reconcile
	if r.MemberPolicy != string(agent.MemberRestore) && r.MemberPolicy != string(agent.MemberAdopt) {
		p.add("reconcile.member_policy", "reconcile.member_policy %q is invalid: use restore or adopt", r.MemberPolicy)
	}
	if r.AutopausePauseID == "" {
		p.add("reconcile.autopause_pause_id", "reconcile.autopause_pause_id is empty: set the pause id given to autopaused agents")
	}
	if r.ExternalPauseID == "" {
		p.add("reconcile.external_pause_id", "reconcile.external_pause_id is empty: set the pause id given to agents paused outside agentd without a reason")
	}
	if r.UnavailableLogout < 0 {
		p.add("reconcile.unavailable_logout", "reconcile.unavailable_logout is negative: use 0 to keep agents logged in, or a duration such as 5m")
	}
}

func (c *Config) validateAGI(p *problems) {
	if c.AGI.Listen == "" {
		return
	}
	checkHostPort(p, "agi.listen", c.AGI.Listen, "127.0.0.1:4573", true)
	if len(c.AGI.Allow) == 0 {
		p.add("agi.allow", "agi.allow is empty, so every FastAGI connection would be refused: list the Asterisk addresses, such as 127.0.0.0/8")
	}
	for _, cidr := range c.AGI.Allow {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			p.add("agi.allow", "agi.allow has %q: write a CIDR such as 127.0.0.0/8", cidr)
		}
	}
	if c.AGI.MaxSessions < 1 {
		p.add("agi.max_sessions", "agi.max_sessions %d: use 1 or more", c.AGI.MaxSessions)
	}
}

func (c *Config) validateDeviceStates(p *problems) {
	for _, state := range slices.Sorted(maps.Keys(c.DeviceStates)) {
		key := "device_states." + state
		if _, ok := agent.DefaultDeviceStates()[agent.State(state)]; !ok {
			p.add(key, "device_states has state %q: use OFFLINE, READY, PAUSED, RINGING, ONCALL or UNAVAILABLE", state)
		}
		if value := c.DeviceStates[state]; !validDeviceState(value) {
			p.add(key, "device_states.%s is %q: use one of %s", state, value, strings.Join(deviceStateNames, ", "))
		}
	}
}

// checkHostPort checks a host:port value. A listen address may use port 0,
// which picks a free port, but an address to connect to may not.
func checkHostPort(p *problems, key, value, example string, listen bool) {
	_, port, err := net.SplitHostPort(value)
	if err != nil {
		p.add(key, "%s %q is invalid: write host:port, such as %s", key, value, example)
		return
	}
	lowest := 1
	if listen {
		lowest = 0
	}
	if n, err := strconv.Atoi(port); err != nil || n < lowest || n > 65535 {
		p.add(key, "%s %q has an invalid port: use %d to 65535, such as %s", key, value, lowest, example)
	}
}

// formatDuration writes d as a user would, without the zero minutes and
// seconds that time.Duration.String adds: 24h, not 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var deviceStateNames = []string{"NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING", "RINGINUSE", "ONHOLD"}

func validDeviceState(s string) bool {
	return slices.Contains(deviceStateNames, s)
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

// Limits of the nats keys, which the events package and JetStream enforce
// when agentd starts.
const (
	// maxNATSReplicas is the largest replica count JetStream accepts.
	maxNATSReplicas = 5
	// minOutboxMaxBytes is the size of the largest outbox record, which the
	// events package requires the outbox to hold.
	minOutboxMaxBytes = 1 << 20
)

// natsNamePattern matches a stream name, a bucket name and one token of
// the subject prefix, as the events package requires.
var natsNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// validateNATS checks the nats keys in the terms of the file, before the
// events package checks the same values under its own field names.
func (c *Config) validateNATS(p *problems) {
	n := c.NATS
	if slices.ContainsFunc(n.URLs, func(u string) bool { return strings.TrimSpace(u) == "" }) {
		p.add("nats.urls", "nats.urls has an empty item: remove it, or write a URL such as nats://10.0.0.1:4222")
	}
	if n.Embedded.Listen != "none" {
		checkHostPort(p, "nats.embedded.listen", n.Embedded.Listen, "127.0.0.1:4222", true)
	}
	c.validateNATSAuth(p)
	c.validateNATSStorage(p)
}

func (c *Config) validateNATSAuth(p *problems) {
	n := c.NATS
	methods := []struct {
		key string
		set bool
	}{
		{"nats.user", n.User != ""},
		{secretKey("nats.token", n.TokenFile), n.Token != ""},
		{"nats.nkey_seed_file", n.NKeySeedFile != ""},
		{"nats.credentials_file", n.CredentialsFile != ""},
	}
	var set []string
	for _, m := range methods {
		if m.set {
			set = append(set, m.key)
		}
	}
	if len(set) > 1 {
		p.add(set[len(set)-1], "%s and %s are set, but NATS takes one way to authenticate: keep one of nats.user, nats.token, nats.nkey_seed_file and nats.credentials_file",
			strings.Join(set[:len(set)-1], ", "), set[len(set)-1])
	}
	if n.Password != "" && n.User == "" {
		p.add(secretKey("nats.password", n.PasswordFile), "nats.password is set without nats.user: set nats.user, or remove the password")
	}
	if n.TLSCertFile != "" && n.TLSKeyFile == "" {
		p.add("nats.tls_cert_file", "nats.tls_cert_file is set without nats.tls_key_file: set both, or neither")
	}
	if n.TLSKeyFile != "" && n.TLSCertFile == "" {
		p.add("nats.tls_key_file", "nats.tls_key_file is set without nats.tls_cert_file: set both, or neither")
	}
	if len(n.URLs) > 0 {
		return
	}
	for _, m := range methods[2:] {
		if m.set {
			p.add(m.key, "%s works with an external NATS server only: set nats.urls, or use nats.user or nats.token with the embedded server", m.key)
		}
	}
}

func (c *Config) validateNATSStorage(p *problems) {
	n := c.NATS
	embedded := len(n.URLs) == 0
	for _, name := range []struct{ key, value string }{{"nats.stream", n.Stream}, {"nats.bucket", n.Bucket}} {
		if !natsNamePattern.MatchString(name.value) {
			p.add(name.key, "%s %q is invalid: use letters, digits, _ and -", name.key, name.value)
		}
	}
	for token := range strings.SplitSeq(n.SubjectPrefix, ".") {
		if !natsNamePattern.MatchString(token) {
			p.add("nats.subject_prefix", "nats.subject_prefix %q is invalid: write dot-separated tokens of letters, digits, _ and -, such as agentd.agent", n.SubjectPrefix)
			break
		}
	}
	// agentd leaves the duplicate window of the stream at its default, and
	// JetStream rejects a duplicate window longer than the max age.
	if window := events.DefaultDuplicateWindow; n.StreamMaxAge < window {
		p.add("nats.stream_max_age", "nats.stream_max_age %s is below %s, the duplicate window of the stream, which must fit in the max age: use %s or more, such as 168h",
			formatDuration(n.StreamMaxAge), formatDuration(window), formatDuration(window))
	}
	checkReplicas(p, "nats.stream_replicas", n.StreamReplicas, embedded)
	checkReplicas(p, "nats.bucket_replicas", n.BucketReplicas, embedded)
	if n.OutboxMaxEntries < 1 {
		p.add("nats.outbox_max_entries", "nats.outbox_max_entries %d: use 1 or more, such as 100000", n.OutboxMaxEntries)
	}
	if n.OutboxMaxBytes < minOutboxMaxBytes {
		p.add("nats.outbox_max_bytes", "nats.outbox_max_bytes %d is below %d (1 MiB), the size of the largest outbox record: use %d or more, such as 67108864",
			n.OutboxMaxBytes, minOutboxMaxBytes, minOutboxMaxBytes)
	}
}

func checkReplicas(p *problems, key string, replicas int, embedded bool) {
	switch {
	case replicas < 1 || replicas > maxNATSReplicas:
		p.add(key, "%s %d is invalid: use 1 to %d", key, replicas, maxNATSReplicas)
	case replicas > 1 && embedded:
		p.add(key, "%s %d needs an external NATS cluster, because the embedded server keeps one copy: set nats.urls, or use 1", key, replicas)
	}
}

// applyEnv sets every key that has an AGENTD_ variable in environ and
// records the variable as the source of the key.
func applyEnv(cfg *Config, environ []string, p *problems) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return
	}
	walkKeys(reflect.ValueOf(cfg).Elem(), "", func(key string, field reflect.Value) {
		name := EnvName(key)
		value, ok := env[name]
		if !ok {
			return
		}
		source := envSource{name: name, value: value, secret: isSecretKey(key)}
		if kind, err := setFromString(field, value); err != nil {
			// The field keeps the value of the file, which is not the
			// value in force, so its checks would mislead.
			p.undecoded[key] = true
			p.record(key, fmt.Errorf("environment %s: invalid %s for %s: %s", source, kind.name, key, kind.fix))
			return
		}
		p.env[key] = source
	})
}

// EnvName returns the environment variable that overrides a dotted key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// isSecretKey reports whether the value of key must not be printed.
func isSecretKey(key string) bool {
	switch key[strings.LastIndex(key, ".")+1:] {
	case "password", "secret", "token":
		return true
	}
	return false
}

// walkKeys calls fn for each leaf of v with its dotted yaml key.
func walkKeys(v reflect.Value, prefix string, fn func(key string, field reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := yamlName(t.Field(i))
		if tag == "" || tag == "-" {
			continue
		}
		key := joinKey(prefix, tag)
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != durationType {
			walkKeys(f, key, fn)
			continue
		}
		fn(key, f)
	}
}

func yamlName(f reflect.StructField) string {
	return strings.Split(f.Tag.Get("yaml"), ",")[0]
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

var durationType = reflect.TypeFor[time.Duration]()

// setFromString parses an environment value into a config field. On
// failure it returns the kind of value the field takes.
func setFromString(f reflect.Value, s string) (valueKind, error) {
	kind := kindOf(f.Type().String())
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return kind, err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return kind, err
		}
		f.Set(reflect.ValueOf(&b))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return kind, err
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return kind, err
		}
		f.SetInt(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		f.Set(reflect.ValueOf(items))
	case f.Kind() == reflect.Map:
		m := map[string]string{}
		for item := range strings.SplitSeq(s, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok {
				return valueKind{"mapping", "write KEY=VALUE pairs separated by commas"}, errors.New("missing =")
			}
			m[k] = v
		}
		f.Set(reflect.ValueOf(m))
	default:
		return valueKind{"value", "set this key in the file"}, errors.New("no environment syntax")
	}
	return kind, nil
}

// valueKind is a kind of configuration value, with the fix for a value
// written wrong.
type valueKind struct {
	name string
	fix  string
}

// kindOf returns the kind of value that a Go type of Config takes, by the
// type's name as reflect and yaml.v3 write it.
func kindOf(goType string) valueKind {
	switch goType {
	case "time.Duration":
		return valueKind{"duration", "write a number with a unit, such as 10s or 1m30s"}
	case "int", "int64":
		return valueKind{"integer", "write a whole number, such as 1000"}
	case "bool", "*bool":
		return valueKind{"boolean", "use true or false"}
	case "string":
		return valueKind{"value", "write a single value, not a list or a mapping"}
	case "[]string":
		return valueKind{"list", "write a list, such as [a, b]"}
	case "map[string]string":
		return valueKind{"mapping", "write KEY: VALUE pairs indented below the key"}
	default:
		return valueKind{"section", "write its keys indented below it, as docs/configuration.md shows"}
	}
}

// The forms of the errors of yaml.v3 v3.0.1: a syntax error, and the
// entries of a TypeError, one per unknown key or value of the wrong type.
var (
	yamlSyntaxPattern    = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlEntryPattern     = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownPattern   = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	yamlSetTwicePattern  = regexp.MustCompile(`^field (.+) already set in type \S+$`)
	yamlDuplicatePattern = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
	yamlMismatchPattern  = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
	yamlGoTypePattern    = regexp.MustCompile(`\s+(?:into|in type)\s+\S+$`)
)

// decodeConfig decodes data into cfg and adds a problem for each unknown
// key and each value of the wrong type. yaml.v3 goes on decoding after
// those and leaves such a value as it was, so the other keys are still
// checked. It returns false after a syntax error, which stops the parser.
func decodeConfig(cfg *Config, data []byte, p *problems) bool {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		p.addSyntaxError(err)
		return false
	}
	p.root = &root

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	var typeErr *yaml.TypeError
	switch {
	case err == nil, errors.Is(err, io.EOF): // an empty file takes the defaults
	case errors.As(err, &typeErr):
		nodes := newNodeIndex(&root)
		for _, entry := range typeErr.Errors {
			p.addDecodeError(entry, nodes)
		}
	default:
		p.addSyntaxError(err)
		return false
	}
	return true
}

func (p *problems) addSyntaxError(err error) {
	p.syntaxError = true
	if m := yamlSyntaxPattern.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.addLine(line, "", "invalid YAML: %s: check the indentation and the quotes on this line and the lines after it", m[2])
		return
	}
	p.addLine(0, "", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// addDecodeError adds one entry of a yaml.TypeError in the terms of the
// file: the key, the value and the fix, without Go type names.
func (p *problems) addDecodeError(entry string, nodes *nodeIndex) {
	m := yamlEntryPattern.FindStringSubmatch(entry)
	if m == nil {
		p.addLine(0, "", "%s: check it against docs/configuration.md", yamlGoTypePattern.ReplaceAllString(entry, ""))
		return
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]

	if s := yamlUnknownPattern.FindStringSubmatch(text); s != nil {
		section, found := nodes.keyIn(line, s[1])
		hint := ""
		if found {
			hint = suggestKey(section, s[1])
		}
		p.addLine(line, joinKey(section, s[1]), "unknown key %q%s: check the spelling against docs/configuration.md%s",
			s[1], underSection(section, found), hint)
		return
	}
	if s := yamlDuplicatePattern.FindStringSubmatch(text); s != nil {
		name, _ := strconv.Unquote(s[1])
		section, found := nodes.keyIn(line, name)
		if found {
			// yaml.v3 decodes nothing of a mapping with a duplicate key.
			p.undecoded[section] = true
		}
		p.addLine(line, joinKey(section, name), "duplicate key %q%s, first at line %s: keep one", name, underSection(section, found), s[2])
		return
	}
	if s := yamlSetTwicePattern.FindStringSubmatch(text); s != nil {
		section, found := nodes.keyIn(line, s[1])
		p.addLine(line, joinKey(section, s[1]), "duplicate key %q%s: keep one", s[1], underSection(section, found))
		return
	}
	if s := yamlMismatchPattern.FindStringSubmatch(text); s != nil {
		p.addMismatch(line, s[1], s[2], s[3], nodes)
		return
	}
	p.addLine(line, "", "%s: check this line against docs/configuration.md", yamlGoTypePattern.ReplaceAllString(text, ""))
}

// addMismatch reports a value that does not fit its key, such as 10 for a
// duration, and drops the later checks of that key.
func (p *problems) addMismatch(line int, tag, value, goType string, nodes *nodeIndex) {
	kind := kindOf(goType)
	entry, found := nodes.value(line, tag, value, goType)
	if !found {
		p.addLine(line, "", "invalid %s %q: %s", kind.name, value, kind.fix)
		return
	}
	p.undecoded[entry.key] = true
	if entry.key == "" {
		p.addLine(line, "", "the file is %s, not a mapping of keys: write keys such as \"node: pbx1\", as docs/configuration.md shows", describeNode(entry.node))
		return
	}
	subject := entry.key
	if entry.item {
		subject = "an item of " + entry.key
	}
	p.addLine(line, entry.key, "invalid %s %s for %s: %s", kind.name, describeNode(entry.node), subject, kind.fix)
}

// describeNode returns a value as a message shows it: quoted when it is a
// scalar, else its kind.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "(a list)"
	case yaml.MappingNode:
		return "(a mapping)"
	default:
		return strconv.Quote(n.Value)
	}
}

func underSection(section string, found bool) string {
	if !found || section == "" {
		return ""
	}
	return " under " + section
}

// suggestKey returns a hint naming the key of the section that is closest
// to name, or "" when none is within two edits.
func suggestKey(section, name string) string {
	best, bestDistance := "", 3
	for _, key := range keysOf(section) {
		if d := editDistance(name, key); d < bestDistance {
			best, bestDistance = key, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// keysOf returns the keys that the section at a dotted key accepts.
func keysOf(section string) []string {
	t := reflect.TypeFor[Config]()
	if section != "" {
		for part := range strings.SplitSeq(section, ".") {
			f, ok := fieldByKey(t, part)
			if !ok || f.Type.Kind() != reflect.Struct {
				return nil
			}
			t = f.Type
		}
	}
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, yamlName(t.Field(i)))
	}
	return keys
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// editDistance returns the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current := make([]int, len(b)+1)
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous = current
	}
	return previous[len(b)]
}

// yamlEntry is a node of the file with the dotted key it belongs to.
type yamlEntry struct {
	node  *yaml.Node
	key   string // key of the value, or of the mapping that holds this key
	isKey bool   // node is a mapping key
	item  bool   // node is a list item of key
}

// nodeIndex finds the node that an entry of a yaml.TypeError is about. An
// entry gives only the line, so on a line with several values, such as a
// flow mapping, it takes the first node that no earlier entry matched.
type nodeIndex struct {
	entries []yamlEntry
	matched map[*yaml.Node]bool
}

func newNodeIndex(root *yaml.Node) *nodeIndex {
	idx := &nodeIndex{matched: map[*yaml.Node]bool{}}
	idx.add(root, "", false)
	return idx
}

func (idx *nodeIndex) add(n *yaml.Node, key string, item bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			idx.add(c, key, false)
		}
	case yaml.MappingNode:
		idx.entries = append(idx.entries, yamlEntry{node: n, key: key, item: item})
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			idx.entries = append(idx.entries, yamlEntry{node: k, key: key, isKey: true})
			idx.add(n.Content[i+1], joinKey(key, k.Value), false)
		}
	case yaml.SequenceNode:
		idx.entries = append(idx.entries, yamlEntry{node: n, key: key, item: item})
		for _, c := range n.Content {
			idx.add(c, key, true)
		}
	default:
		idx.entries = append(idx.entries, yamlEntry{node: n, key: key, item: item})
	}
}

// keyIn returns the dotted key of the section that holds the key name
// written on line.
func (idx *nodeIndex) keyIn(line int, name string) (string, bool) {
	e, ok := idx.find(func(e yamlEntry) bool { return e.isKey && e.node.Line == line && e.node.Value == name })
	return e.key, ok
}

// value returns the value on line with tag and Go type goType, whose
// text starts as in the entry. yaml.v3 cuts a value longer than 10 bytes
// to 7 and "...".
func (idx *nodeIndex) value(line int, tag, text, goType string) (yamlEntry, bool) {
	return idx.find(func(e yamlEntry) bool {
		if e.isKey || e.node.Line != line || e.node.ShortTag() != tag || typeName(e) != goType {
			return false
		}
		if prefix, cut := strings.CutSuffix(text, "..."); cut && len(text) == 10 {
			return strings.HasPrefix(e.node.Value, prefix)
		}
		return text == "" || e.node.Value == text
	})
}

// typeName returns the name of the Go type that the value of an entry
// decodes into, as yaml.v3 writes it in a TypeError, or "" for a key that
// Config does not have.
func typeName(e yamlEntry) string {
	t := reflect.TypeFor[Config]()
	if e.key != "" {
		for part := range strings.SplitSeq(e.key, ".") {
			switch t.Kind() {
			case reflect.Struct:
				f, ok := fieldByKey(t, part)
				if !ok {
					return ""
				}
				t = f.Type
			case reflect.Map:
				t = t.Elem()
			default:
				return ""
			}
		}
	}
	if e.item {
		if t.Kind() != reflect.Slice {
			return ""
		}
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem() // yaml.v3 names the type it decodes into, *bool as bool
	}
	return t.String()
}

func (idx *nodeIndex) find(match func(yamlEntry) bool) (yamlEntry, bool) {
	for _, e := range idx.entries {
		if !idx.matched[e.node] && match(e) {
			idx.matched[e.node] = true
			return e, true
		}
	}
	return yamlEntry{}, false
}

// problems collects the configuration errors, each with where its value
// came from: the line of its key in the file, or the environment variable
// that set it.
type problems struct {
	file string
	root *yaml.Node
	// env holds the keys set by an environment variable.
	env map[string]envSource
	// undecoded holds the keys whose value could not be decoded, so their
	// field holds a default that is not what the user wrote.
	undecoded map[string]bool
	// keys holds the keys that have a problem.
	keys        map[string]bool
	syntaxError bool
	list        []error
}

// envSource is the environment variable that set a key.
type envSource struct {
	name   string
	value  string
	secret bool // the value is not printed
}

func (s envSource) String() string {
	if s.secret {
		return s.name
	}
	return fmt.Sprintf("%s=%q", s.name, s.value)
}

func newProblems(file string) *problems {
	return &problems{file: file, env: map[string]envSource{}, undecoded: map[string]bool{}, keys: map[string]bool{}}
}

// add records a problem of key. It names the environment variable when one
// set the key, else the line of the key in the file. A problem of a key
// whose value could not be decoded is dropped: the decode error names that
// key already, and the value checked would be the default.
func (p *problems) add(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if source, ok := p.envSourceOf(key); ok {
		p.record(key, fmt.Errorf("environment %s: %s", source, msg))
		return
	}
	if p.isUndecoded(key) {
		return
	}
	p.addLine(p.line(key), key, "%s", msg)
}

// addLine records a problem of key at a line of the file, or without a
// line when line is 0.
func (p *problems) addLine(line int, key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		p.record(key, fmt.Errorf("%s:%d: %s", p.file, line, msg))
		return
	}
	p.record(key, fmt.Errorf("%s: %s", p.file, msg))
}

func (p *problems) record(key string, err error) {
	p.keys[key] = true
	p.list = append(p.list, err)
}

func (p *problems) err() error {
	return errors.Join(p.list...)
}

// envSourceOf returns the variable that set key or a section above it,
// such as AGENTD_DEVICE_STATES for device_states.PAUSED.
func (p *problems) envSourceOf(key string) (envSource, bool) {
	for k := key; k != ""; k = k[:max(strings.LastIndex(k, "."), 0)] {
		if source, ok := p.env[k]; ok {
			return source, true
		}
	}
	return envSource{}, false
}

// envKey returns the first of keys that an environment variable set, or
// the first key, so that a problem of two keys names the variable.
func (p *problems) envKey(keys ...string) string {
	for _, key := range keys {
		if _, ok := p.env[key]; ok {
			return key
		}
	}
	return keys[0]
}

func (p *problems) isUndecoded(key string) bool {
	for u := range p.undecoded {
		if u == "" || key == u || strings.HasPrefix(key, u+".") {
			return true
		}
	}
	return false
}

// hasProblemUnder reports whether a problem was recorded for one of keys
// or a key below them.
func (p *problems) hasProblemUnder(keys ...string) bool {
	for k := range p.keys {
		for _, key := range keys {
			if k == key || strings.HasPrefix(k, key+".") {
				return true
			}
		}
	}
	return false
}

// line returns the line of a dotted key in the file, or 0 when the key is
// not written there (a default or an environment value).
func (p *problems) line(key string) int {
	if key == "" || p.root == nil || len(p.root.Content) == 0 {
		return 0
	}
	n := p.root.Content[0]
	line := 0
	for part := range strings.SplitSeq(key, ".") {
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}
