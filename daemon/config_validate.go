package daemon

import (
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/ari"
	"github.com/contactcenter/agentd/events"
)

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
	c.validateDebug(p)
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
	if c.AMI.Connections < 1 || c.AMI.Connections > maxAMIConnections {
		p.add("ami.connections", "ami.connections %d is invalid: use 1 for the event session alone, or up to %d to add action-only sessions",
			c.AMI.Connections, maxAMIConnections)
	}
}

// maxAMIConnections is the largest ami.connections, a sanity bound rather
// than a measured optimum. Asterisk serves each AMI session on its own
// thread, so sessions beyond the CPUs of the Asterisk host cannot run more
// actions at the same time.
const maxAMIConnections = 16

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

func (c *Config) validateDebug(p *problems) {
	if c.Debug.Listen == "" {
		return
	}
	checkHostPort(p, "debug.listen", c.Debug.Listen, "127.0.0.1:6060", true)
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
