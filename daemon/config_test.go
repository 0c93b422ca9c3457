package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := LoadConfig("../configs/agentd.yaml", nil)
	require.NoError(t, err)

	assert.Equal(t, "agentd-demo", cfg.Node)
	assert.Equal(t, "agentd-ami-secret", cfg.AMI.Password)
	assert.Equal(t, 5*time.Second, cfg.AMI.ActionTimeout)
	assert.Equal(t, 1, cfg.AMI.Connections)
	assert.Equal(t, "ONHOLD", cfg.StateMap()[agent.StatePaused])
	assert.Empty(t, cfg.Debug.Listen, "the example leaves the debug server off")
}

func TestExampleDirectoryIsValid(t *testing.T) {
	d, err := agent.LoadDirectory("../configs/directory.yaml")
	require.NoError(t, err)

	a, ok := d.Agent("1001")
	require.True(t, ok)
	assert.Equal(t, "1001_Ana-P-rez", a.MemberName)
}

func TestConfigEnvironmentOverrides(t *testing.T) {
	env := []string{
		"AGENTD_AMI_PASSWORD=from-env",
		"AGENTD_HTTP_REQUEST_TIMEOUT=3s",
		"AGENTD_NATS_URLS=nats://127.0.0.1:4222, nats://127.0.0.1:4223",
		"AGENTD_HTTP_AUTH_BASIC=false",
		"AGENTD_HTTP_AUTH_JWT_ALGORITHM=HS256",
		"AGENTD_HTTP_AUTH_JWT_SECRET=0123456789abcdef0123456789abcdef",
		"AGENTD_DEVICE_STATES=PAUSED=BUSY",
		"OTHER=ignored",
	}
	cfg, err := LoadConfig("../configs/agentd.yaml", env)
	require.NoError(t, err)

	assert.Equal(t, "from-env", cfg.AMI.Password)
	assert.Equal(t, 3*time.Second, cfg.HTTP.RequestTimeout)
	assert.Equal(t, []string{"nats://127.0.0.1:4222", "nats://127.0.0.1:4223"}, cfg.NATS.URLs)
	assert.False(t, cfg.HTTP.Auth.Basic)
	assert.Equal(t, "BUSY", cfg.StateMap()[agent.StatePaused])
}

func TestConfigInvalidEnvironmentValue(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte(minimalConfig), []string{"AGENTD_AMI_ACTION_TIMEOUT=soon"})

	require.Error(t, err)
	assert.Contains(t, err.Error(), `AGENTD_AMI_ACTION_TIMEOUT="soon": invalid duration`)
}

const minimalConfig = `
ami: {username: agentd, password: x}
ari: {username: agentd, password: y}
`

func TestConfigSecretFromFile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "ami.secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	src := "ami: {username: agentd, password_file: " + secret + "}\nari: {username: agentd, password: y}\n"

	cfg, err := ParseConfig("agentd.yaml", []byte(src), nil)
	require.NoError(t, err)

	assert.Equal(t, "s3cret", cfg.AMI.Password)
}

func TestConfigSecretTwiceIsRejected(t *testing.T) {
	src := "ami: {username: agentd, password: a, password_file: /nonexistent}\nari: {username: agentd, password: y}\n"

	_, err := ParseConfig("agentd.yaml", []byte(src), nil)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "ami.password and ami.password_file are both set")
}

func TestConfigProblemsNameLines(t *testing.T) {
	src := `node: "a b"
log:
  level: loud
http:
  listen: localhost
  auth:
    jwt:
      algorithm: none
ami:
  username: agentd
ari:
  url: ftp://x
  username: agentd
  password: y
agi:
  allow: [10.0.0.0/33]
device_states:
  PAUSED: SLEEPING
`
	_, err := ParseConfig("agentd.yaml", []byte(src), nil)
	require.Error(t, err)

	want := []string{
		`agentd.yaml:1: node "a b" is invalid`,
		`agentd.yaml:3: log.level "loud" is invalid`,
		`agentd.yaml:5: http.listen "localhost" is invalid`,
		`agentd.yaml:8: http.auth.jwt.algorithm "none" is not supported`,
		`agentd.yaml:9: ami.password is empty`,
		`agentd.yaml:12: ari.url "ftp://x" is invalid`,
		`agentd.yaml:16: agi.allow has "10.0.0.0/33"`,
		`agentd.yaml:18: device_states.PAUSED is "SLEEPING"`,
	}
	got := strings.Split(err.Error(), "\n")
	require.Len(t, got, len(want), err.Error())
	for i, w := range want {
		assert.Contains(t, got[i], w)
	}
}

func TestConfigFractionForIntegerIsRejected(t *testing.T) {
	src := `ami: {username: agentd, password: x, connections: 3.5}
ari: {username: agentd, password: y}
agi: {max_sessions: 1e1}
nats:
  outbox_max_entries: 2.0
`
	_, err := ParseConfig("agentd.yaml", []byte(src), nil)
	require.Error(t, err)

	want := []string{
		`agentd.yaml:1: ami.connections 3.5 is not an integer: write it as one, such as 4`,
		`agentd.yaml:3: agi.max_sessions 1e1 is not an integer: write it as one, such as 10`,
		`agentd.yaml:5: nats.outbox_max_entries 2.0 is not an integer: write it as one, such as 2`,
	}
	got := strings.Split(err.Error(), "\n")
	require.Len(t, got, len(want), err.Error())
	for i, w := range want {
		assert.Equal(t, w, got[i])
	}
}

func TestConfigUnknownKeyIsRejected(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte(minimalConfig+"http:\n  listne: x\n"), nil)

	require.Error(t, err)
	assert.Equal(t, `agentd.yaml:5: unknown key "listne" under http: check the spelling against docs/configuration.md (did you mean "listen"?)`, err.Error())
}

func TestConfigEmptyAGIAllowIsRejected(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte(minimalConfig+"agi: {allow: []}\n"), nil)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "agentd.yaml:4: agi.allow is empty")
}

// problemLines returns the lines of a ParseConfig error.
func problemLines(t *testing.T, err error) []string {
	t.Helper()
	require.Error(t, err)
	return strings.Split(err.Error(), "\n")
}

func TestConfigDecodeErrorsNameKeyAndFix(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want string
	}{
		{"unknown top-level key", "amy: {}\n", `agentd.yaml:4: unknown key "amy": check the spelling against docs/configuration.md (did you mean "ami"?)`},
		{"unknown key without close match", "http: {zzzzzz: 1}\n", `agentd.yaml:4: unknown key "zzzzzz" under http: check the spelling against docs/configuration.md`},
		{"duration without unit", "reconcile: {unavailable_logout: 10}\n", `agentd.yaml:4: invalid duration "10" for reconcile.unavailable_logout: write a number with a unit, such as 10s or 1m30s`},
		{"quoted duration without unit", "shutdown_timeout: \"10\"\n", `agentd.yaml:4: invalid duration "10" for shutdown_timeout: write a number with a unit, such as 10s or 1m30s`},
		{"long value kept whole", "http: {request_timeout: 123456789012}\n", `agentd.yaml:4: invalid duration "123456789012" for http.request_timeout`},
		{"integer", "http: {max_body_bytes: big}\n", `agentd.yaml:4: invalid integer "big" for http.max_body_bytes: write a whole number, such as 1000`},
		{"boolean", "http: {auth: {basic: maybe}}\n", `agentd.yaml:4: invalid boolean "maybe" for http.auth.basic: use true or false`},
		{"optional boolean", "http: {auth: {jwt: {require_exp: 3}}}\n", `agentd.yaml:4: invalid boolean "3" for http.auth.jwt.require_exp: use true or false`},
		{"list for a value", "http: {listen: [a]}\n", `agentd.yaml:4: invalid value (a list) for http.listen: write a single value, not a list or a mapping`},
		{"value for a list", "agi: {allow: 10.0.0.0/8}\n", `agentd.yaml:4: invalid list "10.0.0.0/8" for agi.allow: write a list, such as [a, b]`},
		{"list in a list", "agi: {allow: [127.0.0.0/8, [x]]}\n", `agentd.yaml:4: invalid value (a list) for an item of agi.allow`},
		{"list for a mapping", "device_states: [PAUSED]\n", `agentd.yaml:4: invalid mapping (a list) for device_states: write KEY: VALUE pairs indented below the key`},
		{"value for a section", "nats: 5\n", `agentd.yaml:4: invalid section "5" for nats: write its keys indented below it`},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", `agentd.yaml:6: duplicate key "level" under log, first at line 5: keep one`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("agentd.yaml", []byte(minimalConfig+tc.src), nil)

			lines := problemLines(t, err)
			assert.True(t, strings.HasPrefix(lines[0], tc.want), "first problem is %q, want it to start with %q", lines[0], tc.want)
			assert.NotRegexp(t, `daemon\.|time\.Duration|int64|\[\]string|!!`, err.Error(), "no Go type or YAML tag in the message")
		})
	}
}

func TestConfigDecodeErrorsOnOneLine(t *testing.T) {
	src := mergeSections(t, "ami: {action_timeout: 10, reconnect_max: 20}")

	_, err := ParseConfig("agentd.yaml", []byte(src), nil)

	lines := problemLines(t, err)
	require.Len(t, lines, 2, err.Error())
	assert.True(t, strings.HasPrefix(lines[0], `agentd.yaml:4: invalid duration "10" for ami.action_timeout`), lines[0])
	assert.True(t, strings.HasPrefix(lines[1], `agentd.yaml:4: invalid duration "20" for ami.reconnect_max`), lines[1])
}

func TestConfigDuplicateSectionSkipsTheFile(t *testing.T) {
	src := minimalConfig + "ami: {action_timeout: 10}\n"

	_, err := ParseConfig("agentd.yaml", []byte(src), nil)

	assert.Equal(t, []string{`agentd.yaml:4: duplicate key "ami", first at line 2: keep one`}, problemLines(t, err),
		"yaml.v3 decodes nothing of a mapping with a duplicate key, so no other check runs on its defaults")
}

func TestConfigDecodeErrorsKeepValidating(t *testing.T) {
	src := `node: "a b"
ami:
  action_timeout: 10
  username: agentd
  password: x
ari:
  username: agentd
  password: y
  request_timeout: 0s
http:
  listne: 127.0.0.1:8080
agi:
  allow: 10.0.0.0/8
nats: 5
`
	_, err := ParseConfig("agentd.yaml", []byte(src), nil)

	want := []string{
		`agentd.yaml:3: invalid duration "10" for ami.action_timeout`,
		`agentd.yaml:11: unknown key "listne" under http`,
		`agentd.yaml:13: invalid list "10.0.0.0/8" for agi.allow`,
		`agentd.yaml:14: invalid section "5" for nats`,
		`agentd.yaml:1: node "a b" is invalid`,
		`agentd.yaml:9: ari.request_timeout 0s is not positive`,
	}
	lines := problemLines(t, err)
	require.Len(t, lines, len(want), err.Error())
	for i, w := range want {
		assert.True(t, strings.HasPrefix(lines[i], w), "line %d is %q, want it to start with %q", i+1, lines[i], w)
	}
}

func TestConfigUndecodedSectionSkipsItsChecks(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte("ami: 5\nari: {username: agentd, password: y}\n"), nil)

	lines := problemLines(t, err)
	assert.Equal(t, []string{`agentd.yaml:1: invalid section "5" for ami: write its keys indented below it, as docs/configuration.md shows`}, lines,
		"ami.username and ami.password are not reported as empty, because the file sets ami")
}

func TestConfigFileThatIsNotAMapping(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte("hello\n"), nil)

	assert.Equal(t, []string{`agentd.yaml:1: the file is "hello", not a mapping of keys: write keys such as "node: pbx1", as docs/configuration.md shows`}, problemLines(t, err))
}

func TestConfigSyntaxErrorStops(t *testing.T) {
	src := "node: test\nami:\n  username: agentd\n password: x\n"

	_, err := ParseConfig("agentd.yaml", []byte(src), nil)

	lines := problemLines(t, err)
	require.Len(t, lines, 1, "only the syntax error is reported")
	assert.True(t, strings.HasPrefix(lines[0], "agentd.yaml:3: invalid YAML: did not find expected key: check the indentation"), lines[0])
}

func TestConfigRejectsValuesThatFailAtStart(t *testing.T) {
	cases := []struct {
		src  string
		want string
	}{
		{"ami: {action_timeout: 0s}", `agentd.yaml:4: ami.action_timeout 0s is not positive: use a duration such as 5s`},
		{"ami: {action_timeout: -1s}", `agentd.yaml:4: ami.action_timeout -1s is not positive`},
		{"ami: {reconnect_max: 0s}", `agentd.yaml:4: ami.reconnect_max 0s is not positive: use a duration such as 2s`},
		{"ami: {connections: 0}", `agentd.yaml:4: ami.connections 0 is invalid: use 1 for the event session alone, or up to 16 to add action-only sessions`},
		{"ami: {connections: -2}", `agentd.yaml:4: ami.connections -2 is invalid`},
		{"ami: {connections: 17}", `agentd.yaml:4: ami.connections 17 is invalid`},
		{"ami: {password: \"a\\nb\"}", `agentd.yaml:4: ami.password contains a line break: remove it`},
		{"ari: {request_timeout: 0s}", `agentd.yaml:4: ari.request_timeout 0s is not positive: use a duration such as 5s`},
		{"ari: {reconnect_max: 100ms}", `agentd.yaml:4: ari.reconnect_max 100ms is outside 250ms to 1h, the range that the ARI client accepts: use a value such as 2s`},
		{"ari: {reconnect_max: 2h}", `agentd.yaml:4: ari.reconnect_max 2h is outside 250ms to 1h`},
		{"ari: {url: \"http://agentd:pw@127.0.0.1:8088\"}", `agentd.yaml:4: ari.url "http://agentd:xxxxx@127.0.0.1:8088" has user info, a query or a fragment`},
		{"ari: {url: \"http://127.0.0.1:8088/?a=1\"}", `agentd.yaml:4: ari.url "http://127.0.0.1:8088/?a=1" has user info, a query or a fragment`},
		{"http: {request_timeout: 500ms}", `agentd.yaml:4: http.request_timeout 500ms is below 1s: a login runs an AMI action per queue, an ARI request and a store write within this limit, so use 1s or more, such as 10s`},
		{"http: {auth: {jwt: {algorithm: HS256, secret: 0123456789abcdef0123456789abcdef, leeway: -1s}}}", `agentd.yaml:4: http.auth.jwt.leeway -1s is negative`},
		{"http: {auth: {jwt: {algorithm: HS256, secret: 0123456789abcdef0123456789abcdef, public_key_file: /k.pem}}}", `agentd.yaml:4: http.auth.jwt.public_key_file is set, but HS256 takes http.auth.jwt.secret`},
		{"http: {auth: {jwt: {algorithm: RS256, secret: x, public_key_file: /k.pem}}}", `agentd.yaml:4: http.auth.jwt.secret is set, but RS256 takes http.auth.jwt.public_key_file`},
		{"shutdown_timeout: 0s", `agentd.yaml:4: shutdown_timeout 0s is not positive: use a duration such as 10s`},
		{"reconcile: {unavailable_logout: -5m}", `agentd.yaml:4: reconcile.unavailable_logout is negative`},
	}
	for _, tc := range cases {
		t.Run(tc.src, func(t *testing.T) {
			_, err := ParseConfig("agentd.yaml", []byte(mergeSections(t, tc.src)), nil)

			assert.Equal(t, []string{tc.want}, trimFixes(problemLines(t, err), tc.want))
		})
	}
}

// mergeSections returns a valid configuration with extra, a one-line flow
// mapping of one section, merged in and written on line 4. The keys of
// extra replace those of the valid configuration.
func mergeSections(t *testing.T, extra string) string {
	t.Helper()
	section, body, ok := strings.Cut(extra, ": ")
	require.True(t, ok)
	base := map[string][]string{"ami": {"username: agentd", "password: x"}, "ari": {"username: agentd", "password: y"}}
	if inner, found := strings.CutPrefix(body, "{"); found {
		for _, field := range base[section] {
			name, _, _ := strings.Cut(field, ":")
			if !strings.Contains(body, name+":") {
				inner = field + ", " + inner
			}
		}
		body = "{" + inner
	}
	lines := []string{"node: test", "data_dir: /tmp", "directory: /tmp/directory.yaml", section + ": " + body}
	for _, s := range []string{"ami", "ari"} {
		if s != section {
			lines = append(lines, s+": {"+strings.Join(base[s], ", ")+"}")
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestConfigAMIConnections(t *testing.T) {
	cfg, err := ParseConfig("agentd.yaml", []byte(minimalConfig), nil)
	require.NoError(t, err)
	assert.Equal(t, 1, cfg.AMI.Connections, "default")

	cfg, err = ParseConfig("agentd.yaml", []byte(mergeSections(t, "ami: {connections: 16}")), nil)
	require.NoError(t, err)
	assert.Equal(t, 16, cfg.AMI.Connections, "file")

	cfg, err = ParseConfig("agentd.yaml", []byte(mergeSections(t, "ami: {connections: 16}")), []string{"AGENTD_AMI_CONNECTIONS=3"})
	require.NoError(t, err)
	assert.Equal(t, 3, cfg.AMI.Connections, "the environment wins over the file")
}

func TestConfigAMIConnectionsFromEnvironmentInvalid(t *testing.T) {
	cases := map[string]string{
		"two": `environment AGENTD_AMI_CONNECTIONS="two": invalid integer for ami.connections: write a whole number, such as 1000`,
		"0":   `environment AGENTD_AMI_CONNECTIONS="0": ami.connections 0 is invalid: use 1 for the event session alone, or up to 16 to add action-only sessions`,
		"100": `environment AGENTD_AMI_CONNECTIONS="100": ami.connections 100 is invalid: use 1 for the event session alone, or up to 16 to add action-only sessions`,
	}
	for value, want := range cases {
		t.Run(value, func(t *testing.T) {
			_, err := ParseConfig("agentd.yaml", []byte(minimalConfig), []string{"AGENTD_AMI_CONNECTIONS=" + value})

			assert.Equal(t, []string{want}, problemLines(t, err))
		})
	}
}

func TestConfigAcceptsNegativePingInterval(t *testing.T) {
	cfg, err := ParseConfig("agentd.yaml", []byte(mergeSections(t, "ami: {ping_interval: -1s}")), nil)

	require.NoError(t, err)
	assert.Equal(t, -time.Second, cfg.AMI.PingInterval)
}

func TestConfigHostPortExamplePerKey(t *testing.T) {
	cases := map[string]string{
		"ami: {address: x}":                    `agentd.yaml:4: ami.address "x" is invalid: write host:port, such as 127.0.0.1:5038`,
		"agi: {listen: x}":                     `agentd.yaml:4: agi.listen "x" is invalid: write host:port, such as 127.0.0.1:4573`,
		"nats: {embedded: {listen: x}}":        `agentd.yaml:4: nats.embedded.listen "x" is invalid: write host:port, such as 127.0.0.1:4222`,
		"http: {listen: x}":                    `agentd.yaml:4: http.listen "x" is invalid: write host:port, such as 127.0.0.1:8080`,
		"debug: {listen: x}":                   `agentd.yaml:4: debug.listen "x" is invalid: write host:port, such as 127.0.0.1:6060`,
		"ami: {address: \"127.0.0.1:0\"}":      `agentd.yaml:4: ami.address "127.0.0.1:0" has an invalid port: use 1 to 65535, such as 127.0.0.1:5038`,
		"debug: {listen: \"127.0.0.1:70000\"}": `agentd.yaml:4: debug.listen "127.0.0.1:70000" has an invalid port: use 0 to 65535, such as 127.0.0.1:6060`,
	}
	for src, want := range cases {
		t.Run(src, func(t *testing.T) {
			_, err := ParseConfig("agentd.yaml", []byte(mergeSections(t, src)), nil)

			assert.Equal(t, []string{want}, problemLines(t, err))
		})
	}
}

func TestConfigDebugListen(t *testing.T) {
	cfg, err := ParseConfig("agentd.yaml", []byte(minimalConfig), nil)
	require.NoError(t, err)
	assert.Empty(t, cfg.Debug.Listen, "disabled by default")

	cfg, err = ParseConfig("agentd.yaml", []byte(mergeSections(t, `debug: {listen: "127.0.0.1:6060"}`)), nil)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:6060", cfg.Debug.Listen, "file")

	cfg, err = ParseConfig("agentd.yaml", []byte(minimalConfig), []string{"AGENTD_DEBUG_LISTEN=127.0.0.1:6061"})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:6061", cfg.Debug.Listen, "environment")
}

func TestConfigDebugListenFromEnvironmentInvalid(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte(minimalConfig), []string{"AGENTD_DEBUG_LISTEN=6060"})

	assert.Equal(t, []string{`environment AGENTD_DEBUG_LISTEN="6060": debug.listen "6060" is invalid: write host:port, such as 127.0.0.1:6060`}, problemLines(t, err))
}

func TestConfigListenPortZeroIsValid(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte(mergeSections(t, `http: {listen: "127.0.0.1:0"}`)), nil)

	require.NoError(t, err)
}

func TestConfigNATSProblemsUseKeys(t *testing.T) {
	cases := []struct {
		src  string
		want string
	}{
		{"nats: {stream_max_age: 1h}", `agentd.yaml:4: nats.stream_max_age 1h is below 24h, the duplicate window of the stream, which must fit in the max age: use 24h or more, such as 168h`},
		{"nats: {stream_max_age: 0s}", `agentd.yaml:4: nats.stream_max_age 0s is below 24h`},
		{"nats: {stream_replicas: 3}", `agentd.yaml:4: nats.stream_replicas 3 needs an external NATS cluster, because the embedded server keeps one copy: set nats.urls, or use 1`},
		{"nats: {bucket_replicas: 6, urls: [nats://127.0.0.1:4222]}", `agentd.yaml:4: nats.bucket_replicas 6 is invalid: use 1 to 5`},
		{"nats: {stream: a.b}", `agentd.yaml:4: nats.stream "a.b" is invalid: use letters, digits, _ and -`},
		{"nats: {bucket: \"\"}", `agentd.yaml:4: nats.bucket "" is invalid: use letters, digits, _ and -`},
		{"nats: {subject_prefix: a..b}", `agentd.yaml:4: nats.subject_prefix "a..b" is invalid`},
		{"nats: {outbox_max_entries: 0}", `agentd.yaml:4: nats.outbox_max_entries 0: use 1 or more, such as 100000`},
		{"nats: {outbox_max_bytes: 1000}", `agentd.yaml:4: nats.outbox_max_bytes 1000 is below 1048576 (1 MiB), the size of the largest outbox record: use 1048576 or more, such as 67108864`},
		{"nats: {user: u, token: t}", `agentd.yaml:4: nats.user and nats.token are set, but NATS takes one way to authenticate`},
		{"nats: {password: p}", `agentd.yaml:4: nats.password is set without nats.user: set nats.user, or remove the password`},
		{"nats: {tls_key_file: /k}", `agentd.yaml:4: nats.tls_key_file is set without nats.tls_cert_file: set both, or neither`},
		{"nats: {credentials_file: /c}", `agentd.yaml:4: nats.credentials_file works with an external NATS server only`},
		{"nats: {urls: [\"\"]}", `agentd.yaml:4: nats.urls has an empty item`},
	}
	for _, tc := range cases {
		t.Run(tc.src, func(t *testing.T) {
			_, err := ParseConfig("agentd.yaml", []byte(mergeSections(t, tc.src)), nil)

			assert.Equal(t, []string{tc.want}, trimFixes(problemLines(t, err), tc.want))
		})
	}
}

// trimFixes cuts each line to the length of want when it starts with want,
// so that a case can name only the start of a long message.
func trimFixes(lines []string, want string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l
		if strings.HasPrefix(l, want) {
			out[i] = want
		}
	}
	return out
}

func TestConfigEnvironmentProblemNamesVariable(t *testing.T) {
	src := minimalConfig + "agi:\n  max_sessions: 10\n"
	env := []string{"AGENTD_AGI_MAX_SESSIONS=-3", "AGENTD_SHUTDOWN_TIMEOUT=5"}

	_, err := ParseConfig("agentd.yaml", []byte(src), env)

	assert.Equal(t, []string{
		`environment AGENTD_SHUTDOWN_TIMEOUT="5": invalid duration for shutdown_timeout: write a number with a unit, such as 10s or 1m30s`,
		`environment AGENTD_AGI_MAX_SESSIONS="-3": agi.max_sessions -3: use 1 or more`,
	}, problemLines(t, err))
}

func TestConfigEnvironmentHidesSecrets(t *testing.T) {
	secret := "s3cr\nxyz"

	_, err := ParseConfig("agentd.yaml", []byte(minimalConfig), []string{"AGENTD_AMI_PASSWORD=" + secret})

	assert.Equal(t, []string{"environment AGENTD_AMI_PASSWORD: ami.password contains a line break: remove it"}, problemLines(t, err))
	assert.NotContains(t, err.Error(), "s3cr")
}

func TestConfigEnvironmentMapNamesVariable(t *testing.T) {
	src := minimalConfig + "device_states:\n  PAUSED: BUSY\n"

	_, err := ParseConfig("agentd.yaml", []byte(src), []string{"AGENTD_DEVICE_STATES=PAUSED=HOLD"})

	lines := problemLines(t, err)
	require.Len(t, lines, 1)
	assert.True(t, strings.HasPrefix(lines[0], `environment AGENTD_DEVICE_STATES="PAUSED=HOLD": device_states.PAUSED is "HOLD"`), lines[0])
}

func TestConfigSecretFileUnreadable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ami.secret")
	src := fmt.Sprintf("ami: {username: agentd, password_file: %s}\nari: {username: agentd, password: y}\n", missing)

	_, err := ParseConfig("agentd.yaml", []byte(src), nil)

	lines := problemLines(t, err)
	require.Len(t, lines, 1, err.Error())
	assert.Equal(t, fmt.Sprintf(`agentd.yaml:1: ami.password_file %q cannot be read: no such file or directory: set it to the file that holds ami.password`, missing), lines[0])
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour:          "24h",
		time.Hour:               "1h",
		90 * time.Minute:        "1h30m",
		time.Minute:             "1m",
		90 * time.Second:        "1m30s",
		500 * time.Millisecond:  "500ms",
		0:                       "0s",
		-2 * time.Hour:          "-2h",
		time.Hour + time.Second: "1h0m1s",
	} {
		assert.Equal(t, want, formatDuration(d), "%v", d)
	}
}

func TestEditDistance(t *testing.T) {
	assert.Equal(t, 2, editDistance("listne", "listen"))
	assert.Equal(t, 0, editDistance("ami", "ami"))
	assert.Equal(t, 3, editDistance("", "ami"))
	assert.Equal(t, 1, editDistance("ari", "ami"))
}

func TestCheckWithPackagesNamesTheSection(t *testing.T) {
	src := mergeSections(t, "nats: {stream: AGENT_EVENTS}")
	cfg, p := parseConfig("agentd.yaml", []byte(src), nil)
	require.NoError(t, p.err())
	// Values that the checks of the file reject, so only the packages'
	// own checks, the safety net, see them.
	cfg.NATS.StreamMaxAge = time.Hour
	cfg.ARI.URL = "http://127.0.0.1:8088/?a=1"

	checkWithPackages(cfg, p)

	assert.Equal(t, []string{
		"agentd.yaml:4: nats: duplicate window 24h0m0s exceeds stream max age 1h0m0s",
		`agentd.yaml:6: ari: invalid URL "http://127.0.0.1:8088/?a=1": user info, query and fragment are not allowed, set Username and Password instead`,
	}, problemLines(t, p.err()))
}

func TestCheckWithPackagesSkipsSectionsWithProblems(t *testing.T) {
	src := mergeSections(t, "nats: {stream_max_age: 1h}")
	cfg, p := parseConfig("agentd.yaml", []byte(src), nil)

	checkWithPackages(cfg, p)

	assert.Len(t, problemLines(t, p.err()), 1, "the events check does not repeat the problem of nats.stream_max_age")
}
