package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// debugTestConfig returns a configuration with debug.listen set to
// debugListen and AMI and ARI on a closed port of 127.0.0.1, so that agentd
// serves HTTP while it fails to reach Asterisk. FastAGI and the NATS client
// port are off.
func debugTestConfig(t *testing.T, debugListen string) Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())

	dir := t.TempDir()
	directory := filepath.Join(dir, "directory.yaml")
	require.NoError(t, os.WriteFile(directory, []byte("agents: []\n"), 0o600))
	src := fmt.Sprintf(`
node: debug
data_dir: %s
directory: %s
http: {listen: "127.0.0.1:0"}
agi: {listen: ""}
ami: {address: %q, username: agentd, password: x}
ari: {url: "http://%s", username: agentd, password: y}
nats: {embedded: {listen: none}}
debug: {listen: %q}
`, filepath.Join(dir, "data"), directory, closed, closed, debugListen)
	cfg, err := ParseConfig("agentd.yaml", []byte(src), nil)
	require.NoError(t, err)
	return cfg
}

// startDebugDaemon starts agentd with the configuration of debugTestConfig
// and stops it when the test ends.
func startDebugDaemon(t *testing.T, debugListen string) (*Daemon, *lockedBuffer) {
	t.Helper()
	cfg := debugTestConfig(t, debugListen)
	logs := &lockedBuffer{}
	logger, _ := NewLogger(logs, cfg.Log)
	d, err := Start(t.Context(), Options{Config: cfg, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, d.Stop(ctx))
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	return d, logs
}

// getDebug sends a GET request without keep-alive and returns the status
// and the body.
func getDebug(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := getURL(url)
	require.NoError(t, err)
	return code, body
}

// getURL is getDebug without the test, for use from other goroutines.
func getURL(url string) (int, string, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// listeningPorts returns the ports of the TCP sockets in the LISTEN state
// that this process holds. It reads /proc, and skips the test where /proc
// is missing.
func listeningPorts(t *testing.T) []int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("listening sockets cannot be listed without /proc: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}

	var ports []int
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		data, err := os.ReadFile(table)
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		require.NoError(t, err)
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// Fields: sl, local_address (hex IP:port), rem_address, st
			// (0A is LISTEN), tx_queue:rx_queue, tr:tm->when, retrnsmt,
			// uid, timeout, inode.
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			require.NoError(t, err)
			ports = append(ports, int(port))
		}
	}
	return ports
}

// portsOpenedSince returns the ports in after that are not in before,
// sorted.
func portsOpenedSince(before, after []int) []int {
	var opened []int
	for _, port := range after {
		if !slices.Contains(before, port) {
			opened = append(opened, port)
		}
	}
	slices.Sort(opened)
	return opened
}

func addrPort(t *testing.T, addr net.Addr) int {
	t.Helper()
	tcp, ok := addr.(*net.TCPAddr)
	require.True(t, ok, "%v is not a TCP address", addr)
	return tcp.Port
}

func TestDebugServesPprof(t *testing.T) {
	before := listeningPorts(t)
	d, logs := startDebugDaemon(t, "127.0.0.1:0")
	require.NotNil(t, d.DebugAddr())
	base := "http://" + d.DebugAddr().String()

	code, body := getDebug(t, base+"/debug/pprof/heap?debug=1")

	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "heap profile")
	want := []int{addrPort(t, d.HTTPAddr()), addrPort(t, d.DebugAddr())}
	slices.Sort(want)
	assert.Equal(t, want, portsOpenedSince(before, listeningPorts(t)), "agentd listens on http.listen and debug.listen only")
	assert.Contains(t, logs.String(), `msg="debug server serving pprof" addr=`+d.DebugAddr().String())
	assert.NotContains(t, logs.String(), "level=WARN msg=\"debug server")
}

func TestDebugServesEveryPprofHandler(t *testing.T) {
	d, _ := startDebugDaemon(t, "127.0.0.1:0")
	base := "http://" + d.DebugAddr().String()
	cases := []struct {
		path string
		want string
	}{
		{"/debug/pprof/", "Types of profiles available"},
		{"/debug/pprof/cmdline", os.Args[0]},
		{"/debug/pprof/symbol", "num_symbols"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile"},
		{"/debug/pprof/allocs?debug=1", "heap profile"},
		{"/debug/pprof/threadcreate?debug=1", "threadcreate profile"},
		{"/debug/pprof/trace?seconds=0.05", "go 1."}, // header of the trace format
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			code, body := getDebug(t, base+tc.path)

			assert.Equal(t, http.StatusOK, code)
			assert.Contains(t, body, tc.want)
		})
	}
}

func TestDebugNotOnAPIListener(t *testing.T) {
	d, _ := startDebugDaemon(t, "127.0.0.1:0")
	api := "http://" + d.HTTPAddr().String()

	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
		code, _ := getDebug(t, api+path)

		assert.Equal(t, http.StatusNotFound, code, path)
	}
}

func TestDebugDisabledByDefault(t *testing.T) {
	before := listeningPorts(t)
	d, logs := startDebugDaemon(t, "")

	assert.Nil(t, d.DebugAddr())
	assert.Equal(t, []int{addrPort(t, d.HTTPAddr())}, portsOpenedSince(before, listeningPorts(t)), "only http.listen is open")
	code, _ := getDebug(t, "http://"+d.HTTPAddr().String()+"/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, code)
	assert.NotContains(t, logs.String(), "pprof")
}

func TestDebugListenInUseFailsStart(t *testing.T) {
	inUse, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer inUse.Close()
	cfg := debugTestConfig(t, inUse.Addr().String())

	d, err := Start(t.Context(), Options{Config: cfg})

	assert.Nil(t, d)
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	assert.Contains(t, err.Error(), "debug.listen "+inUse.Addr().String()+": ")
}

func TestStopEndsCPUProfileInFlight(t *testing.T) {
	// Goroutines left by earlier tests are not this test's.
	baseline := goleak.IgnoreCurrent()
	d, _ := startDebugDaemon(t, "127.0.0.1:0")
	debugAddr := d.DebugAddr().String()
	type result struct {
		code int
		body string
		err  error
	}
	profiled := make(chan result, 1)
	go func() {
		code, body, err := getURL("http://" + debugAddr + "/debug/pprof/profile?seconds=60")
		profiled <- result{code, body, err}
	}()
	require.Eventually(t, func() bool {
		_, goroutines := getDebug(t, "http://"+debugAddr+"/debug/pprof/goroutine?debug=1")
		return strings.Contains(goroutines, "net/http/pprof.Profile")
	}, 10*time.Second, 10*time.Millisecond, "the CPU profile request did not reach the handler")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopStart := time.Now()
	require.NoError(t, d.Stop(ctx))

	assert.Less(t, time.Since(stopStart), 5*time.Second, "Stop waited for the 60 s CPU profile")
	var r result
	select {
	case r = <-profiled:
	case <-time.After(10 * time.Second):
		t.Fatal("the CPU profile request did not end after Stop")
	}
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusOK, r.code)
	assert.True(t, strings.HasPrefix(r.body, "\x1f\x8b"), "the profile is gzip-compressed protobuf, as pprof writes it")
	_, err := net.DialTimeout("tcp", debugAddr, time.Second)
	require.ErrorIs(t, err, syscall.ECONNREFUSED, "debug.listen still accepts connections after Stop")
	goleak.VerifyNone(t, baseline)
}

func TestDebugListenerWarnsOffLoopback(t *testing.T) {
	cases := []struct {
		addr string
		warn bool
	}{
		{"127.0.0.1:6060", false},
		{"127.0.0.2:6060", false},
		{"[::1]:6060", false},
		{"0.0.0.0:6060", true},
		{"[::]:6060", true},
		{"10.0.0.5:6060", true},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			var buf bytes.Buffer
			addr, err := net.ResolveTCPAddr("tcp", tc.addr)
			require.NoError(t, err)

			logDebugListener(slog.New(slog.NewTextHandler(&buf, nil)), addr)

			assert.Contains(t, buf.String(), `level=INFO msg="debug server serving pprof" addr=`+addr.String())
			if tc.warn {
				assert.Contains(t, buf.String(), `level=WARN msg="debug server is reachable from other hosts`)
			} else {
				assert.NotContains(t, buf.String(), "level=WARN")
			}
		})
	}
}
