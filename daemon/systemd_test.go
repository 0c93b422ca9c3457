package daemon_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnitFileVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("AGENTD_REQUIRE_ASTERISK") == "1" {
			t.Fatal("systemd-analyze not found: install the systemd package")
		}
		t.Skip("systemd-analyze not found")
	}
	unit, err := os.ReadFile("../systemd/agentd.service")
	require.NoError(t, err)
	for _, key := range []string{"Type=notify", "Restart=on-failure", "StateDirectory=agentd", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies="} {
		assert.Contains(t, string(unit), key)
	}

	// verify checks that ExecStart is executable, so point it at this test
	// binary instead of /usr/bin/agentd.
	self, err := os.Executable()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "agentd.service")
	require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/bin/agentd", self)), 0o644))

	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify printed warnings")
}
