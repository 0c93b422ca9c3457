package testbench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// asteriskBinary is the path of the Asterisk binary inside the chroot.
const asteriskBinary = "/usr/sbin/asterisk"

// CLI runs the Asterisk CLI command cmd, such as "queue show sales", with
// "asterisk -rx" inside the sandbox chroot and returns its output. It needs
// root, as chroot does.
func (b *Bench) CLI(t testing.TB, cmd string) string {
	t.Helper()

	if os.Geteuid() != 0 {
		t.Fatalf("CLI(%q): chroot into %s needs root; run the tests as root, as make test does", cmd, b.SandboxRoot)
		return ""
	}

	ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
	defer cancel()

	chroot, err := exec.LookPath("chroot")
	if err != nil {
		t.Fatalf("CLI(%q): %v", cmd, err)
		return ""
	}
	command := exec.CommandContext(ctx, chroot, filepath.Clean(b.SandboxRoot), asteriskBinary, "-rx", cmd)
	command.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	output, err := command.CombinedOutput()
	if err != nil {
		t.Fatalf("CLI(%q): %v: %s", cmd, err, output)
		return ""
	}
	return string(output)
}
