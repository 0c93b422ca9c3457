package daemon_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/ari"
)

// Entity id and timestamp of the fake Asterisk, in the events and in GET
// /ari/asterisk/info.
const (
	resyncEntityID  = "02:42:ac:11:00:02"
	resyncTimestamp = "2025-03-04T10:20:30.123+0100"
)

// Names of the lists that resyncARI can hold.
const (
	listChannels  = "channels"
	listEndpoints = "endpoints"
)

// resyncARI is a fake ARI on 127.0.0.1 for the resync that agentd runs
// after each websocket connect. The first GET of the list named heldList
// waits until releaseHeld, so that a test can send events while agentd
// reads that list. GET /ari/channels returns no channel, GET
// /ari/endpoints returns endpoints, and every device state that agentd
// sets is recorded.
type resyncARI struct {
	srv       *httptest.Server
	ctx       context.Context // ends when the test ends
	heldList  string
	endpoints []ari.Endpoint
	heldSeen  chan struct{}        // closed when the held request arrives
	release   chan struct{}        // closed by releaseHeld
	conns     chan *websocket.Conn // event websockets, in accept order

	mu           sync.Mutex
	listRequests map[string]int      // GET requests of each list
	deviceStates map[string][]string // device name to the states set, in arrival order
}

func startResyncARI(t *testing.T, heldList string, endpoints []ari.Endpoint) *resyncARI {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &resyncARI{
		ctx:          ctx,
		heldList:     heldList,
		endpoints:    endpoints,
		heldSeen:     make(chan struct{}),
		release:      make(chan struct{}),
		conns:        make(chan *websocket.Conn, 8),
		listRequests: map[string]int{},
		deviceStates: map[string][]string{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	// Cleanups run last in first out: cancel ends the websockets and a
	// held request, so that Close does not wait for them.
	t.Cleanup(f.srv.Close)
	t.Cleanup(cancel)
	return f
}

func (f *resyncARI) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/ari/")
	switch {
	case r.Method == http.MethodGet && path == "events":
		f.serveEvents(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "applications/") && strings.HasSuffix(path, "/subscription"):
		app := strings.TrimSuffix(strings.TrimPrefix(path, "applications/"), "/subscription")
		writeJSON(w, ari.Application{Name: app, ChannelIDs: []string{}, BridgeIDs: []string{}, EndpointIDs: []string{}, DeviceNames: []string{}})
	case r.Method == http.MethodGet && path == "asterisk/info":
		writeJSON(w, map[string]any{
			"system": map[string]string{"version": "22.10.1", "entity_id": resyncEntityID},
			"status": map[string]string{"startup_time": resyncTimestamp, "last_reload_time": resyncTimestamp},
		})
	case r.Method == http.MethodGet && (path == listChannels || path == listEndpoints):
		f.serveList(w, r, path)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "deviceStates/"):
		f.mu.Lock()
		device := strings.TrimPrefix(path, "deviceStates/")
		f.deviceStates[device] = append(f.deviceStates[device], r.URL.Query().Get("deviceState"))
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// serveEvents accepts the event websocket and reads from it until it
// closes. coder/websocket responds to agentd's pings, and to its close
// frame at Stop, only while a read is running.
func (f *resyncARI) serveEvents(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"ari"}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	select {
	case f.conns <- conn:
	default:
	}
	for {
		if _, _, err := conn.Read(f.ctx); err != nil {
			return
		}
	}
}

// serveList responds with the list called name. The first request of
// f.heldList waits until releaseHeld.
func (f *resyncARI) serveList(w http.ResponseWriter, r *http.Request, name string) {
	f.mu.Lock()
	f.listRequests[name]++
	first := f.listRequests[name] == 1
	f.mu.Unlock()
	if name == f.heldList && first {
		close(f.heldSeen)
		select {
		case <-f.release:
		case <-r.Context().Done():
			return
		case <-f.ctx.Done():
			return
		}
	}
	if name == listEndpoints {
		writeJSON(w, f.endpoints)
		return
	}
	writeJSON(w, []ari.Channel{})
}

// releaseHeld lets the held list request return.
func (f *resyncARI) releaseHeld() { close(f.release) }

// requests returns how many GET requests of the list name arrived.
func (f *resyncARI) requests(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listRequests[name]
}

// states returns the states set for device, in arrival order.
func (f *resyncARI) states(device string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deviceStates[device])
}

// waitStates waits until at least n states were set for device and
// returns them all.
func (f *resyncARI) waitStates(t *testing.T, device string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := f.states(device)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d device states set for %s within 10s: %v", n, device, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// resyncFixture is agentd started against resyncARI and a fake AMI, with
// two agents logged in while the held list request waits.
type resyncFixture struct {
	ari    *resyncARI
	events *websocket.Conn
	setup  *lifecycleSetup
	e      *e2eDaemon
	// agent is the agent whose calls and endpoint the events report.
	agent e2eAgent
	// marker is an agent that /ari/endpoints lists as offline. Its
	// UNAVAILABLE device state shows that the resync has queued its
	// changes for every agent, so an event sent afterwards is handled
	// after them.
	marker e2eAgent
}

func startResync(t *testing.T, heldList string) *resyncFixture {
	t.Helper()
	a, marker := newAgent("sales"), newAgent("sales")
	a.Interface, marker.Interface = "PJSIP/"+a.ID, "PJSIP/"+marker.ID
	endpoints := []ari.Endpoint{
		{Technology: "PJSIP", Resource: a.ID, State: ari.EndpointOnline, ChannelIDs: []string{}},
		{Technology: "PJSIP", Resource: marker.ID, State: ari.EndpointOffline, ChannelIDs: []string{}},
	}
	f := &resyncFixture{ari: startResyncARI(t, heldList, endpoints), agent: a, marker: marker}
	f.setup = &lifecycleSetup{amiAddr: startQueueAMI(t, false).addr(), ariURL: f.ari.srv.URL, agents: []e2eAgent{a, marker}}
	f.e = startLifecycle(t, f.setup)

	select {
	case <-f.ari.heldSeen:
	case <-time.After(10 * time.Second):
		t.Fatalf("agentd did not request /ari/%s", heldList)
	}
	f.events = <-f.ari.conns
	// The ARI connect triggers a reconciliation, which sets the device
	// state of each logged-in agent again, so it must end before the
	// logins.
	require.Eventually(t, func() bool { return strings.Contains(f.setup.logs.String(), "reconciliation done") }, 10*time.Second, 5*time.Millisecond,
		"the reconciliation after the ARI connect did not end")
	f.login(t, a)
	f.login(t, marker)
	return f
}

// login logs a in and checks that its device state was set to NOT_INUSE.
func (f *resyncFixture) login(t *testing.T, a e2eAgent) {
	t.Helper()
	code, body := f.e.post(t, a, "/api/v1/asterisk_login/", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []string{"NOT_INUSE"}, f.ari.states(deviceName(a)))
}

// send writes one ARI event of type eventType with the fields of body to
// the event websocket.
func (f *resyncFixture) send(t *testing.T, eventType string, body map[string]any) {
	t.Helper()
	msg := map[string]any{"type": eventType, "application": "agentd", "timestamp": resyncTimestamp, "asterisk_id": resyncEntityID}
	maps.Copy(msg, body)
	data, err := json.Marshal(msg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, f.events.Write(ctx, websocket.MessageText, data))
}

// sendChannel sends an event of type eventType for the channel id, named
// as a channel of the agent's phone: PJSIP/<agent id>-00000001.
func (f *resyncFixture) sendChannel(t *testing.T, eventType, id, state string) {
	t.Helper()
	name := f.agent.Interface + "-00000001"
	f.send(t, eventType, map[string]any{"channel": map[string]any{"id": id, "name": name, "state": state}})
}

// session returns the agent's session. It must run on the test's
// goroutine.
func (f *resyncFixture) session(t *testing.T) agent.Session {
	t.Helper()
	st, err := f.e.d.Service().Status(f.agent.ID)
	require.NoError(t, err)
	return st.Session
}

// releaseAndWaitMarker releases the held list and waits until the resync
// has queued its changes, which the marker's UNAVAILABLE device state
// shows.
func (f *resyncFixture) releaseAndWaitMarker(t *testing.T) {
	t.Helper()
	f.ari.releaseHeld()
	assert.Equal(t, []string{"NOT_INUSE", "UNAVAILABLE"}, f.ari.waitStates(t, deviceName(f.marker), 2))
}

// checkOneResync checks that each list was read once. A second read
// means the held request timed out (ari.request_timeout, 5 s by default)
// and agentd connected again, so the events did not arrive during the
// first read.
func (f *resyncFixture) checkOneResync(t *testing.T) {
	t.Helper()
	assert.Equal(t, 1, f.ari.requests(listChannels), "GET /ari/channels requests")
	assert.Equal(t, 1, f.ari.requests(listEndpoints), "GET /ari/endpoints requests")
}

func deviceName(a e2eAgent) string { return "Stasis:agent-" + a.ID }

func TestResyncKeepsRingingCall(t *testing.T) {
	f := startResync(t, listChannels)
	device := deviceName(f.agent)

	// The call rings while agentd reads /ari/channels, and the list,
	// taken before the call existed, has no channel.
	f.sendChannel(t, ari.EventChannelCreated, "c1", ari.ChannelRinging)
	require.Equal(t, []string{"NOT_INUSE", "RINGING"}, f.ari.waitStates(t, device, 2))
	f.releaseAndWaitMarker(t)
	f.sendChannel(t, ari.EventChannelStateChange, "c1", ari.ChannelUp)

	assert.Equal(t, []string{"NOT_INUSE", "RINGING", "INUSE"}, f.ari.waitStates(t, device, 3),
		"the agent goes from RINGING to ONCALL, never READY (NOT_INUSE) in between")
	assert.Eventually(t, func() bool {
		st, err := f.e.d.Service().Status(f.agent.ID)
		return err == nil && st.Session.Effective() == agent.StateOnCall
	}, 10*time.Second, 5*time.Millisecond, "the session is not ONCALL")
	f.checkOneResync(t)
}

func TestResyncKeepsOfflineEndpoint(t *testing.T) {
	f := startResync(t, listEndpoints)
	device := deviceName(f.agent)

	// The phone goes offline while agentd reads /ari/endpoints, and the
	// list, taken before, has it online.
	f.send(t, "PeerStatusChange", map[string]any{
		"endpoint": ari.Endpoint{Technology: "PJSIP", Resource: f.agent.ID, State: ari.EndpointOffline, ChannelIDs: []string{}},
		"peer":     map[string]string{"peer_status": "Unreachable"},
	})
	require.Equal(t, []string{"NOT_INUSE", "UNAVAILABLE"}, f.ari.waitStates(t, device, 2))
	f.releaseAndWaitMarker(t)

	// A call that rings and ends shows the state the agent returns to.
	f.sendChannel(t, ari.EventChannelCreated, "c1", ari.ChannelRinging)
	assert.Equal(t, []string{"NOT_INUSE", "UNAVAILABLE", "RINGING"}, f.ari.waitStates(t, device, 3),
		"the list read before the offline event does not make the agent available (NOT_INUSE)")
	f.sendChannel(t, ari.EventChannelDestroyed, "c1", ari.ChannelRinging)
	assert.Equal(t, []string{"NOT_INUSE", "UNAVAILABLE", "RINGING", "UNAVAILABLE"}, f.ari.waitStates(t, device, 4),
		"after the call the agent is UNAVAILABLE again")

	session := f.session(t)
	assert.True(t, session.Unavailable, "the session is not marked unavailable")
	assert.Equal(t, agent.StateReady, session.State, "the agent stays logged in")
	f.checkOneResync(t)
}
