package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// runResult is the outcome of one run call.
type runResult struct {
	code   int
	stdout string
	stderr string
}

func runAgentd(stdin string, args ...string) runResult {
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// writeFile writes data to name in dir with mode and returns its path.
// The mode is set with Chmod, so the umask does not change it.
func writeFile(t *testing.T, dir, name, data string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(data), mode))
	require.NoError(t, os.Chmod(path, mode))
	return path
}

// validConfig returns a main configuration that names directory and
// passes every check.
func validConfig(dataDir, directory string) string {
	return fmt.Sprintf(`node: test
data_dir: %s
directory: %s
ami: {username: agentd, password: x}
ari: {username: agentd, password: y}
`, dataDir, directory)
}

func TestCheckConfigExample(t *testing.T) {
	directory, err := filepath.Abs("../../configs/directory.yaml")
	require.NoError(t, err)
	t.Setenv("AGENTD_DIRECTORY", directory)

	r := runAgentd("", "check-config", "-config", "../../configs/agentd.yaml")

	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, lines(r.stdout), "../../configs/agentd.yaml: OK")
	assert.Contains(t, lines(r.stdout), directory+": OK")
	assert.Empty(t, r.stderr)
}

func TestCheckConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	directory := writeFile(t, dir, "directory.yaml", "agents: []\n", 0o600)
	path := writeFile(t, dir, "agentd.yaml", `node: "a b"
data_dir: `+dir+`
directory: `+directory+`
log:
  level: loud
http:
  listen: localhost
  listne: 127.0.0.1:8080
ami:
  username: agentd
  action_timeout: 10
ari:
  url: ftp://x
  username: agentd
  password: y
agi:
  allow: [10.0.0.0/33]
nats:
  stream_max_age: 1h
`, 0o600)

	r := runAgentd("", "check-config", "-config", path)

	assert.Equal(t, 1, r.code)
	got := lines(r.stdout)
	want := []string{
		path + `:8: unknown key "listne" under http: check the spelling against docs/configuration.md (did you mean "listen"?)`,
		path + `:11: invalid duration "10" for ami.action_timeout: write a number with a unit, such as 10s or 1m30s`,
		path + `:1: node "a b" is invalid`,
		path + `:5: log.level "loud" is invalid`,
		path + `:7: http.listen "localhost" is invalid: write host:port, such as 127.0.0.1:8080`,
		path + `:9: ami.password is empty`,
		path + `:13: ari.url "ftp://x" is invalid`,
		path + `:17: agi.allow has "10.0.0.0/33"`,
		path + `:19: nats.stream_max_age 1h is below 24h, the duplicate window of the stream, which must fit in the max age: use 24h or more, such as 168h`,
	}
	require.Len(t, got, len(want), r.stdout)
	for i, w := range want {
		assert.True(t, strings.HasPrefix(got[i], w), "line %d is %q, want it to start with %q", i+1, got[i], w)
	}
	assert.Equal(t, "agentd: configuration is invalid\n", r.stderr)
}

func TestCheckConfigMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "directory.yaml")
	config := writeFile(t, dir, "agentd.yaml", validConfig(dir, missing), 0o600)

	r := runAgentd("", "check-config", "-config", config)

	assert.Equal(t, 1, r.code)
	assert.Equal(t, []string{
		fmt.Sprintf(`%s:3: directory %q cannot be read: no such file or directory: set directory to the agent directory file`, config, missing),
	}, lines(r.stdout))
}

func TestCheckConfigNamesEnvironmentVariable(t *testing.T) {
	dir := t.TempDir()
	directory := writeFile(t, dir, "directory.yaml", "agents: []\n", 0o600)
	config := writeFile(t, dir, "agentd.yaml", validConfig(dir, directory), 0o600)
	t.Setenv("AGENTD_AGI_MAX_SESSIONS", "-3")

	r := runAgentd("", "check-config", "-config", config)

	assert.Equal(t, 1, r.code)
	assert.Equal(t, []string{`environment AGENTD_AGI_MAX_SESSIONS="-3": agi.max_sessions -3: use 1 or more`}, lines(r.stdout))
}

func TestCheckConfigReportsSyntaxErrorOnly(t *testing.T) {
	dir := t.TempDir()
	config := writeFile(t, dir, "agentd.yaml", "node: test\nami:\n  username: agentd\n password: x\n", 0o600)

	r := runAgentd("", "check-config", "-config", config)

	assert.Equal(t, 1, r.code)
	got := lines(r.stdout)
	require.Len(t, got, 1, r.stdout)
	assert.True(t, strings.HasPrefix(got[0], config+":3: invalid YAML: did not find expected key"), got[0])
}

func TestCheckConfigChecksJWTKey(t *testing.T) {
	dir := t.TempDir()
	directory := writeFile(t, dir, "directory.yaml", "agents: []\n", 0o600)
	key := writeFile(t, dir, "jwt.pub.pem", "not a key\n", 0o600)
	config := writeFile(t, dir, "agentd.yaml", validConfig(dir, directory)+`http:
  auth:
    jwt:
      algorithm: RS256
      public_key_file: `+key+`
`, 0o600)

	r := runAgentd("", "check-config", "-config", config)

	assert.Equal(t, 1, r.code)
	got := lines(r.stdout)
	require.Len(t, got, 1, r.stdout)
	assert.True(t, strings.HasPrefix(got[0], config+":10: http.auth.jwt.public_key_file: JWT public key is not a PEM RSA public key"), got[0])
}

func TestCheckConfigReportsDirectoryProblems(t *testing.T) {
	dir := t.TempDir()
	directory := writeFile(t, dir, "directory.yaml", `pauses:
  - {id: "1", name: Break}
  - {id: "1", name: Lunch}
  - {id: "2", name: Training, type: leisure}
agents:
  - id: "1001"
    name: Ana
    interface: not-an-interface
    password_hash: plain-text
    queues: [{name: sales}]
  - id: "1002"
    name: Bruno
    interface: PJSIP/1002
    queues: [{name: sales, penalty: -1}]
`, 0o600)
	config := writeFile(t, dir, "agentd.yaml", validConfig(dir, directory), 0o600)

	r := runAgentd("", "check-config", "-config", config)

	assert.Equal(t, 1, r.code)
	got := lines(r.stdout)
	want := []string{
		directory + `:3: pause id "1" is listed twice`,
		directory + `:4: pause "2" has type "leisure"`,
		directory + `:6: agent "1001" has interface "not-an-interface"`,
		directory + `:6: agent "1001" has a password_hash that is not a bcrypt hash`,
		directory + `:11: agent "1002" has penalty -1 in queue "sales"`,
	}
	require.Len(t, got, len(want), r.stdout)
	for i, w := range want {
		assert.True(t, strings.HasPrefix(got[i], w), "line %d is %q, want it to start with %q", i+1, got[i], w)
	}
	assert.NotContains(t, r.stdout, ": OK")
}

func TestCheckConfigWarnsWhenReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	directory := writeFile(t, dir, "directory.yaml", "agents: []\n", 0o600)
	open := writeFile(t, dir, "open.yaml", validConfig(dir, directory), 0o644)
	private := writeFile(t, dir, "private.yaml", validConfig(dir, directory), 0o640)

	warned := runAgentd("", "check-config", "-config", open)
	quiet := runAgentd("", "check-config", "-config", private)

	assert.Equal(t, 0, warned.code, warned.stdout)
	assert.Contains(t, warned.stdout, open+": warning: readable by every user (mode 0644)")
	assert.Contains(t, warned.stdout, "chmod 640 "+open)
	assert.Contains(t, warned.stdout, open+": OK")
	assert.Equal(t, 0, quiet.code, quiet.stdout)
	assert.NotContains(t, quiet.stdout, "warning")
}

func TestCheckConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")

	r := runAgentd("", "check-config", "-config", path)

	assert.Equal(t, 1, r.code)
	assert.Equal(t, []string{path + ": cannot be read: no such file or directory: pass the configuration file with -config FILE"}, lines(r.stdout))
}

func TestVersionPrintsBuild(t *testing.T) {
	r := runAgentd("", "version")

	assert.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "agentd "), r.stdout)
	assert.Contains(t, r.stdout, "(commit ")
	assert.Contains(t, r.stdout, runtime.Version())
	assert.Contains(t, r.stdout, runtime.GOOS+"/"+runtime.GOARCH)
	assert.Empty(t, r.stderr)
}

func TestHashPasswordVerifies(t *testing.T) {
	for name, input := range map[string]string{
		"line":          "correct horse\n",
		"CRLF":          "correct horse\r\n",
		"no line break": "correct horse",
	} {
		t.Run(name, func(t *testing.T) {
			r := runAgentd(input, "hash-password")

			require.Equal(t, 0, r.code, r.stderr)
			hash := strings.TrimSuffix(r.stdout, "\n")
			require.NoError(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")))
			assert.Error(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse\n")))
		})
	}
}

func TestHashPasswordRejectsEmptyInput(t *testing.T) {
	r := runAgentd("\n", "hash-password")

	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "empty password")
}

func TestUnknownCommandPrintsUsage(t *testing.T) {
	r := runAgentd("", "frobnicate")

	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, `agentd: unknown command "frobnicate"`)
	assert.Contains(t, r.stderr, "usage:")
	assert.Contains(t, r.stderr, "agentd check-config [-config FILE]")
}

func TestHelpPrintsUsage(t *testing.T) {
	r := runAgentd("", "help")

	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "usage:")
	assert.Contains(t, r.stdout, "agentd check-config [-config FILE]")
	assert.Empty(t, r.stderr)
}

func TestHelpFlagPrintsUsageAndFlags(t *testing.T) {
	cases := []struct {
		args    []string
		command string
		flags   []string
	}{
		{[]string{"-h"}, "run", []string{"-config FILE"}},
		{[]string{"--help"}, "run", []string{"-config FILE"}},
		{[]string{"run", "-h"}, "run", []string{"-config FILE"}},
		{[]string{"check-config", "--help"}, "check-config", []string{"-config FILE"}},
		{[]string{"events", "-h"}, "events", []string{"-config FILE", "-agent ID", "-all"}},
		{[]string{"help", "events"}, "events", []string{"-config FILE", "-agent ID", "-all"}},
		{[]string{"hash-password", "-h"}, "hash-password", []string{"none"}},
		{[]string{"version", "--help"}, "version", []string{"none"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runAgentd("", tc.args...)

			assert.Equal(t, 0, r.code)
			assert.Empty(t, r.stderr)
			assert.Contains(t, r.stdout, "usage:\n  agentd [run] [-config FILE]", "the full usage, with the command list")
			assert.Contains(t, r.stdout, "agentd hash-password")
			assert.Contains(t, r.stdout, "flags of agentd "+tc.command+":")
			for _, flag := range tc.flags {
				assert.Contains(t, r.stdout, flag)
			}
		})
	}
}

func TestUnknownFlagFails(t *testing.T) {
	r := runAgentd("", "check-config", "-bogus")

	assert.Equal(t, 2, r.code, "exit status 2 for a usage error, as the flag package uses")
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "flag provided but not defined: -bogus")
	assert.Equal(t, 1, strings.Count(r.stderr, "-bogus"), "the problem is printed once")
	assert.Contains(t, r.stderr, "usage:")
	assert.Contains(t, r.stderr, "flags of agentd check-config:\n  -config FILE")
}

func TestUnexpectedArgumentFails(t *testing.T) {
	r := runAgentd("", "check-config", "agentd.yaml")

	assert.Equal(t, 2, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, `unexpected argument "agentd.yaml": agentd check-config takes only flags`)
	assert.Contains(t, r.stderr, "flags of agentd check-config:")
}

func TestHelpUnknownCommandFails(t *testing.T) {
	r := runAgentd("", "help", "frobnicate")

	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, `agentd: unknown command "frobnicate"`)
}
