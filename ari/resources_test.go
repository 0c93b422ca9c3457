package ari

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

func TestDeviceStateGet(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK, `{"name":"Stasis:agent-1001","state":"RINGINUSE"}`))
	c := newTestClient(t, fake.srv.URL)

	state, err := c.DeviceState(context.Background(), "Stasis:agent-1001")

	require.NoError(t, err)
	assert.Equal(t, DeviceRingInUse, state)
	assert.Equal(t, http.MethodGet, fake.last(t).Method)
}

func TestListDeviceStates(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK,
		`[{"name":"Stasis:agent-1001","state":"NOT_INUSE"},{"name":"Stasis:agent-1002","state":"BUSY"}]`))
	c := newTestClient(t, fake.srv.URL)

	states, err := c.ListDeviceStates(context.Background())

	require.NoError(t, err)
	assert.Equal(t, []DeviceState{
		{Name: "Stasis:agent-1001", State: DeviceNotInUse},
		{Name: "Stasis:agent-1002", State: DeviceBusy},
	}, states)
	assert.Equal(t, "/ari/deviceStates", fake.last(t).RequestURI)
}

func TestDeleteDeviceState(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusNoContent, ""))
	c := newTestClient(t, fake.srv.URL)

	require.NoError(t, c.DeleteDeviceState(context.Background(), "Stasis:agent-1001"))

	got := fake.last(t)
	assert.Equal(t, http.MethodDelete, got.Method)
	assert.Equal(t, "/ari/deviceStates/Stasis:agent-1001", got.RequestURI)
}

func TestDeviceStatesAdapter(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		check   func(t *testing.T, err error)
		request bool
	}{
		{"success", 204, "", func(t *testing.T, err error) {
			assert.NoError(t, err)
		}, true},
		{"not booted", 503, `{"message":"Asterisk not booted"}`, func(t *testing.T, err error) {
			require.ErrorIs(t, err, agent.ErrAsteriskUnavailable)
			assert.ErrorIs(t, err, ErrUnavailable)
		}, true},
		{"uncontrolled", 409, `{"message":"Uncontrolled device specified"}`, func(t *testing.T, err error) {
			var astErr *agent.AsteriskError
			require.ErrorAs(t, err, &astErr)
			assert.Equal(t, "PUT deviceStates/Custom:agent-1001", astErr.Action)
			assert.Equal(t, "Uncontrolled device specified", astErr.Message)
			assert.NotErrorIs(t, err, agent.ErrAsteriskUnavailable)
		}, true},
		{"unknown device", 500, `{"message":"Unknown device"}`, func(t *testing.T, err error) {
			var astErr *agent.AsteriskError
			require.ErrorAs(t, err, &astErr)
			assert.Equal(t, "Unknown device", astErr.Message)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeREST(t, respondJSON(tt.status, tt.body))
			var states agent.DeviceStates = NewDeviceStates(newTestClient(t, fake.srv.URL))

			err := states.SetDeviceState(context.Background(), "Custom:agent-1001", DeviceInUse)

			tt.check(t, err)
			assert.Len(t, fake.recorded(), 1)
		})
	}
}

func TestDeviceStatesAdapterInvalidState(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusNoContent, ""))
	states := NewDeviceStates(newTestClient(t, fake.srv.URL))

	err := states.SetDeviceState(context.Background(), "Stasis:agent-1001", "UNKNOWN")

	var astErr *agent.AsteriskError
	require.ErrorAs(t, err, &astErr)
	assert.Equal(t, "PUT deviceStates/Stasis:agent-1001", astErr.Action)
	assert.Contains(t, astErr.Message, `"UNKNOWN"`)
	assert.Empty(t, fake.recorded())
}

func TestDeviceStatesAdapterCanceled(t *testing.T) {
	states := NewDeviceStates(newTestClient(t, blockingServer(t).srv.URL))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)

	err := states.SetDeviceState(ctx, "Stasis:agent-1001", DeviceInUse)

	require.ErrorIs(t, err, context.Canceled)
	var astErr *agent.AsteriskError
	assert.NotErrorAs(t, err, &astErr, "a canceled request is not an Asterisk error")
	assert.NotErrorIs(t, err, agent.ErrAsteriskUnavailable)
}

// infoJSON is GET /ari/asterisk/info as Asterisk 22 sends it.
const infoJSON = `{
 "build":{"os":"Linux","kernel":"6.1.0-18-amd64","machine":"x86_64",
  "options":"BUILD_NATIVE, OPTIONAL_API","date":"2025-06-01 10:00:00 UTC","user":"root"},
 "system":{"version":"22.10.1","entity_id":"02:42:ac:11:00:02"},
 "config":{"name":"","default_language":"en","max_channels":0,"max_open_files":0,"max_load":0,
  "setid":{"user":"asterisk","group":"asterisk"}},
 "status":{"startup_time":"2025-03-04T10:20:30.123+0100","last_reload_time":"2025-03-04T11:00:00.500-0300"}
}`

func TestInfoParsesStartupTime(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK, infoJSON))
	c := newTestClient(t, fake.srv.URL)

	info, err := c.Info(context.Background())

	require.NoError(t, err)
	wantStart := time.Date(2025, 3, 4, 9, 20, 30, 123e6, time.UTC)
	assert.True(t, info.Status.StartupTime.Equal(wantStart), "startup time %s", info.Status.StartupTime)
	_, offset := info.Status.StartupTime.Zone()
	assert.Equal(t, 3600, offset)
	wantReload := time.Date(2025, 3, 4, 14, 0, 0, 500e6, time.UTC)
	assert.True(t, info.Status.LastReloadTime.Equal(wantReload), "reload time %s", info.Status.LastReloadTime)
	assert.Equal(t, "02:42:ac:11:00:02", info.System.EntityID)
	assert.Equal(t, "22.10.1", info.System.Version)
	assert.Equal(t, "asterisk", info.Config.SetID.User)
	assert.Equal(t, "x86_64", info.Build.Machine)
	assert.Equal(t, "/ari/asterisk/info", fake.last(t).RequestURI)
}

func TestInfoRejectsBadStartupTime(t *testing.T) {
	body := strings.Replace(infoJSON, "2025-03-04T10:20:30.123+0100", "yesterday", 1)
	fake := newFakeREST(t, respondJSON(http.StatusOK, body))
	c := newTestClient(t, fake.srv.URL)

	_, err := c.Info(context.Background())

	require.Error(t, err)
	assert.Contains(t, err.Error(), `"yesterday"`)
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2025-03-04T10:20:30.123+0100", time.Date(2025, 3, 4, 9, 20, 30, 123e6, time.UTC)},
		{"2025-03-04T10:20:30+0000", time.Date(2025, 3, 4, 10, 20, 30, 0, time.UTC)},
		{"2025-03-04T10:20:30.123456-0300", time.Date(2025, 3, 4, 13, 20, 30, 123456e3, time.UTC)},
		{"", time.Time{}},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.in)
		require.NoError(t, err, tt.in)
		assert.True(t, got.Equal(tt.want), "%q parsed as %s", tt.in, got)
	}

	for _, bad := range []string{"2025-03-04T10:20:30.123+01:00", "2025-03-04 10:20:30", "1741080030"} {
		_, err := parseTime(bad)
		assert.Error(t, err, bad)
	}
}

func TestPing(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK,
		`{"asterisk_id":"02:42:ac:11:00:02","ping":"pong","timestamp":"2025-03-04T10:20:30.123+0100"}`))
	c := newTestClient(t, fake.srv.URL)

	p, err := c.Ping(context.Background())

	require.NoError(t, err)
	assert.Equal(t, "pong", p.Ping)
	assert.Equal(t, "02:42:ac:11:00:02", p.AsteriskID)
	assert.True(t, p.Timestamp.Equal(time.Date(2025, 3, 4, 9, 20, 30, 123e6, time.UTC)))
	assert.Equal(t, "/ari/asterisk/ping", fake.last(t).RequestURI)
}

func TestGlobalVars(t *testing.T) {
	fake := newFakeREST(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			respondJSON(http.StatusOK, `{"value":"42"}`)(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := newTestClient(t, fake.srv.URL)

	require.NoError(t, c.SetGlobalVar(context.Background(), "AGENTD_EPOCH", ""))
	set := fake.last(t)
	assert.Equal(t, "/ari/asterisk/variable?value=&variable=AGENTD_EPOCH", set.RequestURI,
		"an empty value must still be sent")

	value, err := c.GetGlobalVar(context.Background(), "AGENTD_EPOCH")
	require.NoError(t, err)
	assert.Equal(t, "42", value)
	assert.Equal(t, "/ari/asterisk/variable?variable=AGENTD_EPOCH", fake.last(t).RequestURI)

	require.ErrorIs(t, c.SetGlobalVar(context.Background(), "", "1"), ErrInvalidArgument)
	_, err = c.GetGlobalVar(context.Background(), "")
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestSubscribe(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK,
		`{"name":"agentd","channel_ids":[],"bridge_ids":[],"endpoint_ids":["PJSIP/1001"],"device_names":["Stasis:agent-1001"]}`))
	c := newTestClient(t, fake.srv.URL)

	app, err := c.Subscribe(context.Background(), "agentd", "deviceState:Stasis:agent-1001", "endpoint:PJSIP/1001")

	require.NoError(t, err)
	assert.Equal(t, Application{
		Name: "agentd", ChannelIDs: []string{}, BridgeIDs: []string{},
		EndpointIDs: []string{"PJSIP/1001"}, DeviceNames: []string{"Stasis:agent-1001"},
	}, app)
	got := fake.last(t)
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "/ari/applications/agentd/subscription", got.RawPath)
	assert.Equal(t, "deviceState:Stasis:agent-1001,endpoint:PJSIP/1001", got.Query.Get("eventSource"))
}

func TestUnsubscribe(t *testing.T) {
	fake := newFakeREST(t, respondJSON(422, `{"message":"Event source was not subscribed to"}`))
	c := newTestClient(t, fake.srv.URL)

	_, err := c.Unsubscribe(context.Background(), "agentd", "channel:")

	var apiErr *Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 422, apiErr.Status)
	got := fake.last(t)
	assert.Equal(t, http.MethodDelete, got.Method)
	assert.Equal(t, "channel:", got.Query.Get("eventSource"))
}

func TestSubscribeSendsBatches(t *testing.T) {
	tests := []struct {
		name     string
		format   string
		requests int
	}{
		{"count limit", "channel:%d", 3},
		{"length limit", "deviceState:Stasis:agent-" + strings.Repeat("x", 40) + "-%03d", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeREST(t, respondJSON(http.StatusOK, `{"name":"agentd"}`))
			c := newTestClient(t, fake.srv.URL)
			var sources []string
			for i := range 250 {
				sources = append(sources, fmt.Sprintf(tt.format, i))
			}

			_, err := c.Subscribe(context.Background(), "agentd", sources...)
			require.NoError(t, err)

			var sent []string
			requests := fake.recorded()
			assert.Len(t, requests, tt.requests)
			for _, r := range requests {
				batch := strings.Split(r.Query.Get("eventSource"), ",")
				assert.LessOrEqual(t, len(batch), maxSourcesPerRequest)
				assert.LessOrEqual(t, len(r.RequestURI), 4096-len("POST  HTTP/1.1\r\n"), "request line too long for Asterisk")
				sent = append(sent, batch...)
			}
			assert.Equal(t, sources, sent)
		})
	}
}

func TestSubscribeRejectsInvalidSources(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK, `{"name":"agentd"}`))
	c := newTestClient(t, fake.srv.URL)

	cases := [][]string{
		nil,
		{""},
		{"deviceState:a,b"},
		{`deviceState:"x"`},
		{`deviceState:a\b`},
		{"deviceState:f(x"},
	}
	for _, sources := range cases {
		_, err := c.Subscribe(context.Background(), "agentd", sources...)
		require.ErrorIs(t, err, ErrInvalidArgument, "%q", sources)
	}
	_, err := c.Subscribe(context.Background(), "", "channel:")
	require.ErrorIs(t, err, ErrInvalidArgument)

	assert.Empty(t, fake.recorded())
}

// channelJSON is one channel as Asterisk 22 sends it, with channelvars.
const channelJSON = `{"id":"1741080030.42","name":"PJSIP/1001-00000007","state":"Ringing",
 "protocol_id":"a84d-11@127.0.0.1","caller":{"name":"Alice","number":"1001"},
 "connected":{"name":"","number":"5551234"},"accountcode":"",
 "dialplan":{"context":"agent-phones","exten":"1001","priority":3,"app_name":"Dial","app_data":"PJSIP/1001,30"},
 "creationtime":"2025-03-04T10:20:30.123+0100","language":"en",
 "channelvars":{"AGENT_ID":"1001"}}`

func TestChannels(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK, "["+channelJSON+"]"))
	c := newTestClient(t, fake.srv.URL)

	channels, err := c.Channels(context.Background())

	require.NoError(t, err)
	require.Len(t, channels, 1)
	ch := channels[0]
	assert.Equal(t, "1741080030.42", ch.ID)
	assert.Equal(t, ChannelRinging, ch.State)
	assert.Equal(t, "1001", ch.Caller.Number)
	assert.Equal(t, "5551234", ch.Connected.Number)
	assert.Equal(t, "agent-phones", ch.Dialplan.Context)
	assert.Equal(t, 3, ch.Dialplan.Priority)
	assert.Equal(t, map[string]string{"AGENT_ID": "1001"}, ch.ChannelVars)
	assert.True(t, ch.CreationTime.Equal(time.Date(2025, 3, 4, 9, 20, 30, 123e6, time.UTC)))
	assert.Equal(t, "/ari/channels", fake.last(t).RequestURI)
}

func TestEndpoints(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK,
		`[{"technology":"PJSIP","resource":"1001","state":"online","channel_ids":["1741080030.42"]},
		  {"technology":"PJSIP","resource":"1002","state":"offline","channel_ids":[]}]`))
	c := newTestClient(t, fake.srv.URL)

	endpoints, err := c.Endpoints(context.Background())

	require.NoError(t, err)
	assert.Equal(t, []Endpoint{
		{Technology: "PJSIP", Resource: "1001", State: EndpointOnline, ChannelIDs: []string{"1741080030.42"}},
		{Technology: "PJSIP", Resource: "1002", State: EndpointOffline, ChannelIDs: []string{}},
	}, endpoints)
}
