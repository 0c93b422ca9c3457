package ari

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Channel states as sent by Asterisk 20 to 22 (main/channel.c
// ast_state2str). Asterisk sends "Rsrvd" although the ARI docs say
// "Rsrved", and a state number without a name as "Unknown (N)".
const (
	ChannelDown           = "Down"
	ChannelReserved       = "Rsrvd"
	ChannelOffHook        = "OffHook"
	ChannelDialing        = "Dialing"
	ChannelRing           = "Ring"
	ChannelRinging        = "Ringing"
	ChannelUp             = "Up"
	ChannelBusy           = "Busy"
	ChannelDialingOffhook = "Dialing Offhook"
	ChannelPreRing        = "Pre-ring"
	ChannelMute           = "Mute"
)

// Channel is the ARI Channel model (main/stasis_channels.c
// ast_channel_snapshot_to_json).
type Channel struct {
	ID           string            `json:"id"` // uniqueid
	Name         string            `json:"name"`
	State        string            `json:"state"` // one of the Channel* states
	ProtocolID   string            `json:"protocol_id"`
	Caller       CallerID          `json:"caller"`
	Connected    CallerID          `json:"connected"`
	AccountCode  string            `json:"accountcode"`
	Dialplan     DialplanCEP       `json:"dialplan"`
	CreationTime time.Time         `json:"creationtime"`
	Language     string            `json:"language"`
	CallerRDNIS  string            `json:"caller_rdnis,omitempty"`
	ChannelVars  map[string]string `json:"channelvars,omitempty"` // ari.conf channelvars
	TenantID     string            `json:"tenantid,omitempty"`
}

// UnmarshalJSON parses creationtime in TimeLayout.
func (c *Channel) UnmarshalJSON(data []byte) error {
	type plain Channel
	aux := struct {
		*plain
		CreationTime string `json:"creationtime"`
	}{plain: (*plain)(c)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}

	var err error
	c.CreationTime, err = parseTime(aux.CreationTime)
	return err
}

// CallerID is a caller or connected line name and number.
type CallerID struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

// DialplanCEP is a dialplan location: context, extension and priority,
// with the application running there.
type DialplanCEP struct {
	Context  string `json:"context"`
	Exten    string `json:"exten"`
	Priority int    `json:"priority"`
	AppName  string `json:"app_name"`
	AppData  string `json:"app_data"`
}

// Endpoint states in the ARI Endpoint model.
const (
	EndpointUnknown = "unknown"
	EndpointOffline = "offline"
	EndpointOnline  = "online"
)

// Endpoint is the ARI Endpoint model, e.g. PJSIP/1001.
type Endpoint struct {
	Technology string   `json:"technology"`
	Resource   string   `json:"resource"`
	State      string   `json:"state,omitempty"` // one of the Endpoint* states
	ChannelIDs []string `json:"channel_ids"`
}

// Channels sends GET /ari/channels and returns every active channel.
func (c *Client) Channels(ctx context.Context) ([]Channel, error) {
	var channels []Channel
	r := request{method: http.MethodGet, segments: []string{"channels"}}
	if err := c.do(ctx, r, &channels); err != nil {
		return nil, err
	}
	return channels, nil
}

// Endpoints sends GET /ari/endpoints and returns every endpoint.
func (c *Client) Endpoints(ctx context.Context) ([]Endpoint, error) {
	var endpoints []Endpoint
	r := request{method: http.MethodGet, segments: []string{"endpoints"}}
	if err := c.do(ctx, r, &endpoints); err != nil {
		return nil, err
	}
	return endpoints, nil
}
