package daemon

import (
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
	assert.Equal(t, "ONHOLD", cfg.StateMap()[agent.StatePaused])
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

func TestConfigUnknownKeyIsRejected(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte("ami:\n  addr: x\n"), nil)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2: field addr not found")
}

func TestConfigEmptyAGIAllowIsRejected(t *testing.T) {
	_, err := ParseConfig("agentd.yaml", []byte(minimalConfig+"agi: {allow: []}\n"), nil)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "agentd.yaml:4: agi.allow is empty")
}
