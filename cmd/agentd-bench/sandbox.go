package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contactcenter/agentd/internal/bench/rawami"
)

// Queues bench-01 to bench-50 of test/asterisk/etc/queues.conf.
const benchQueueCount = 50

// bulkQueueCount is how many bench queues the many-agent scenarios spread
// their members over. The sandbox tests of internal/testbench place calls
// into bench-47 to bench-50 with ringall, so members the benchmark keeps
// there for minutes would answer those calls.
const bulkQueueCount = 46

// amiTimeout bounds one AMI exchange of the benchmark's own clients.
const amiTimeout = 30 * time.Second

// benchInterface matches the member interfaces the benchmark adds, and no
// interface that agentd's tests add ("tb", "e2e" and agent ids prefixes).
var benchInterface = regexp.MustCompile(`^Local/b[0-9]+@agent-phones/n$`)

// queueName returns the name of bench queue i, counted from 0.
func queueName(i int) string {
	return fmt.Sprintf("bench-%02d", i+1)
}

// memberInterface returns the interface of bench member n. The
// agent-phones context of the sandbox plays its phone: it rings, then
// answers.
func memberInterface(n int) string {
	return fmt.Sprintf("Local/b%d@agent-phones/n", n)
}

// sandbox is the running Asterisk as "scripts/asterisk-sandbox.sh env"
// describes it.
type sandbox struct {
	amiAddr     string
	amiUser     string
	amiSecret   string
	benchUser   string
	benchSecret string
	ariURL      string
	ariUser     string
	ariPassword string
	version     string
	// amiConnections is agentd's ami.connections against this sandbox.
	amiConnections int
}

func sandboxFromEnv() (*sandbox, error) {
	var missing []string
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	sb := &sandbox{
		amiAddr:     get("AGENTD_TEST_AMI_ADDR"),
		amiUser:     get("AGENTD_TEST_AMI_USER"),
		amiSecret:   get("AGENTD_TEST_AMI_SECRET"),
		benchUser:   get("AGENTD_TEST_AMI_BENCH_USER"),
		benchSecret: get("AGENTD_TEST_AMI_BENCH_SECRET"),
		ariURL:      strings.TrimSuffix(get("AGENTD_TEST_ARI_URL"), "/"),
		ariUser:     get("AGENTD_TEST_ARI_USER"),
		ariPassword: get("AGENTD_TEST_ARI_PASSWORD"),
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("sandbox environment missing (%s): run: eval \"$(scripts/asterisk-sandbox.sh env)\"", strings.Join(missing, ", "))
	}
	for _, addr := range []string{sb.amiAddr, strings.TrimPrefix(sb.ariURL, "http://")} {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			return nil, fmt.Errorf("address %q is not on 127.0.0.1: the benchmark only sends traffic to loopback", addr)
		}
	}

	conn, err := sb.dial("off")
	if err != nil {
		return nil, fmt.Errorf("%w; start the sandbox with: scripts/asterisk-sandbox.sh start", err)
	}
	conn.Close()
	if sb.version, err = sb.asteriskVersion(); err != nil {
		return nil, err
	}
	return sb, nil
}

// asteriskVersion reads system.version from ARI GET /asterisk/info, because
// the AMI users of the sandbox may not send CoreSettings.
func (sb *sandbox) asteriskVersion() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), amiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sb.ariURL+"/ari/asterisk/info", nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(sb.ariUser, sb.ariPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("read the Asterisk version over ARI: %w", err)
	}
	defer resp.Body.Close()
	var info struct {
		System struct {
			Version string `json:"version"`
		} `json:"system"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return "", fmt.Errorf("read the Asterisk version over ARI: status %d: %w", resp.StatusCode, err)
	}
	return info.System.Version, nil
}

// dial opens an AMI session as the sandbox's bench user, which may also
// originate calls.
func (sb *sandbox) dial(events string) (*rawami.Conn, error) {
	return rawami.Dial(sb.amiAddr, sb.benchUser, sb.benchSecret, events, amiTimeout)
}

// dialAgentdUser opens an AMI session as the user agentd logs in as, so
// the reference clients have exactly agentd's rights.
func (sb *sandbox) dialAgentdUser() (*rawami.Conn, error) {
	return rawami.Dial(sb.amiAddr, sb.amiUser, sb.amiSecret, "off", amiTimeout)
}

// benchMembers returns the members with a bench interface in the bench
// queues, keyed by queue and interface, with how often each is listed.
func (sb *sandbox) benchMembers() (map[member]int, []rawami.Message, error) {
	conn, err := sb.dial("off")
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	events, err := conn.List(amiTimeout, rawami.NewAction("QueueStatus"))
	if err != nil {
		return nil, nil, err
	}
	found := map[member]int{}
	var listed []rawami.Message
	for _, ev := range events {
		if ev["Event"] != "QueueMember" || !strings.HasPrefix(ev["Queue"], "bench-") || !benchInterface.MatchString(ev["Location"]) {
			continue
		}
		found[member{queue: ev["Queue"], iface: ev["Location"]}]++
		listed = append(listed, ev)
	}
	return found, listed, nil
}

// member is one queue membership.
type member struct {
	queue, iface string
}

// sweep removes every bench member from the bench queues and returns how
// many there were.
func (sb *sandbox) sweep() (int, error) {
	found, _, err := sb.benchMembers()
	if err != nil || len(found) == 0 {
		return 0, err
	}
	actions := make([]rawami.Action, 0, len(found))
	for m := range found {
		actions = append(actions, rawami.NewAction("QueueRemove", "Queue", m.queue, "Interface", m.iface))
	}
	conn, err := sb.dial("off")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.Send(amiTimeout, actions...); err != nil {
		return 0, err
	}
	return len(found), nil
}

// removeMembers sends QueueRemove for each member, pipelined on one
// connection. A member that is not there counts as removed.
func removeMembers(conn *rawami.Conn, members []member) error {
	actions := make([]rawami.Action, len(members))
	for i, m := range members {
		actions[i] = rawami.NewAction("QueueRemove", "Queue", m.queue, "Interface", m.iface)
	}
	resp, err := conn.Send(amiTimeout, actions...)
	if err != nil {
		return err
	}
	var errs []error
	for i, r := range resp {
		if r.IsError() && !strings.Contains(r["Message"], "Not there") {
			errs = append(errs, fmt.Errorf("QueueRemove %s from %s: %s", members[i].iface, members[i].queue, r["Message"]))
		}
	}
	return errors.Join(errs...)
}

// setDeviceState sends the ARI request agentd sends for a device state,
// as agentd's ARI user.
func (sb *sandbox) setDeviceState(ctx context.Context, client *http.Client, device, state string) error {
	return sb.deviceStateRequest(ctx, client, http.MethodPut, device, "?deviceState="+url.QueryEscape(state))
}

// deleteDeviceStates deletes the Stasis:agent-<id> devices of the agents,
// which agentd created and Asterisk keeps in astdb until the sandbox
// restarts. A device that is already gone counts as deleted.
func (sb *sandbox) deleteDeviceStates(ctx context.Context, client *http.Client, agents []benchAgent) error {
	var (
		next atomic.Int64
		errs errorTally
		wg   sync.WaitGroup
	)
	for range min(deviceDeleteConcurrency, len(agents)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(agents)); i = next.Add(1) - 1 {
				err := sb.deviceStateRequest(ctx, client, http.MethodDelete, "Stasis:agent-"+agents[i].id, "")
				if !errors.Is(err, errDeviceNotFound) {
					errs.add(err)
				}
			}
		})
	}
	wg.Wait()
	return errs.first
}

// deviceDeleteConcurrency stays far below Asterisk's HTTP session_limit,
// which defaults to 100 sessions for all HTTP clients together.
const deviceDeleteConcurrency = 8

// errDeviceNotFound is the 404 of a device state request.
var errDeviceNotFound = errors.New("device not found")

func (sb *sandbox) deviceStateRequest(ctx context.Context, client *http.Client, method, device, query string) error {
	u := sb.ariURL + "/ari/deviceStates/" + url.PathEscape(device) + query
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(sb.ariUser, sb.ariPassword)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("ARI %s %s: %w", method, device, errDeviceNotFound)
	}
	return fmt.Errorf("ARI %s %s: status %d", method, device, resp.StatusCode)
}
