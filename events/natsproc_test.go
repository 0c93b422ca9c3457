package events

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

var (
	serverBinaryOnce sync.Once
	serverBinaryDir  string
	serverBinary     string
	serverBinaryErr  error
)

// buildServer builds nats-server from the module's own dependency once per
// test binary.
func buildServer(t *testing.T) string {
	t.Helper()
	serverBinaryOnce.Do(func() {
		serverBinaryDir, serverBinaryErr = os.MkdirTemp("", "agentd-events-nats-server-")
		if serverBinaryErr != nil {
			return
		}
		serverBinary = filepath.Join(serverBinaryDir, "nats-server")
		cmd := exec.Command("go", "build", "-o", serverBinary, "github.com/nats-io/nats-server/v2")
		if out, err := cmd.CombinedOutput(); err != nil {
			serverBinaryErr = fmt.Errorf("go build nats-server: %w: %s", err, out)
		}
	})
	require.NoError(t, serverBinaryErr)
	return serverBinary
}

func removeServerBinary() {
	if serverBinaryDir != "" {
		_ = os.RemoveAll(serverBinaryDir)
	}
}

// natsProcess is a nats-server process with JetStream on 127.0.0.1.
type natsProcess struct {
	t        *testing.T
	binary   string
	port     int
	storeDir string
	logPath  string
	// args are extra nats-server arguments, e.g. authentication.
	args []string
	// clientOpts let the readiness check authenticate.
	clientOpts []nats.Option
	cmd        *exec.Cmd
	exited     chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// newNATSProcess prepares a server on a free port, and start runs it.
func newNATSProcess(t *testing.T) *natsProcess {
	t.Helper()
	p := &natsProcess{t: t, binary: buildServer(t), port: freePort(t), storeDir: t.TempDir()}
	p.logPath = filepath.Join(t.TempDir(), "nats-server.log")
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out, _ := os.ReadFile(p.logPath)
			t.Logf("nats-server log:\n%s", out)
		}
	})
	return p
}

func (p *natsProcess) url() string {
	return "nats://127.0.0.1:" + strconv.Itoa(p.port)
}

func (p *natsProcess) tlsURL() string {
	return "tls://127.0.0.1:" + strconv.Itoa(p.port)
}

// start runs the server and waits until JetStream responds.
func (p *natsProcess) start() {
	p.t.Helper()
	args := []string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(p.port),
		"-sd", p.storeDir, "-n", "events-test", "-l", p.logPath}
	p.cmd = exec.Command(p.binary, append(args, p.args...)...)
	require.NoError(p.t, p.cmd.Start())
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(p.cmd, p.exited)

	require.Eventually(p.t, p.jetStreamReady, 20*time.Second, 50*time.Millisecond, "nats-server on %s not ready", p.url())
}

func (p *natsProcess) jetStreamReady() bool {
	nc, err := nats.Connect(p.url(), append([]nats.Option{nats.Timeout(time.Second)}, p.clientOpts...)...)
	if err != nil {
		return false
	}
	defer nc.Close()
	_, err = nc.Request("$JS.API.INFO", nil, time.Second)
	return err == nil
}

// stop sends SIGTERM to the server and waits for it to exit.
func (p *natsProcess) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}
