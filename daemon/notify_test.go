package daemon_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notifySocket is a fake systemd notification socket.
type notifySocket struct {
	conn *net.UnixConn
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &notifySocket{conn: conn}
}

// next returns the next datagram's lines, failing the test after timeout.
func (s *notifySocket) next(t *testing.T, timeout time.Duration) []string {
	t.Helper()
	buf := make([]byte, 4096)
	require.NoError(t, s.conn.SetReadDeadline(time.Now().Add(timeout)))
	n, err := s.conn.Read(buf)
	require.NoError(t, err, "no notification within %s", timeout)
	return strings.Split(string(buf[:n]), "\n")
}

// waitFor reads datagrams until one has line, and returns all lines read.
func (s *notifySocket) waitFor(t *testing.T, line string) []string {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		msg := s.next(t, time.Until(deadline))
		seen = append(seen, msg...)
		for _, l := range msg {
			if l == line {
				return seen
			}
		}
	}
	t.Fatalf("no %q among %q", line, seen)
	return nil
}

func TestNotifyReadyStatusAndStopping(t *testing.T) {
	sock := listenNotify(t)
	e := startOffline(t, nil, `http: {listen: "127.0.0.1:0"}`)

	first := sock.next(t, 5*time.Second)
	require.Equal(t, "READY=1", first[0])
	require.Len(t, first, 2)
	assert.Contains(t, first[1], "STATUS=ami down, ari down, nats up")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.d.Stop(ctx))
	sock.waitFor(t, "STOPPING=1")
}

func TestNotifyWatchdogPings(t *testing.T) {
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", strconv.Itoa(int((200 * time.Millisecond).Microseconds())))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	startOffline(t, nil, `http: {listen: "127.0.0.1:0"}`)

	sock.waitFor(t, "READY=1")
	sock.waitFor(t, "WATCHDOG=1")
	sock.waitFor(t, "WATCHDOG=1")
}
