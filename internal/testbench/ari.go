package testbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
)

var errARIStatus = errors.New("unexpected ARI response status")

// DeviceState returns the state of device name, such as "NOT_INUSE" for
// Stasis:agent-1001, from ARI GET /ari/deviceStates/{name}. Asterisk 22
// returns a state for any name, and a device that was never set reads
// UNKNOWN or INVALID.
func (b *Bench) DeviceState(t testing.TB, name string) string {
	t.Helper()

	ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
	defer cancel()

	var body struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	if err := b.ariGet(ctx, "/deviceStates/"+url.PathEscape(name), &body); err != nil {
		t.Fatalf("DeviceState(%q): %v", name, err)
		return ""
	}
	return body.State
}

// ariGet sends GET {ARIURL}/ari{path} and decodes the JSON body into out.
// Each path segment must already be escaped: Asterisk splits the path on "/"
// before decoding, so a "/" inside a device name travels as %2F.
func (b *Bench) ariGet(ctx context.Context, path string, out any) error {
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, b.ARIURL+"/ari"+path, nil)
	if err != nil {
		return err
	}
	request.SetBasicAuth(b.ARIUser, b.ARIPassword)

	response, err := b.http.Do(request)
	if err != nil {
		return err
	}
	defer response.Body.Close()

	body, err := io.ReadAll(response.Body)
	if err != nil {
		return fmt.Errorf("read ARI response of GET %s: %w", path, err)
	}
	if response.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s: %s", errARIStatus, path, response.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode ARI response of GET %s: %w", path, err)
	}
	return nil
}
