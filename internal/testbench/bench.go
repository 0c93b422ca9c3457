package testbench

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// Environment variables that Require reads. "scripts/asterisk-sandbox.sh env"
// prints them as export lines.
const (
	EnvAMIAddr        = "AGENTD_TEST_AMI_ADDR"
	EnvAMIUser        = "AGENTD_TEST_AMI_USER"
	EnvAMISecret      = "AGENTD_TEST_AMI_SECRET"
	EnvAMIBenchUser   = "AGENTD_TEST_AMI_BENCH_USER"
	EnvAMIBenchSecret = "AGENTD_TEST_AMI_BENCH_SECRET"
	EnvARIURL         = "AGENTD_TEST_ARI_URL"
	EnvARIUser        = "AGENTD_TEST_ARI_USER"
	EnvARIPassword    = "AGENTD_TEST_ARI_PASSWORD"
	EnvSandboxRoot    = "AGENTD_TEST_SANDBOX_ROOT"

	// EnvRequireAsterisk set to 1 turns the skip of Require into a failure,
	// so a run that must test against Asterisk cannot pass without it.
	EnvRequireAsterisk = "AGENTD_REQUIRE_ASTERISK"
)

// startHint is the command that sets up the environment Require reads.
const startHint = `start the sandbox as root with: scripts/asterisk-sandbox.sh start && eval "$(scripts/asterisk-sandbox.sh env)"`

// Bench is the running Asterisk sandbox as the tests reach it.
type Bench struct {
	// AMIAddr is the host:port of the AMI listener, 127.0.0.1:5038.
	AMIAddr string
	// AMIUser and AMISecret are the least-privilege AMI user agentd runs as.
	AMIUser   string
	AMISecret string
	// AMIBenchUser and AMIBenchSecret are the test-only AMI user the helpers
	// of this package use; it may also originate calls and set globals.
	AMIBenchUser   string
	AMIBenchSecret string
	// ARIURL is the HTTP base without the /ari prefix, http://127.0.0.1:8088.
	ARIURL      string
	ARIUser     string
	ARIPassword string
	// SandboxRoot is the chroot directory on the host.
	SandboxRoot string

	http *http.Client
}

// Require returns the sandbox described by the environment. When a variable
// is missing it skips the test, or fails it when AGENTD_REQUIRE_ASTERISK=1.
// When the environment is complete but AMI does not respond, it fails the test.
func Require(t testing.TB) *Bench {
	t.Helper()

	b, missing := benchFromEnv(os.Getenv)
	if len(missing) > 0 {
		message := fmt.Sprintf("Asterisk sandbox not configured: %s unset; %s", strings.Join(missing, ", "), startHint)
		if os.Getenv(EnvRequireAsterisk) == "1" {
			t.Fatal(message + " (" + EnvRequireAsterisk + "=1 forbids skipping)")
			return nil
		}
		t.Skip(message)
		return nil
	}

	if err := b.checkAMI(); err != nil {
		t.Fatalf("Asterisk sandbox not reachable: %v; %s", err, startHint)
		return nil
	}
	return b
}

// benchFromEnv builds a Bench from getenv and lists the variables that are
// unset or empty.
func benchFromEnv(getenv func(string) string) (*Bench, []string) {
	var missing []string
	lookup := func(name string) string {
		value := getenv(name)
		if value == "" {
			missing = append(missing, name)
		}
		return value
	}

	b := &Bench{
		AMIAddr:        lookup(EnvAMIAddr),
		AMIUser:        lookup(EnvAMIUser),
		AMISecret:      lookup(EnvAMISecret),
		AMIBenchUser:   lookup(EnvAMIBenchUser),
		AMIBenchSecret: lookup(EnvAMIBenchSecret),
		ARIURL:         strings.TrimSuffix(lookup(EnvARIURL), "/"),
		ARIUser:        lookup(EnvARIUser),
		ARIPassword:    lookup(EnvARIPassword),
		SandboxRoot:    lookup(EnvSandboxRoot),
		// Without keep-alive no connection goroutine outlives a request,
		// which keeps goleak checks of the calling tests quiet.
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	return b, missing
}

// checkAMI logs in once as the bench user, which proves that Asterisk runs
// with the sandbox's manager.conf.
func (b *Bench) checkAMI() error {
	conn, err := dialAMI(b.AMIAddr, b.AMIBenchUser, b.AMIBenchSecret, false)
	if err != nil {
		return err
	}
	conn.close()
	return nil
}

// action runs one AMI action as the bench user on a connection of its own.
func (b *Bench) action(action string, headers ...amiHeader) (map[string]string, error) {
	conn, err := dialAMI(b.AMIAddr, b.AMIBenchUser, b.AMIBenchSecret, false)
	if err != nil {
		return nil, err
	}
	defer conn.close()
	return conn.do(action, headers...)
}

var uniqueNames atomic.Uint64

// UniqueName returns prefix followed by digits that no other test process
// running at the same time produces, for member interfaces, device names
// and agent ids that must not collide on the shared Asterisk. The result
// contains only the prefix's characters and digits, so "tb" gives a valid
// extension for the agent-phones context.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s%d%04d", prefix, os.Getpid(), uniqueNames.Add(1))
}
