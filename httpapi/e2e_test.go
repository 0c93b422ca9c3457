package httpapi

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/agent/agenttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
	queues := agenttest.NewQueues("sales") // "support" does not exist in Asterisk
	devices := agenttest.NewDeviceStates()
	store := agenttest.NewStore()
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
			want:   `{"status":"OK","agent_id":"1001","state":"OFFLINE","effective_state":"OFFLINE","queues":[]}`,
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
			want: `{"status":"OK","agent_id":"1001","state":"READY","effective_state":"READY","since":"2026-12-04T20:15:01.500Z",
				"queues":[{"name":"sales","penalty":0,"paused":false}],
				"warnings":[{"code":"no_such_queue","queue":"support","message":"Queue \"support\" does not exist in Asterisk, so the agent was not added to it. Ask the administrator to create the queue or remove it from the agent."}]}`,
		},
		{
			name:        "pause lunch",
			path:        "/api/v1/asterisk_pause/",
			contentType: "application/x-www-form-urlencoded",
			body:        "pause_id=5",
			status:      http.StatusOK,
			want: `{"status":"OK","agent_id":"1001","state":"PAUSED","effective_state":"PAUSED","pause_id":"5","pause_name":"Lunch","pause_type":"recreational",
				"since":"2026-12-04T20:15:03.500Z","queues":[{"name":"sales","penalty":0,"paused":true}]}`,
		},
		{
			name:        "switch to after-call work",
			path:        "/api/v1/asterisk_pause",
			contentType: "application/json",
			body:        `{"pause_id":0}`,
			status:      http.StatusOK,
			want: `{"status":"OK","agent_id":"1001","state":"PAUSED","effective_state":"PAUSED","pause_id":"0","pause_name":"ACW","pause_type":"productive",
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
			want:        `{"status":"ERROR","error":{"code":"unknown_pause","message":"pause_id \"99\" is not in the pause catalog. Use one of the configured pause ids (0, 00, 5, 7)."}}`,
		},
		{
			name:        "unpause",
			path:        "/api/v1/asterisk_unpause/",
			contentType: "application/json",
			body:        `{"pause_id":"0"}`,
			status:      http.StatusOK,
			want: `{"status":"OK","agent_id":"1001","state":"READY","effective_state":"READY","since":"2026-12-04T20:15:07.500Z",
				"queues":[{"name":"sales","penalty":0,"paused":false}]}`,
		},
		{
			name:   "logout",
			path:   "/api/v1/asterisk_logout",
			status: http.StatusOK,
			want:   `{"status":"OK","agent_id":"1001","state":"OFFLINE","effective_state":"OFFLINE","since":"2026-12-04T20:15:09.500Z","queues":[]}`,
		},
	}
	for _, step := range steps {
		rec := serve(s, request{path: step.path, contentType: step.contentType, body: step.body, auth: auth})
		require.Equal(t, step.status, rec.Code, "%s: %s", step.name, rec.Body.String())
		require.JSONEq(t, step.want, rec.Body.String(), step.name)
	}

	_, member := queues.Member("sales", "PJSIP/1001")
	assert.False(t, member, "logout removed the member")
	assert.Equal(t, "UNAVAILABLE", devices.State("Stasis:agent-1001"))
	changes := store.Changes()
	require.Len(t, changes, 5)
	for _, c := range changes {
		assert.Equal(t, agent.SourceAPI, c.Source)
	}
}

func TestEndToEndPauseInEveryQueue(t *testing.T) {
	dir := testDirectory(t)
	queues := agenttest.NewQueues("sales", "support")
	devices := agenttest.NewDeviceStates()
	svc, err := agent.NewService(agent.Config{Directory: dir, Queues: queues, DeviceStates: devices, Store: agenttest.NewStore()})
	require.NoError(t, err)
	s, err := New(Config{Service: svc, Directory: svc.Directory, Auth: AuthConfig{JWT: &JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret)}}})
	require.NoError(t, err)
	auth := bearer(hsToken(t, validClaims()))

	rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: auth})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: `{"pause_id":"7"}`, auth: auth})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	assert.Contains(t, rec.Body.String(), `"queues":[{"name":"sales","penalty":0,"paused":true},{"name":"support","penalty":2,"paused":true}]`)
	sales, ok := queues.Member("sales", "PJSIP/1001")
	require.True(t, ok, "PJSIP/1001 is a member of sales")
	assert.True(t, sales.Paused)
	support, ok := queues.Member("support", "PJSIP/1001")
	require.True(t, ok, "PJSIP/1001 is a member of support")
	assert.True(t, support.Paused)
	assert.Equal(t, "ONHOLD", devices.State("Stasis:agent-1001"))
}
