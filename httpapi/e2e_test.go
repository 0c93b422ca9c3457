package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memoryStore is an in-memory agent.Store that records every change.
type memoryStore struct {
	mu       sync.Mutex
	sessions map[string]agent.Session
	changes  []agent.Change
}

func (m *memoryStore) Sessions(context.Context) ([]agent.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]agent.Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s)
	}
	return out, nil
}

func (m *memoryStore) Commit(_ context.Context, c agent.Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions == nil {
		m.sessions = map[string]agent.Session{}
	}
	m.sessions[c.Session.AgentID] = c.Session
	m.changes = append(m.changes, c)
	return nil
}

// recordingQueues keeps queue members of its configured queues as
// Asterisk's app_queue does, and records each action.
type recordingQueues struct {
	mu      sync.Mutex
	known   map[string]bool
	members map[string]map[string]bool // queue -> interface -> paused
	actions []string
}

func newRecordingQueues(known ...string) *recordingQueues {
	q := &recordingQueues{known: map[string]bool{}, members: map[string]map[string]bool{}}
	for _, name := range known {
		q.known[name] = true
		q.members[name] = map[string]bool{}
	}
	return q
}

func (q *recordingQueues) AddMember(_ context.Context, m agent.Member) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.actions = append(q.actions, fmt.Sprintf("QueueAdd %s %s penalty=%d", m.Queue, m.Interface, m.Penalty))
	switch {
	case !q.known[m.Queue]:
		return fmt.Errorf("queue %q: %w", m.Queue, agent.ErrNoSuchQueue)
	case q.isMember(m.Queue, m.Interface):
		return fmt.Errorf("queue %q: %w", m.Queue, agent.ErrAlreadyMember)
	}
	q.members[m.Queue][m.Interface] = false
	return nil
}

func (q *recordingQueues) RemoveMember(_ context.Context, queue, iface string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.actions = append(q.actions, fmt.Sprintf("QueueRemove %s %s", queue, iface))
	if !q.isMember(queue, iface) {
		return fmt.Errorf("queue %q: %w", queue, agent.ErrNotMember)
	}
	delete(q.members[queue], iface)
	return nil
}

func (q *recordingQueues) PauseMember(_ context.Context, iface string, paused bool, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.actions = append(q.actions, fmt.Sprintf("QueuePause %s paused=%t reason=%s", iface, paused, reason))
	found := false
	for queue := range q.members {
		if q.isMember(queue, iface) {
			q.members[queue][iface] = paused
			found = true
		}
	}
	if !found {
		return fmt.Errorf("interface %s: %w", iface, agent.ErrNotMember)
	}
	return nil
}

func (q *recordingQueues) isMember(queue, iface string) bool {
	_, ok := q.members[queue][iface]
	return ok
}

func (q *recordingQueues) paused(queue, iface string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.members[queue][iface]
}

// recordingDevices records the last state set for each device.
type recordingDevices struct {
	mu     sync.Mutex
	states map[string]string
}

func (d *recordingDevices) SetDeviceState(_ context.Context, device, state string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.states == nil {
		d.states = map[string]string{}
	}
	d.states[device] = state
	return nil
}

func (d *recordingDevices) state(device string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.states[device]
}

// steppingClock returns a time one second later on each call.
type steppingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

func TestEndToEndWithAgentService(t *testing.T) {
	dir := testDirectory(t)
	queues := newRecordingQueues("sales") // "support" does not exist in Asterisk
	devices := &recordingDevices{}
	store := &memoryStore{}
	clock := &steppingClock{now: time.Date(2026, 12, 4, 20, 15, 0, 500_000_000, time.UTC)}
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: queues, DeviceStates: devices, Store: store, Now: clock.Now})
	require.NoError(t, err)
	s, err := New(Config{Service: svc, Directory: svc.Directory, Auth: AuthConfig{Basic: true}})
	require.NoError(t, err)

	auth := basic("1001", password1001)
	steps := []struct {
		name        string
		path        string
		contentType string
		body        string
		status      int
		want        string
	}{
		{
			name:   "logout before login",
			path:   "/api/v1/asterisk_logout/",
			status: http.StatusOK,
			want:   `{"status":"OK","agent_id":"1001","state":"OFFLINE","queues":[]}`,
		},
		{
			name:        "pause before login",
			path:        "/api/v1/asterisk_pause/",
			contentType: "application/json",
			body:        `{"pause_id":"5"}`,
			status:      http.StatusConflict,
			want:        `{"status":"ERROR","error":{"code":"not_logged_in","message":"Agent \"1001\" is not logged in. Call asterisk_login first."}}`,
		},
		{
			name:   "login",
			path:   "/api/v1/asterisk_login",
			status: http.StatusOK,
			want: `{"status":"OK","agent_id":"1001","state":"READY","since":"2026-12-04T20:15:01.500Z",
				"queues":[{"name":"sales","penalty":0,"paused":false}],
				"warnings":[{"code":"no_such_queue","queue":"support","message":"Queue \"support\" does not exist in Asterisk, so the agent was not added to it. Ask the administrator to create the queue or remove it from the agent."}]}`,
		},
		{
			name:        "pause lunch",
			path:        "/api/v1/asterisk_pause/",
			contentType: "application/x-www-form-urlencoded",
			body:        "pause_id=5",
			status:      http.StatusOK,
			want: `{"status":"OK","agent_id":"1001","state":"PAUSED","pause_id":"5","pause_name":"Lunch","pause_type":"recreational",
				"since":"2026-12-04T20:15:03.500Z","queues":[{"name":"sales","penalty":0,"paused":true}]}`,
		},
		{
			name:        "switch to after-call work",
			path:        "/api/v1/asterisk_pause",
			contentType: "application/json",
			body:        `{"pause_id":0}`,
			status:      http.StatusOK,
			want: `{"status":"OK","agent_id":"1001","state":"PAUSED","pause_id":"0","pause_name":"ACW","pause_type":"productive",
				"since":"2026-12-04T20:15:05.500Z","queues":[{"name":"sales","penalty":0,"paused":true}]}`,
		},
		{
			name:        "unpause other pause",
			path:        "/api/v1/asterisk_unpause/",
			contentType: "application/json",
			body:        `{"pause_id":"00"}`,
			status:      http.StatusConflict,
			want:        `{"status":"ERROR","error":{"code":"pause_mismatch","message":"Agent \"1001\" is in pause \"0\", not in pause \"00\". Send pause_id \"0\" to end the current pause."}}`,
		},
		{
			name:        "unpause unknown pause",
			path:        "/api/v1/asterisk_unpause/",
			contentType: "application/json",
			body:        `{"pause_id":"99"}`,
			status:      http.StatusUnprocessableEntity,
			want:        `{"status":"ERROR","error":{"code":"unknown_pause","message":"pause_id \"99\" is not in the pause catalog. Use one of the configured pause ids."}}`,
		},
		{
			name:        "unpause",
			path:        "/api/v1/asterisk_unpause/",
			contentType: "application/json",
			body:        `{"pause_id":"0"}`,
			status:      http.StatusOK,
			want: `{"status":"OK","agent_id":"1001","state":"READY","since":"2026-12-04T20:15:07.500Z",
				"queues":[{"name":"sales","penalty":0,"paused":false}]}`,
		},
		{
			name:   "logout",
			path:   "/api/v1/asterisk_logout",
			status: http.StatusOK,
			want:   `{"status":"OK","agent_id":"1001","state":"OFFLINE","since":"2026-12-04T20:15:09.500Z","queues":[]}`,
		},
	}
	for _, step := range steps {
		rec := serve(s, request{path: step.path, contentType: step.contentType, body: step.body, auth: auth})
		require.Equal(t, step.status, rec.Code, "%s: %s", step.name, rec.Body.String())
		require.JSONEq(t, step.want, rec.Body.String(), step.name)
	}

	assert.False(t, queues.isMember("sales", "PJSIP/1001"), "logout removed the member")
	assert.Equal(t, "UNAVAILABLE", devices.state("Stasis:agent-1001"))
	require.Len(t, store.changes, 5)
	for _, c := range store.changes {
		assert.Equal(t, agent.SourceAPI, c.Source)
	}
}

func TestEndToEndPauseInEveryQueue(t *testing.T) {
	dir := testDirectory(t)
	queues := newRecordingQueues("sales", "support")
	devices := &recordingDevices{}
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: queues, DeviceStates: devices, Store: &memoryStore{}})
	require.NoError(t, err)
	s, err := New(Config{Service: svc, Directory: svc.Directory, Auth: AuthConfig{JWT: &JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret)}}})
	require.NoError(t, err)
	auth := bearer(hsToken(t, validClaims()))

	rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: auth})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: `{"pause_id":"7"}`, auth: auth})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	assert.Contains(t, rec.Body.String(), `"queues":[{"name":"sales","penalty":0,"paused":true},{"name":"support","penalty":2,"paused":true}]`)
	assert.True(t, queues.paused("sales", "PJSIP/1001"))
	assert.True(t, queues.paused("support", "PJSIP/1001"))
	assert.Equal(t, "ONHOLD", devices.state("Stasis:agent-1001"))
}
