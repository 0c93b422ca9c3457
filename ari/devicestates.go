package ari

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/contactcenter/agentd/agent"
)

// Device states that PUT /ari/deviceStates accepts. Asterisk 20 to 22
// responds with 500 "Unknown device" for any other value, UNKNOWN included
// (main/devicestate.c ast_devstate_val).
const (
	DeviceNotInUse    = "NOT_INUSE"
	DeviceInUse       = "INUSE"
	DeviceBusy        = "BUSY"
	DeviceInvalid     = "INVALID"
	DeviceUnavailable = "UNAVAILABLE"
	DeviceRinging     = "RINGING"
	DeviceRingInUse   = "RINGINUSE"
	DeviceOnHold      = "ONHOLD"
)

// DeviceUnknown is read back for a device whose state Asterisk does not
// know. It cannot be set.
const DeviceUnknown = "UNKNOWN"

var settableDeviceStates = []string{
	DeviceNotInUse, DeviceInUse, DeviceBusy, DeviceInvalid,
	DeviceUnavailable, DeviceRinging, DeviceRingInUse, DeviceOnHold,
}

// DeviceState is the ARI DeviceState model.
type DeviceState struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// SetDeviceState sends PUT /ari/deviceStates/{name}?deviceState=state.
// state must be one of the Device* constants other than DeviceUnknown.
// Asterisk controls only names starting with "Stasis:" and responds with 409
// "Uncontrolled device specified" for others such as Custom:x.
func (c *Client) SetDeviceState(ctx context.Context, name, state string) error {
	if err := checkDeviceName(name); err != nil {
		return err
	}
	if !slices.Contains(settableDeviceStates, state) {
		return fmt.Errorf("%w: device state %q for %s is not one of %s",
			ErrInvalidArgument, state, name, strings.Join(settableDeviceStates, ", "))
	}

	r := request{
		method:   http.MethodPut,
		segments: []string{"deviceStates", name},
		query:    url.Values{"deviceState": {state}},
	}
	return c.do(ctx, r, nil)
}

// DeviceState returns the state of any device, not only ARI-controlled
// ones. Asterisk returns UNKNOWN or INVALID for a name it does not know,
// never 404.
func (c *Client) DeviceState(ctx context.Context, name string) (string, error) {
	if err := checkDeviceName(name); err != nil {
		return "", err
	}

	var ds DeviceState
	r := request{method: http.MethodGet, segments: []string{"deviceStates", name}}
	if err := c.do(ctx, r, &ds); err != nil {
		return "", err
	}
	return ds.State, nil
}

// ListDeviceStates returns the ARI-controlled devices (those stored in
// astdb family StasisDeviceState) with their states. Asterisk 22.10 takes
// each name from the astdb key and keeps only the part after the last "/".
// A device such as Stasis:a/b is therefore listed as Stasis:b with state
// UNKNOWN, although the other device state methods handle its name.
func (c *Client) ListDeviceStates(ctx context.Context) ([]DeviceState, error) {
	var states []DeviceState
	r := request{method: http.MethodGet, segments: []string{"deviceStates"}}
	if err := c.do(ctx, r, &states); err != nil {
		return nil, err
	}
	return states, nil
}

// DeleteDeviceState removes an ARI-controlled device. Asterisk responds with 204
// even for a name never set, and 500 while the device has subscribers.
func (c *Client) DeleteDeviceState(ctx context.Context, name string) error {
	if err := checkDeviceName(name); err != nil {
		return err
	}

	r := request{method: http.MethodDelete, segments: []string{"deviceStates", name}}
	return c.do(ctx, r, nil)
}

func checkDeviceName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: missing device name", ErrInvalidArgument)
	}
	return nil
}

// DeviceStates implements agent.DeviceStates with a Client.
type DeviceStates struct {
	client *Client
}

var _ agent.DeviceStates = (*DeviceStates)(nil)

// NewDeviceStates returns an agent.DeviceStates that sets states through c.
func NewDeviceStates(c *Client) *DeviceStates {
	return &DeviceStates{client: c}
}

// SetDeviceState sets device to state. An unreachable or booting Asterisk
// gives an error wrapping agent.ErrAsteriskUnavailable. A request canceled
// by ctx gives the context error. Every other failure, including a state
// rejected before sending, gives an *agent.AsteriskError.
func (d *DeviceStates) SetDeviceState(ctx context.Context, device, state string) error {
	err := d.client.SetDeviceState(ctx, device, state)
	if err == nil {
		return nil
	}

	if errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%w: %w", agent.ErrAsteriskUnavailable, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}

	message := err.Error()
	var apiErr *Error
	if errors.As(err, &apiErr) {
		message = apiErr.Message
	}
	return &agent.AsteriskError{Action: "PUT deviceStates/" + device, Message: message}
}
