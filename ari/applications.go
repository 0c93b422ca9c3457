package ari

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Application is the ARI Application model: a Stasis application and the
// event sources it is subscribed to.
type Application struct {
	Name        string   `json:"name"`
	ChannelIDs  []string `json:"channel_ids"`
	BridgeIDs   []string `json:"bridge_ids"`
	EndpointIDs []string `json:"endpoint_ids"`
	DeviceNames []string `json:"device_names"`
}

// Limits of one subscription request. Asterisk 20 to 22 reads at most
// 127 event sources from one eventSource value (res_ari_applications.c
// MAX_VALS 128) and at most 4096 bytes of request line (main/http.c
// MAX_HTTP_LINE_LENGTH), so longer lists are sent in batches.
const (
	maxSourcesPerRequest = 100
	maxSourceQueryBytes  = 3000
)

// sourceSpecialChars are the characters that Asterisk's comma splitting
// (main/app.c __ast_app_separate_args) treats as quoting, escaping or
// nesting instead of as part of a source name.
const sourceSpecialChars = `,"\()[]`

// Subscribe sends POST /ari/applications/{app}/subscription with the event
// sources as one comma-separated eventSource parameter, e.g.
// "deviceState:Stasis:agent-1001", "endpoint:PJSIP/1001", "channel:" (all
// channels). A long list is sent in several requests, and the Application
// of the last one is returned. Asterisk responds with 404 until the app's
// websocket is connected, 400 for an unknown scheme and 422 for a source
// that does not exist. After a websocket reconnect, Asterisk 20 to 22 does
// not restore subscriptions to all objects of a kind ("channel:") and
// keeps others only while the app object lives, so call Subscribe again
// from EventStreamConfig.OnConnect.
func (c *Client) Subscribe(ctx context.Context, app string, eventSources ...string) (Application, error) {
	return c.subscription(ctx, http.MethodPost, app, eventSources)
}

// Unsubscribe sends DELETE /ari/applications/{app}/subscription, in
// batches like Subscribe. Asterisk responds with 422 "Event source was not
// subscribed to" for a source the app is not subscribed to.
func (c *Client) Unsubscribe(ctx context.Context, app string, eventSources ...string) (Application, error) {
	return c.subscription(ctx, http.MethodDelete, app, eventSources)
}

func (c *Client) subscription(ctx context.Context, method, app string, sources []string) (Application, error) {
	if err := checkSources(app, sources); err != nil {
		return Application{}, err
	}

	var result Application
	for _, batch := range batchSources(sources) {
		r := request{
			method:   method,
			segments: []string{"applications", app, "subscription"},
			query:    url.Values{"eventSource": {strings.Join(batch, ",")}},
		}
		result = Application{}
		if err := c.do(ctx, r, &result); err != nil {
			return Application{}, err
		}
	}
	return result, nil
}

// batchSources splits sources into batches within maxSourcesPerRequest
// and maxSourceQueryBytes. A single source longer than the byte limit gets
// a batch of its own, and Asterisk decides whether it fits.
func batchSources(sources []string) [][]string {
	var batches [][]string
	var current []string
	size := 0
	for _, s := range sources {
		n := len(url.QueryEscape(s)) + len("%2C")
		if len(current) > 0 && (len(current) == maxSourcesPerRequest || size+n > maxSourceQueryBytes) {
			batches = append(batches, current)
			current, size = nil, 0
		}
		current = append(current, s)
		size += n
	}
	return append(batches, current)
}

// checkSources rejects what Asterisk would split or unquote differently.
func checkSources(app string, sources []string) error {
	if app == "" {
		return fmt.Errorf("%w: missing application name", ErrInvalidArgument)
	}
	if len(sources) == 0 {
		return fmt.Errorf("%w: no event source for application %s", ErrInvalidArgument, app)
	}
	for _, s := range sources {
		if s == "" || strings.ContainsAny(s, sourceSpecialChars) {
			return fmt.Errorf("%w: event source %q must be non-empty and contain none of %s",
				ErrInvalidArgument, s, sourceSpecialChars)
		}
	}
	return nil
}
