package ari

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
	"github.com/contactcenter/agentd/internal/testbench"
)

// The tests in this file run against the Asterisk sandbox of
// scripts/asterisk-sandbox.sh and skip when its environment is not set.

// sandboxClient returns a Client for the sandbox's ARI with application
// app.
func sandboxClient(t *testing.T, bench *testbench.Bench, app string) *Client {
	t.Helper()
	c, err := NewClient(Config{
		URL:         bench.ARIURL,
		Username:    bench.ARIUser,
		Password:    bench.ARIPassword,
		Application: app,
		Logger:      testLogger(t),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// deleteDeviceAtCleanup removes an ARI-controlled device when the test ends.
func deleteDeviceAtCleanup(t *testing.T, c *Client, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, c.DeleteDeviceState(ctx, name), "delete %s", name)
	})
}

func TestAsteriskDeviceStatePutGet(t *testing.T) {
	bench := testbench.Require(t)
	c := sandboxClient(t, bench, testApp)
	ctx := testContext(t)
	name := "Stasis:agent-test-" + testbench.UniqueName("ari")
	deleteDeviceAtCleanup(t, c, name)

	for _, state := range []string{DeviceInUse, DeviceRinging, DeviceNotInUse} {
		require.NoError(t, c.SetDeviceState(ctx, name, state))

		got, err := c.DeviceState(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, state, got)
		assert.Equal(t, state, bench.DeviceState(t, name), "state read by the bench")
	}

	listed, err := c.ListDeviceStates(ctx)
	require.NoError(t, err)
	assert.Contains(t, listed, DeviceState{Name: name, State: DeviceNotInUse})
}

func TestAsteriskDeviceNameEscaping(t *testing.T) {
	bench := testbench.Require(t)
	c := sandboxClient(t, bench, testApp)
	ctx := testContext(t)
	// Asterisk decodes "+" in a path segment as a space, and "/" splits the
	// path unless it is sent as %2F.
	name := "Stasis:agent-test-" + testbench.UniqueName("ari") + "/a b+c%d"
	deleteDeviceAtCleanup(t, c, name)

	require.NoError(t, c.SetDeviceState(ctx, name, DeviceBusy))

	got, err := c.DeviceState(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, DeviceBusy, got)
	spaced, err := c.DeviceState(ctx, strings.Replace(name, "+", " ", 1))
	require.NoError(t, err)
	assert.NotEqual(t, DeviceBusy, spaced, "the + reached Asterisk as a space")

	// The list takes names from astdb keys and keeps only the part after
	// the last "/" (Asterisk 22.10).
	listed, err := c.ListDeviceStates(ctx)
	require.NoError(t, err)
	assert.Contains(t, listed, DeviceState{Name: "Stasis:a b+c%d", State: DeviceUnknown})
}

func TestAsteriskCustomDeviceRejected(t *testing.T) {
	bench := testbench.Require(t)
	c := sandboxClient(t, bench, testApp)
	ctx := testContext(t)
	name := "Custom:agent-test-" + testbench.UniqueName("ari")

	err := c.SetDeviceState(ctx, name, DeviceInUse)

	var apiErr *Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 409, apiErr.Status)
	assert.Equal(t, "Uncontrolled device specified", apiErr.Message)

	err = NewDeviceStates(c).SetDeviceState(ctx, name, DeviceInUse)
	var astErr *agent.AsteriskError
	require.ErrorAs(t, err, &astErr)
	assert.Equal(t, "PUT deviceStates/"+name, astErr.Action)
	assert.Equal(t, "Uncontrolled device specified", astErr.Message)
}

func TestAsteriskMissingDeviceName(t *testing.T) {
	bench := testbench.Require(t)
	c := sandboxClient(t, bench, testApp)

	err := c.SetDeviceState(testContext(t), "Stasis:", DeviceInUse)

	var apiErr *Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 404, apiErr.Status)
	assert.Equal(t, "Device name is missing", apiErr.Message)
}

func TestAsteriskWrongPassword(t *testing.T) {
	bench := testbench.Require(t)
	c, err := NewClient(Config{URL: bench.ARIURL, Username: bench.ARIUser, Password: "wrong"})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	_, err = c.Ping(testContext(t))

	var apiErr *Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 401, apiErr.Status)
	assert.NotErrorIs(t, err, ErrUnavailable)
}

func TestAsteriskInfoAndPing(t *testing.T) {
	bench := testbench.Require(t)
	c := sandboxClient(t, bench, testApp)
	ctx := testContext(t)

	info, err := c.Info(ctx)
	require.NoError(t, err)
	ping, err := c.Ping(ctx)
	require.NoError(t, err)

	start := info.Status.StartupTime
	assert.False(t, start.IsZero())
	assert.True(t, start.Before(time.Now()), "startup time %s is in the future", start)
	assert.True(t, start.After(time.Now().Add(-30*24*time.Hour)), "startup time %s", start)
	assert.False(t, info.Status.LastReloadTime.Before(start))
	assert.NotEmpty(t, info.System.EntityID)
	assert.NotEmpty(t, info.System.Version)
	assert.Equal(t, info.System.EntityID, ping.AsteriskID)
	assert.Equal(t, "pong", ping.Ping)
	assert.WithinDuration(t, time.Now(), ping.Timestamp, time.Minute)
}

func TestAsteriskGlobalVar(t *testing.T) {
	bench := testbench.Require(t)
	c := sandboxClient(t, bench, testApp)
	ctx := testContext(t)
	name := "AGENTD_ARI_TEST_" + testbench.UniqueName("v")

	require.NoError(t, c.SetGlobalVar(ctx, name, "a b&c"))

	got, err := c.GetGlobalVar(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, "a b&c", got)
	assert.Equal(t, "a b&c", bench.Getvar(t, name), "value read over AMI")
	require.NoError(t, c.SetGlobalVar(ctx, name, ""))
}

// sandboxStream runs an EventStream for a new application whose OnConnect
// subscribes to sources. It returns the stream and its events.
func sandboxStream(t *testing.T, c *Client, sources ...string) (*runningStream, <-chan Event) {
	t.Helper()
	events := make(chan Event, 1000)
	subscribed := make(chan error, 10)
	cfg := EventStreamConfig{
		OnEvent: func(e Event) { events <- e },
		OnConnect: func(ctx context.Context) error {
			_, err := c.Subscribe(ctx, c.Application(), sources...)
			subscribed <- err
			return err
		},
	}
	s, err := NewEventStream(c, cfg)
	require.NoError(t, err)
	rs := runStream(t, s)

	select {
	case err := <-subscribed:
		require.NoError(t, err, "subscribe to %v", sources)
	case <-time.After(20 * time.Second):
		t.Fatal("OnConnect did not subscribe")
	}
	return rs, events
}

// waitEvent returns the first event that match accepts, or fails the test.
func waitEvent(t *testing.T, events <-chan Event, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-events:
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatal("expected event not received")
			return Event{}
		}
	}
}

func TestAsteriskStreamDeviceStateChanged(t *testing.T) {
	bench := testbench.Require(t)
	app := "agentd-test-" + testbench.UniqueName("app")
	c := sandboxClient(t, bench, app)
	ctx := testContext(t)
	name := "Stasis:agent-test-" + testbench.UniqueName("ari")
	deleteDeviceAtCleanup(t, c, name)
	info, err := c.Info(ctx)
	require.NoError(t, err)

	s, events := sandboxStream(t, c, "deviceState:"+name)
	require.True(t, s.Connected())
	require.NoError(t, c.SetDeviceState(ctx, name, DeviceRinging))

	e := waitEvent(t, events, func(e Event) bool { return e.Type == EventDeviceStateChanged })

	payload, err := e.Payload()
	require.NoError(t, err)
	assert.Equal(t, DeviceStateChanged{DeviceState: DeviceState{Name: name, State: DeviceRinging}}, payload)
	assert.Equal(t, app, e.Application)
	assert.Equal(t, info.System.EntityID, e.AsteriskID)
	assert.WithinDuration(t, time.Now(), e.Timestamp, time.Minute)
}

func TestAsteriskStreamChannelEvents(t *testing.T) {
	bench := testbench.Require(t)
	app := "agentd-test-" + testbench.UniqueName("app")
	c := sandboxClient(t, bench, app)
	ext := testbench.UniqueName("tb")
	t.Cleanup(func() { bench.Hangup(t, `/^Local\/`+ext+`@agent-phones-/`) })
	_, events := sandboxStream(t, c, "channel:")

	bench.Originate(t, testbench.OriginateRequest{
		Channel: "Local/" + ext + "@agent-phones/n", Application: "Wait", Data: "30", Async: true,
	})

	ours := func(eventType string) func(Event) bool {
		return func(e Event) bool {
			if e.Type != eventType {
				return false
			}
			var p struct {
				Channel Channel `json:"channel"`
			}
			return e.Decode(&p) == nil && strings.HasPrefix(p.Channel.Name, "Local/"+ext+"@agent-phones-")
		}
	}
	created := waitEvent(t, events, ours(EventChannelCreated))
	payload, err := created.Payload()
	require.NoError(t, err)
	channel := payload.(ChannelCreated).Channel
	assert.NotEmpty(t, channel.ID)
	assert.WithinDuration(t, time.Now(), channel.CreationTime, time.Minute)

	up := waitEvent(t, events, func(e Event) bool {
		p, err := e.Payload()
		change, ok := p.(ChannelStateChange)
		return err == nil && ok && change.Channel.ID == channel.ID && change.Channel.State == ChannelUp
	})
	assert.Equal(t, app, up.Application)

	bench.Hangup(t, channel.Name)
	destroyed := waitEvent(t, events, func(e Event) bool {
		p, err := e.Payload()
		d, ok := p.(ChannelDestroyed)
		return err == nil && ok && d.Channel.ID == channel.ID
	})
	payload, err = destroyed.Payload()
	require.NoError(t, err)
	assert.NotEmpty(t, payload.(ChannelDestroyed).CauseTxt)
}

func TestAsteriskSubscribeErrors(t *testing.T) {
	bench := testbench.Require(t)
	app := "agentd-test-" + testbench.UniqueName("app")
	c := sandboxClient(t, bench, app)
	ctx := testContext(t)
	sandboxStream(t, c, "channel:")

	tests := []struct {
		name    string
		app     string
		method  func(context.Context, string, ...string) (Application, error)
		source  string
		status  int
		message string
	}{
		// Local channels have no endpoint object in Asterisk 22.
		{"endpoint Local", app, c.Subscribe, "endpoint:Local", 422, "Event source does not exist"},
		{"unknown scheme", app, c.Subscribe, "bogus:x", 400, "Invalid event source URI scheme"},
		{"app without websocket", "agentd-never-connected", c.Subscribe, "channel:", 404, "Application not found"},
		{"not subscribed", app, c.Unsubscribe, "deviceState:Stasis:agent-none", 422, "Event source was not subscribed to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.method(ctx, tt.app, tt.source)

			var apiErr *Error
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.status, apiErr.Status)
			assert.Equal(t, tt.message, apiErr.Message)
		})
	}
}

func TestAsteriskSubscribeAllEndpoints(t *testing.T) {
	bench := testbench.Require(t)
	app := "agentd-test-" + testbench.UniqueName("app")
	c := sandboxClient(t, bench, app)
	sandboxStream(t, c, "channel:")

	application, err := c.Subscribe(testContext(t), app, "endpoint:")

	require.NoError(t, err)
	assert.Equal(t, app, application.Name)
	assert.Len(t, application.EndpointIDs, 1, "one subscription to all endpoints")
	assert.Len(t, application.ChannelIDs, 1, "one subscription to all channels")
}

func TestAsteriskApplicationReplaced(t *testing.T) {
	bench := testbench.Require(t)
	app := "agentd-test-" + testbench.UniqueName("app")
	first, firstEvents := sandboxStream(t, sandboxClient(t, bench, app), "channel:")
	require.True(t, first.Connected())

	second, _ := sandboxStream(t, sandboxClient(t, bench, app), "channel:")
	require.True(t, second.Connected())

	e := waitEvent(t, firstEvents, func(e Event) bool { return e.Type == EventApplicationReplaced })
	payload, err := e.Payload()
	require.NoError(t, err)
	assert.Equal(t, ApplicationReplaced{}, payload)
	assert.Equal(t, app, e.Application)
}

func TestAsteriskAnswersPings(t *testing.T) {
	bench := testbench.Require(t)
	c := sandboxClient(t, bench, "agentd-test-"+testbench.UniqueName("app"))
	cfg := EventStreamConfig{OnEvent: func(Event) {}, PingInterval: 10 * time.Millisecond, PingTimeout: time.Second}
	s, err := NewEventStream(c, cfg)
	require.NoError(t, err)
	rs := runStream(t, s)
	require.Eventually(t, rs.Connected, 20*time.Second, time.Millisecond)

	time.Sleep(300 * time.Millisecond)

	stats := rs.Stats()
	assert.Zero(t, stats.PingFailures)
	assert.Zero(t, stats.Disconnects)
	assert.True(t, rs.Connected())
}

func TestAsteriskResubscribeAfterReconnect(t *testing.T) {
	bench := testbench.Require(t)
	app := "agentd-test-" + testbench.UniqueName("app")
	c := sandboxClient(t, bench, app)
	ctx := testContext(t)
	name := "Stasis:agent-test-" + testbench.UniqueName("ari")
	deleteDeviceAtCleanup(t, c, name)

	events := make(chan Event, 100)
	subscribed := make(chan struct{})
	var calls atomic.Int32
	cfg := EventStreamConfig{
		OnEvent:        func(e Event) { events <- e },
		BackoffInitial: 10 * time.Millisecond,
		BackoffMax:     50 * time.Millisecond,
		OnConnect: func(ctx context.Context) error {
			if calls.Add(1) == 1 {
				return errors.New("first connection dropped by the test")
			}
			if _, err := c.Subscribe(ctx, app, "deviceState:"+name); err != nil {
				return err
			}
			close(subscribed)
			return nil
		},
	}
	s, err := NewEventStream(c, cfg)
	require.NoError(t, err)
	rs := runStream(t, s)
	select {
	case <-subscribed:
	case <-time.After(20 * time.Second):
		t.Fatal("OnConnect of the second connection did not subscribe")
	}

	require.NoError(t, c.SetDeviceState(ctx, name, DeviceOnHold))

	e := waitEvent(t, events, func(e Event) bool { return e.Type == EventDeviceStateChanged })
	payload, err := e.Payload()
	require.NoError(t, err)
	assert.Equal(t, DeviceState{Name: name, State: DeviceOnHold}, payload.(DeviceStateChanged).DeviceState)
	assert.Equal(t, uint64(2), rs.Stats().Connects)
	assert.Equal(t, uint64(1), rs.Stats().Disconnects)
}
