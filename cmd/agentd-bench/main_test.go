package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/daemon"
)

func TestGeneratedDirectoryParses(t *testing.T) {
	agents, err := newAgents(101, 3, spreadQueues(5))
	require.NoError(t, err)

	dir, err := agent.ParseDirectory("directory.yaml", []byte(directoryYAML(agents)))

	require.NoError(t, err)
	for _, a := range agents {
		got, ok := dir.Agent(a.id)
		require.True(t, ok, a.id)
		assert.Equal(t, a.iface, got.Interface)
		assert.Equal(t, a.memberName(), got.MemberName, "member name agentd sends")
		assert.Len(t, got.Queues, 5)
	}
	_, ok := dir.Pause(pauseID)
	assert.True(t, ok, "the churn's pause is in the catalog")
}

func TestGeneratedConfigParses(t *testing.T) {
	sb := &sandbox{amiAddr: "127.0.0.1:5038", amiUser: "agentd", amiSecret: "x", ariURL: "http://127.0.0.1:8088", ariUser: "agentd", ariPassword: "y"}
	dir := t.TempDir()
	directory := filepath.Join(dir, "directory.yaml")
	require.NoError(t, os.WriteFile(directory, nil, 0o600))

	cfg, err := daemon.ParseConfig("agentd.yaml", []byte(configYAML(dir, directory, "127.0.0.1:0", "127.0.0.1:0", "none", sb)), nil)

	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:5038", cfg.AMI.Address)
	assert.False(t, cfg.HTTP.Auth.Basic, "bearer tokens only, so bcrypt stays out of the figures")
	assert.Equal(t, "HS256", cfg.HTTP.Auth.JWT.Algorithm)
}

func TestSpreadQueuesEven(t *testing.T) {
	perQueue := map[string]int{}
	for i := range bulkQueueCount {
		for _, q := range spreadQueues(5)(i) {
			perQueue[q]++
		}
	}

	assert.Len(t, perQueue, bulkQueueCount)
	for q, n := range perQueue {
		assert.Equal(t, 5, n, q)
	}
	assert.NotContains(t, perQueue, "bench-47", "bench-47 to bench-50 are left to the testbench calls")
}

func TestBenchInterfaceMatchesOnlyBenchMembers(t *testing.T) {
	assert.True(t, benchInterface.MatchString(memberInterface(10001)))
	assert.False(t, benchInterface.MatchString("Local/tb123450001@agent-phones/n"))
	assert.False(t, benchInterface.MatchString("Local/1001@agent-phones/n"))
	assert.False(t, benchInterface.MatchString("PJSIP/b1"))
}

func TestParseFlagsRejectsUnknownScenario(t *testing.T) {
	_, err := parseFlags([]string{"-scenarios", "login,nosuch"})

	assert.ErrorContains(t, err, `unknown scenario "nosuch"`)
}

func TestParseFlagsLoginQueues(t *testing.T) {
	o, err := parseFlags([]string{"-login-queues", "1, 50"})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 50}, o.loginQueues)

	_, err = parseFlags([]string{"-login-queues", "51"})
	assert.Error(t, err)
}

func TestReadRSSOfThisProcess(t *testing.T) {
	rss, err := readRSS(os.Getpid())

	require.NoError(t, err)
	assert.Greater(t, rss, 1.0, "MiB")
}
