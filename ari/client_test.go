package ari

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewClientRejectsInvalidConfig(t *testing.T) {
	valid := Config{URL: "http://127.0.0.1:8088", Username: "agentd", Password: "pw"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"missing URL", func(c *Config) { c.URL = "" }, "missing URL"},
		{"bad scheme", func(c *Config) { c.URL = "ws://127.0.0.1:8088" }, `"ws://127.0.0.1:8088"`},
		{"no host", func(c *Config) { c.URL = "http:///ari" }, "missing host"},
		{"unparsable", func(c *Config) { c.URL = "http://[::1" }, `"http://[::1"`},
		{"user info", func(c *Config) { c.URL = "http://u:p@127.0.0.1:8088" }, "user info"},
		{"query", func(c *Config) { c.URL = "http://127.0.0.1:8088?api_key=x" }, "query"},
		{"missing user", func(c *Config) { c.Username = "" }, "missing Username"},
		{"missing password", func(c *Config) { c.Password = "" }, `missing Password for ARI user "agentd"`},
		{"negative timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "invalid RequestTimeout -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			_, err := NewClient(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestNewClientKeepsHTTPPrefix(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK, `{"value":"1"}`))
	c := newTestClient(t, fake.srv.URL+"/asterisk/")

	_, err := c.GetGlobalVar(context.Background(), "EPOCH")
	require.NoError(t, err)

	assert.Equal(t, "/asterisk/ari/asterisk/variable", fake.last(t).RawPath)
}

func TestSetDeviceStateRequest(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusNoContent, ""))
	c := newTestClient(t, fake.srv.URL)

	err := c.SetDeviceState(context.Background(), "Stasis:agent-1001", DeviceInUse)
	require.NoError(t, err)

	got := fake.last(t)
	assert.Equal(t, http.MethodPut, got.Method)
	assert.Equal(t, "/ari/deviceStates/Stasis:agent-1001?deviceState=INUSE", got.RequestURI)
	assert.True(t, got.HasAuth, "request without Basic auth")
	assert.Equal(t, testUser, got.User)
	assert.Equal(t, testPassword, got.Password)
}

func TestDeviceNameEscaping(t *testing.T) {
	tests := []struct {
		name    string
		rawPath string
	}{
		{"Stasis:agent/1001", "/ari/deviceStates/Stasis:agent%2F1001"},
		{"Stasis:100%", "/ari/deviceStates/Stasis:100%25"},
		{"Stasis:agent 1001", "/ari/deviceStates/Stasis:agent%201001"},
		{"Stasis:a+b", "/ari/deviceStates/Stasis:a%2Bb"},
		{"Stasis:a?b#c", "/ari/deviceStates/Stasis:a%3Fb%23c"},
		{"Stasis:été", "/ari/deviceStates/Stasis:%C3%A9t%C3%A9"},
	}
	fake := newFakeREST(t, respondJSON(http.StatusOK, `{"name":"x","state":"INUSE"}`))
	c := newTestClient(t, fake.srv.URL)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.DeviceState(context.Background(), tt.name)
			require.NoError(t, err)

			got := fake.last(t)
			assert.Equal(t, tt.rawPath, got.RawPath)
			assert.Equal(t, []string{"ari", "deviceStates", tt.name}, asteriskDecodePath(got.RawPath),
				"Asterisk would decode a different device name")
		})
	}
}

func TestQueryValuesEscaped(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusNoContent, ""))
	c := newTestClient(t, fake.srv.URL)

	err := c.SetGlobalVar(context.Background(), "A&B=C", "x y+z%")
	require.NoError(t, err)

	got := fake.last(t)
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "A&B=C", got.Query.Get("variable"))
	assert.Equal(t, "x y+z%", got.Query.Get("value"))
}

func TestSetDeviceStateRejectsInvalidState(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusNoContent, ""))
	c := newTestClient(t, fake.srv.URL)

	for _, state := range []string{"UNKNOWN", "inuse", "", "IN USE"} {
		err := c.SetDeviceState(context.Background(), "Stasis:agent-1001", state)
		require.ErrorIs(t, err, ErrInvalidArgument, "state %q", state)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", state))
	}
	err := c.SetDeviceState(context.Background(), "", DeviceInUse)
	require.ErrorIs(t, err, ErrInvalidArgument)

	assert.Empty(t, fake.recorded(), "an invalid request reached the server")
}

func TestErrorStatusMapping(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		message     string
		unavailable bool
	}{
		{"401", 401, "application/json", `{"message":"Authentication required"}`, "Authentication required", false},
		{"404", 404, "application/json", `{"message":"Device name is missing"}`, "Device name is missing", false},
		{"409 Custom", 409, "application/json", `{"message":"Uncontrolled device specified"}`, "Uncontrolled device specified", false},
		{"500", 500, "application/json", `{"message":"Unknown device"}`, "Unknown device", false},
		{"503 not booted", 503, "application/json", `{"message":"Asterisk not booted"}`, "Asterisk not booted", true},
		{"404 html", 404, "text/html", "<html><body>Not Found</body></html>", "Not Found", false},
		{"502 text", 502, "text/plain", "upstream gone\n", "upstream gone", false},
		{"403 empty", 403, "", "", "Forbidden", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeREST(t, func(w http.ResponseWriter, _ *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			c := newTestClient(t, fake.srv.URL)

			err := c.SetDeviceState(context.Background(), "Custom:agent-1001", DeviceInUse)

			var apiErr *Error
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.status, apiErr.Status)
			assert.Equal(t, tt.message, apiErr.Message)
			assert.Equal(t, http.MethodPut, apiErr.Method)
			assert.Equal(t, "/ari/deviceStates/Custom:agent-1001", apiErr.Path)
			assert.Equal(t, tt.unavailable, errors.Is(err, ErrUnavailable))
		})
	}
}

func TestConnectionRefusedIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	c := newTestClient(t, "http://"+addr)

	_, err = c.Ping(context.Background())

	require.ErrorIs(t, err, ErrUnavailable)
	var apiErr *Error
	assert.NotErrorAs(t, err, &apiErr)
}

// blockingServer responds only when the request's context ends or the test
// finishes.
func blockingServer(t *testing.T) *fakeREST {
	release := make(chan struct{})
	fake := newFakeREST(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	return fake
}

func TestContextDeadlineIsUnavailable(t *testing.T) {
	c := newTestClient(t, blockingServer(t).srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()

	err := c.SetDeviceState(ctx, "Stasis:agent-1001", DeviceInUse)

	require.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRequestTimeoutIsUnavailable(t *testing.T) {
	c := newTestClient(t, blockingServer(t).srv.URL, func(cfg *Config) {
		cfg.RequestTimeout = 50 * time.Millisecond
	})

	_, err := c.Info(context.Background())

	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "/ari/asterisk/info")
}

func TestCanceledRequestIsNotUnavailable(t *testing.T) {
	c := newTestClient(t, blockingServer(t).srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)

	_, err := c.Channels(ctx)

	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, ErrUnavailable)
}

func TestDecodeErrorNamesRequest(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK, `{"name":`))
	c := newTestClient(t, fake.srv.URL)

	_, err := c.DeviceState(context.Background(), "Stasis:agent-1001")

	require.Error(t, err)
	assert.Contains(t, err.Error(), "GET /ari/deviceStates/Stasis:agent-1001: decode response")
	assert.NotErrorIs(t, err, ErrUnavailable)
}

func TestKeepAliveReusesConnection(t *testing.T) {
	fake := newFakeREST(t, respondJSON(http.StatusOK, `{"asterisk_id":"x","ping":"pong","timestamp":"2025-03-04T10:20:30.123+0100"}`))
	c := newTestClient(t, fake.srv.URL)

	for range 5 {
		_, err := c.Ping(context.Background())
		require.NoError(t, err)
	}

	remotes := map[string]bool{}
	for _, r := range fake.recorded() {
		remotes[r.RemoteAddr] = true
	}
	assert.Len(t, fake.recorded(), 5)
	assert.Len(t, remotes, 1, "sequential requests used more than one connection")
}

func TestErrorMessageFormat(t *testing.T) {
	err := &Error{Method: "PUT", Path: "/ari/deviceStates/Custom:x", Status: 409, Message: "Uncontrolled device specified"}
	assert.Equal(t, "ARI PUT /ari/deviceStates/Custom:x: 409 Uncontrolled device specified", err.Error())
}
