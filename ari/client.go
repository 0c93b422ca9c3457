package ari

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by NewClient to zero Config fields.
const (
	DefaultRequestTimeout = 5 * time.Second
)

const (
	// maxResponseBytes bounds a decoded response body. A channel list of a
	// busy system is the largest reply agentd reads, about 1 KiB a channel.
	maxResponseBytes = 16 << 20
	// maxErrorBodyBytes bounds the part of an error body kept as Message.
	maxErrorBodyBytes = 4 << 10

	dialTimeout = 5 * time.Second
	// idleConnTimeout stays below the 15 s that Asterisk's HTTP server
	// keeps an idle keep-alive session open (http.conf session_keep_alive,
	// main/http.c DEFAULT_SESSION_KEEP_ALIVE on 20 to 22), so the pool never
	// reuses a connection that Asterisk is closing.
	idleConnTimeout = 10 * time.Second
	// maxConnsPerHost keeps agentd far below Asterisk's HTTP session_limit,
	// which defaults to 100 sessions for all HTTP clients together.
	maxConnsPerHost = 16
	maxIdleConns    = 8
)

// ErrUnavailable means Asterisk could not be reached, did not respond in
// time, or responded with 503 (for example "Asterisk not booted").
var ErrUnavailable = errors.New("ari: asterisk unavailable")

// ErrInvalidArgument is wrapped by errors for a request that agentd
// rejects before sending it, such as an unknown device state.
var ErrInvalidArgument = errors.New("ari: invalid request argument")

// Error is an HTTP error status returned by ARI. Asterisk sends the body
// {"message":"..."} for errors raised by res_ari. Message is that text, or
// the start of the body when it is not in that form.
type Error struct {
	Method  string
	Path    string // request path as sent, e.g. /ari/deviceStates/Stasis:agent-1001
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("ARI %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// Config configures a Client.
type Config struct {
	// URL is the base URL of Asterisk's HTTP server with the http.conf
	// prefix if one is set, e.g. http://127.0.0.1:8088. The client adds /ari.
	URL      string
	Username string // ari.conf user
	Password string
	// Application is the Stasis application name that EventStream
	// registers with /ari/events.
	Application string
	// RequestTimeout bounds each REST request from dial to the end of the
	// body. Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	Logger         *slog.Logger // nil discards logs
}

// Client sends ARI REST requests. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base *url.URL // ends in /ari
	http *http.Client
	log  *slog.Logger
}

// NewClient validates cfg and returns a Client. It does not contact
// Asterisk.
func NewClient(cfg Config) (*Client, error) {
	base, err := parseBaseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Username == "" {
		return nil, errors.New("ari: missing Username: ARI requires an ari.conf user")
	}
	if cfg.Password == "" {
		return nil, fmt.Errorf("ari: missing Password for ARI user %q", cfg.Username)
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("ari: invalid RequestTimeout %s: must not be negative", cfg.RequestTimeout)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	c := &Client{
		cfg:  cfg,
		base: base,
		http: &http.Client{Transport: newTransport(cfg.RequestTimeout), Timeout: cfg.RequestTimeout},
		log:  cfg.Logger,
	}
	return c, nil
}

// parseBaseURL checks raw and returns it with /ari appended.
func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("ari: missing URL, e.g. http://127.0.0.1:8088")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("ari: invalid URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("ari: invalid URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("ari: invalid URL %q: missing host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("ari: invalid URL %q: user info, query and fragment are not allowed, set Username and Password instead", raw)
	}

	u.Path = strings.TrimSuffix(u.Path, "/") + "/ari"
	u.RawPath = ""
	return u, nil
}

// newTransport returns a transport for one Asterisk server. It ignores
// proxy settings because agentd runs beside Asterisk.
func newTransport(responseTimeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConns,
		MaxConnsPerHost:       maxConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: responseTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// Close closes idle keep-alive connections. The Client stays usable.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// Application returns the configured Stasis application name.
func (c *Client) Application() string {
	return c.cfg.Application
}

// request is one REST call: method, path segments below /ari (escaped by
// endpointURL) and query parameters.
type request struct {
	method   string
	segments []string
	query    url.Values
}

// do sends r and decodes a 2xx body into out unless out is nil.
func (c *Client) do(ctx context.Context, r request, out any) error {
	u := c.endpointURL(r.segments, r.query)
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), nil)
	if err != nil {
		return fmt.Errorf("ari: build %s %s: %w", r.method, u.EscapedPath(), err)
	}
	req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(r.method, u.EscapedPath(), err)
	}
	defer func() {
		// Reading what is left of a small body lets the connection go
		// back to the keep-alive pool.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodyBytes))
		_ = resp.Body.Close()
	}()

	if resp.StatusCode >= 300 {
		return statusError(r.method, u.EscapedPath(), resp)
	}
	if out == nil {
		return nil
	}
	return decodeBody(r.method, u.EscapedPath(), resp.Body, out)
}

// endpointURL joins the escaped segments to the base URL. Asterisk's
// res_ari splits the raw path on "/" and then decodes each segment with
// ast_uri_decode in legacy mode, which turns "+" into a space (main/utils.c,
// Asterisk 20 to 22). Segments are therefore escaped with url.PathEscape,
// which sends "/" as %2F, and "+" is sent as %2B.
func (c *Client) endpointURL(segments []string, query url.Values) *url.URL {
	u := *c.base
	escaped := make([]string, 0, len(segments)+1)
	escaped = append(escaped, u.EscapedPath())
	for _, s := range segments {
		escaped = append(escaped, escapeSegment(s))
	}
	rawPath := strings.Join(escaped, "/")

	u.Path, _ = url.PathUnescape(rawPath)
	u.RawPath = rawPath
	u.RawQuery = query.Encode()
	return &u
}

func escapeSegment(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), "+", "%2B")
}

// transportError wraps a failed round trip. A request canceled by the
// caller is not an Asterisk failure, so only other errors wrap
// ErrUnavailable.
func transportError(method, path string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("ari: %s %s canceled: %w", method, path, err)
	}
	return fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, err)
}

// statusError builds an *Error from an error response. A 503 also wraps
// ErrUnavailable, because Asterisk responds with 503 "Asterisk not booted"
// while it starts.
func statusError(method, path string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	apiErr := &Error{Method: method, Path: path, Status: resp.StatusCode, Message: errorMessage(resp, body)}
	if resp.StatusCode == http.StatusServiceUnavailable {
		return fmt.Errorf("%w: %w", ErrUnavailable, apiErr)
	}
	return apiErr
}

// errorMessage returns the "message" of an ARI error body, else the
// trimmed body, else the HTTP status text.
func errorMessage(resp *http.Response, body []byte) string {
	var parsed struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &parsed) == nil && parsed.Message != "" {
		return parsed.Message
	}
	if text := strings.TrimSpace(string(body)); text != "" && !strings.Contains(resp.Header.Get("Content-Type"), "html") {
		return text
	}
	return http.StatusText(resp.StatusCode)
}

func decodeBody(method, path string, body io.Reader, out any) error {
	data, err := io.ReadAll(io.LimitReader(body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%w: %s %s: read response: %w", ErrUnavailable, method, path, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("ari: %s %s: response larger than %d bytes", method, path, maxResponseBytes)
	}
	if err := json.Unmarshal(bytes.TrimSpace(data), out); err != nil {
		return fmt.Errorf("ari: %s %s: decode response: %w", method, path, err)
	}
	return nil
}
