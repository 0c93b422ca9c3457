package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/contactcenter/agentd/agent"
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
	PingInterval  time.Duration `yaml:"ping_interval"`
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

// Defaults of the keys that have one.
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
		AGI:             AGIConfig{Listen: "127.0.0.1:4573", Allow: []string{"127.0.0.0/8", "::1/128"}, MaxSessions: 1000},
		NATS:            NATSConfig{Embedded: EmbeddedNATS{Listen: "127.0.0.1:4222"}},
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
	cfg := defaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // decoded above; used for line numbers only

	p := &problems{file: name, root: &root}
	applyEnv(&cfg, environ, p)
	cfg.readSecrets(p)
	cfg.validate(p)
	if err := p.err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
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
	if *dst != "" {
		p.add(key, "%s and %s_file are both set: keep one", key, key)
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		p.add(key+"_file", "%s_file: %v", key, err)
		return
	}
	*dst = strings.TrimRight(string(data), "\r\n")
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
	c.validateAsterisk(p)
	c.validateAGI(p)
	c.validateReconcile(p)
	if c.NATS.Embedded.Listen != "none" {
		checkHostPort(p, "nats.embedded.listen", c.NATS.Embedded.Listen)
	}
	for state, value := range c.DeviceStates {
		if _, ok := agent.DefaultDeviceStates()[agent.State(state)]; !ok {
			p.add("device_states", "device_states has state %q: use OFFLINE, READY, PAUSED, RINGING, ONCALL or UNAVAILABLE", state)
		}
		if !validDeviceState(value) {
			p.add("device_states."+state, "device_states.%s is %q: use one of %s", state, value, strings.Join(deviceStateNames, ", "))
		}
	}
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

func (c *Config) validateHTTP(p *problems) {
	checkHostPort(p, "http.listen", c.HTTP.Listen)
	if c.HTTP.MaxBodyBytes < 1024 {
		p.add("http.max_body_bytes", "http.max_body_bytes %d is too small: use 1024 or more", c.HTTP.MaxBodyBytes)
	}
	for _, origin := range c.HTTP.CORS.AllowedOrigins {
		if u, err := url.Parse(origin); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			p.add("http.cors.allowed_origins", "http.cors.allowed_origins has %q: write an origin such as https://omnileads.example.com, without a path; \"*\" is not allowed with credentials", origin)
		}
	}
	if c.HTTP.RequestTimeout <= 0 {
		p.add("http.request_timeout", "http.request_timeout must be positive, such as 10s")
	}
	jwt := c.HTTP.Auth.JWT
	switch jwt.Algorithm {
	case "":
		if !c.HTTP.Auth.Basic {
			p.add("http.auth", "no authentication enabled: set http.auth.basic: true or http.auth.jwt.algorithm")
		}
	case "HS256":
		if len(jwt.Secret) < 32 {
			p.add("http.auth.jwt.secret", "http.auth.jwt.secret has %d bytes: HS256 needs at least 32", len(jwt.Secret))
		}
	case "RS256", "EdDSA":
		if jwt.PublicKeyFile == "" {
			p.add("http.auth.jwt.public_key_file", "http.auth.jwt.public_key_file is empty: %s needs the PEM public key", jwt.Algorithm)
		}
	default:
		p.add("http.auth.jwt.algorithm", "http.auth.jwt.algorithm %q is not supported: use HS256, RS256 or EdDSA", jwt.Algorithm)
	}
}

func (c *Config) validateAsterisk(p *problems) {
	checkHostPort(p, "ami.address", c.AMI.Address)
	if c.AMI.Username == "" {
		p.add("ami.username", "ami.username is empty: set the manager.conf user")
	}
	if c.AMI.Password == "" {
		p.add("ami.password", "ami.password is empty: set ami.password or ami.password_file")
	}
	if u, err := url.Parse(c.ARI.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("ari.url", "ari.url %q is invalid: write it as http://127.0.0.1:8088", c.ARI.URL)
	}
	if c.ARI.Username == "" {
		p.add("ari.username", "ari.username is empty: set the ari.conf user")
	}
	if c.ARI.Password == "" {
		p.add("ari.password", "ari.password is empty: set ari.password or ari.password_file")
	}
	if c.ARI.Application == "" || strings.ContainsAny(c.ARI.Application, " ,/?&") {
		p.add("ari.application", "ari.application %q is invalid: use a name without spaces, ',', '/', '?' or '&'", c.ARI.Application)
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
	if c.AMI.ReconnectMax <= 0 || c.ARI.ReconnectMax <= 0 {
		p.add("ami.reconnect_max", "ami.reconnect_max and ari.reconnect_max must be positive, such as 2s")
	}
}

func (c *Config) validateAGI(p *problems) {
	if c.AGI.Listen == "" {
		return
	}
	checkHostPort(p, "agi.listen", c.AGI.Listen)
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

func checkHostPort(p *problems, key, value string) {
	_, port, err := net.SplitHostPort(value)
	if err != nil {
		p.add(key, "%s %q is invalid: write host:port, such as 127.0.0.1:8080", key, value)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.add(key, "%s %q has an invalid port: use 0 to 65535", key, value)
	}
}

var deviceStateNames = []string{"NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING", "RINGINUSE", "ONHOLD"}

func validDeviceState(s string) bool {
	for _, n := range deviceStateNames {
		if s == n {
			return true
		}
	}
	return false
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

// applyEnv sets every key that has an AGENTD_ variable in environ.
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
		if err := setFromString(field, value); err != nil {
			p.add("", "environment %s=%q: %v", name, value, err)
		}
	})
}

// EnvName returns the environment variable that overrides a dotted key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// walkKeys calls fn for each leaf of v with its dotted yaml key.
func walkKeys(v reflect.Value, prefix string, fn func(key string, field reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
			walkKeys(f, key, fn)
			continue
		}
		fn(key, f)
	}
}

// setFromString parses an environment value into a config field.
func setFromString(f reflect.Value, s string) error {
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration: write it as 10s or 1m30s")
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean: use true or false")
		}
		f.Set(reflect.ValueOf(&b))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean: use true or false")
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer")
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
				return fmt.Errorf("invalid map: write KEY=VALUE,KEY=VALUE")
			}
			m[k] = v
		}
		f.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// problems collects configuration errors with the line of their key.
type problems struct {
	file string
	root *yaml.Node
	list []error
}

func (p *problems) add(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line := p.line(key); line > 0 {
		p.list = append(p.list, fmt.Errorf("%s:%d: %s", p.file, line, msg))
		return
	}
	p.list = append(p.list, fmt.Errorf("%s: %s", p.file, msg))
}

func (p *problems) err() error {
	return errors.Join(p.list...)
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
