package ari

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// TimeLayout is the layout of ARI timestamps: AST_ISO8601_FORMAT
// "%FT%T.%q%z", local time with milliseconds and an offset without a colon,
// e.g. 2025-03-04T10:20:30.123+0100.
const TimeLayout = "2006-01-02T15:04:05.000-0700"

// parseLayout accepts TimeLayout with any number of fraction digits, or
// none, because time.Parse allows a fraction after the seconds.
const parseLayout = "2006-01-02T15:04:05-0700"

// parseTime parses an ARI timestamp. An empty string gives the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(parseLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("ari: invalid timestamp %q, expected layout %s: %w", s, TimeLayout, err)
	}
	return t, nil
}

// Info is the ARI AsteriskInfo model from GET /ari/asterisk/info.
type Info struct {
	Build  BuildInfo  `json:"build"`
	System SystemInfo `json:"system"`
	Config ConfigInfo `json:"config"`
	Status StatusInfo `json:"status"`
}

// BuildInfo describes how Asterisk was built.
type BuildInfo struct {
	OS      string `json:"os"`
	Kernel  string `json:"kernel"`
	Options string `json:"options"`
	Machine string `json:"machine"`
	Date    string `json:"date"`
	User    string `json:"user"`
}

// SystemInfo holds the Asterisk version and the entity id (asterisk.conf
// entityid, by default a MAC address), which is also every event's
// asterisk_id.
type SystemInfo struct {
	Version  string `json:"version"`
	EntityID string `json:"entity_id"`
}

// ConfigInfo holds settings from asterisk.conf.
type ConfigInfo struct {
	Name            string  `json:"name"`
	DefaultLanguage string  `json:"default_language"`
	MaxChannels     int     `json:"max_channels"`
	MaxOpenFiles    int     `json:"max_open_files"`
	MaxLoad         float64 `json:"max_load"`
	SetID           SetID   `json:"setid"`
}

// SetID is the user and group Asterisk runs as.
type SetID struct {
	User  string `json:"user"`
	Group string `json:"group"`
}

// StatusInfo holds the start and last reload times. A changed StartupTime
// means Asterisk restarted and lost every state that is not in astdb.
type StatusInfo struct {
	StartupTime    time.Time
	LastReloadTime time.Time
}

// UnmarshalJSON parses startup_time and last_reload_time in TimeLayout.
func (s *StatusInfo) UnmarshalJSON(data []byte) error {
	var raw struct {
		StartupTime    string `json:"startup_time"`
		LastReloadTime string `json:"last_reload_time"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}

	var err error
	if s.StartupTime, err = parseTime(raw.StartupTime); err != nil {
		return err
	}
	s.LastReloadTime, err = parseTime(raw.LastReloadTime)
	return err
}

// Info sends GET /ari/asterisk/info.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	r := request{method: http.MethodGet, segments: []string{"asterisk", "info"}}
	if err := c.do(ctx, r, &info); err != nil {
		return Info{}, err
	}
	return info, nil
}

// AsteriskPing is the ARI AsteriskPing model.
type AsteriskPing struct {
	AsteriskID string
	Ping       string // "pong"
	Timestamp  time.Time
}

// UnmarshalJSON parses the timestamp in TimeLayout.
func (p *AsteriskPing) UnmarshalJSON(data []byte) error {
	var raw struct {
		AsteriskID string `json:"asterisk_id"`
		Ping       string `json:"ping"`
		Timestamp  string `json:"timestamp"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}

	ts, err := parseTime(raw.Timestamp)
	if err != nil {
		return err
	}
	*p = AsteriskPing{AsteriskID: raw.AsteriskID, Ping: raw.Ping, Timestamp: ts}
	return nil
}

// Ping sends GET /ari/asterisk/ping, the cheapest request that proves ARI
// responds.
func (c *Client) Ping(ctx context.Context) (AsteriskPing, error) {
	var p AsteriskPing
	r := request{method: http.MethodGet, segments: []string{"asterisk", "ping"}}
	if err := c.do(ctx, r, &p); err != nil {
		return AsteriskPing{}, err
	}
	return p, nil
}

// SetGlobalVar sends POST /ari/asterisk/variable?variable=name&value=value.
// Asterisk 20 to 22 responds with 204 even when the write fails. A name
// ending in ")" is a dialplan function write, and Asterisk blocks
// escalating functions such as DB() on the HTTP thread without an error,
// so read the value back to check it.
// The value is always sent, even when empty: a missing value reaches
// QUEUE_MEMBER and DEVICE_STATE writes as NULL, which they do not check.
func (c *Client) SetGlobalVar(ctx context.Context, name, value string) error {
	if name == "" {
		return fmt.Errorf("%w: missing variable name", ErrInvalidArgument)
	}

	r := request{
		method:   http.MethodPost,
		segments: []string{"asterisk", "variable"},
		query:    url.Values{"variable": {name}, "value": {value}},
	}
	return c.do(ctx, r, nil)
}

// GetGlobalVar sends GET /ari/asterisk/variable?variable=name. Asterisk
// reads built-in and global variables only, so a dialplan function such as
// QUEUE_MEMBER(...) returns "".
func (c *Client) GetGlobalVar(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: missing variable name", ErrInvalidArgument)
	}

	var v struct {
		Value string `json:"value"`
	}
	r := request{
		method:   http.MethodGet,
		segments: []string{"asterisk", "variable"},
		query:    url.Values{"variable": {name}},
	}
	if err := c.do(ctx, r, &v); err != nil {
		return "", err
	}
	return v.Value, nil
}
