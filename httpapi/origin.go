package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// Cross-site request protection.
//
// A browser that has cached Basic credentials for agentd sends them with
// every request to agentd, including a form that a page of another site
// submits. Such a form POST is a CORS simple request, which the browser
// sends without a preflight. The browser then hides the response from the
// page, but agentd has already paused or logged out the agent. Browsers
// send an Origin header with every cross-origin POST and pages cannot set
// it, so checkOrigin rejects a request whose Origin is not agentd's own
// origin and not in the allow list.

// Request headers that the origin check reads. Origin and Sec-Fetch-Site
// are forbidden header names (Fetch standard), which a page cannot set.
// The X-Forwarded headers are not, but a page can only add them through
// fetch with a CORS preflight, and that preflight fails. Without CORS the
// API routes respond to OPTIONS with 405, and agentd's CORS configuration
// allows only the headers Authorization, Content-Type, Accept-Language and
// X-Request-Id.
const (
	headerSecFetchSite     = "Sec-Fetch-Site"
	headerForwardedProto   = "X-Forwarded-Proto"
	headerForwardedHost    = "X-Forwarded-Host"
	secFetchSiteSameOrigin = "same-origin"
)

// originChecker decides whether a request that carries an Origin header
// may call the API.
type originChecker struct {
	// allowed holds the configured origins in the form that
	// normalizeOrigin returns.
	allowed map[string]bool
}

func newOriginChecker(origins []string) (*originChecker, error) {
	c := &originChecker{allowed: make(map[string]bool, len(origins))}
	for _, origin := range origins {
		normalized, ok := normalizeOrigin(origin)
		if !ok {
			return nil, fmt.Errorf("httpapi: Config.AllowedOrigins has %q: write an origin as scheme://host[:port] with scheme http or https and no path, such as https://omnileads.example.com", origin)
		}
		c.allowed[normalized] = true
	}
	return c, nil
}

// allows reports whether a request with this Origin header comes from a
// page of agentd's own origin or of an origin in the allow list.
//
// Sec-Fetch-Site: same-origin is the browser's own statement that the page
// and the request URL share an origin. It keeps a same-origin reverse
// proxy working when the proxy rewrites Host and sets no X-Forwarded
// headers, as nginx does by default. For a browser that does not send
// Sec-Fetch-Site, the Origin must match the allow list, the Host header or
// the X-Forwarded headers.
func (c *originChecker) allows(r *http.Request, origin string) bool {
	if r.Header.Get(headerSecFetchSite) == secFetchSiteSameOrigin {
		return true
	}
	normalized, ok := normalizeOrigin(origin)
	if !ok {
		// "null", sent by sandboxed frames and file: pages, and any
		// malformed value.
		return false
	}
	return c.allowed[normalized] || slices.Contains(requestOrigins(r), normalized)
}

// normalizeOrigin returns an origin in the form that browsers send (RFC
// 6454 section 6.2), with a lower-case scheme and host and without the
// scheme's default port. ok is false for a value that is not http or
// https, has no host or has a path.
func normalizeOrigin(origin string) (string, bool) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
		return "", false
	}
	return u.Scheme + "://" + hostWithoutDefaultPort(u.Scheme, u.Host), true
}

func hostWithoutDefaultPort(scheme, host string) string {
	host = strings.ToLower(host)
	defaultPort := ":80"
	if scheme == "https" {
		defaultPort = ":443"
	}
	return strings.TrimSuffix(host, defaultPort)
}

// requestOrigins returns the origins that the request was sent to. The
// first is the scheme of the connection with the Host header. When a
// reverse proxy sets X-Forwarded-Proto or X-Forwarded-Host, the second is
// the origin they name, which is the origin the browser used. The comment
// on the header constants explains why a page cannot forge them.
func requestOrigins(r *http.Request) []string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	direct := scheme + "://" + hostWithoutDefaultPort(scheme, r.Host)

	proto := firstForwardedValue(r.Header.Get(headerForwardedProto))
	host := firstForwardedValue(r.Header.Get(headerForwardedHost))
	if proto == "" && host == "" {
		return []string{direct}
	}
	if proto != "http" && proto != "https" {
		proto = scheme
	}
	if host == "" {
		host = r.Host
	}
	return []string{direct, proto + "://" + hostWithoutDefaultPort(proto, host)}
}

// firstForwardedValue returns the first entry of a comma-separated
// X-Forwarded header, the one the proxy nearest to the browser wrote.
func firstForwardedValue(header string) string {
	first, _, _ := strings.Cut(header, ",")
	return strings.ToLower(strings.TrimSpace(first))
}

// checkOrigin is the first middleware of the API routes. It runs before
// authentication, so a rejected page never gets the Basic challenge that
// makes a browser show its login dialog. A request without Origin, such
// as one from curl or another server, passes.
func (s *Server) checkOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		origin := r.Header.Get(echo.HeaderOrigin)
		if origin == "" || s.origins.allows(r, origin) {
			return next(c)
		}
		own := requestOrigins(r)
		return newAPIError(codeForbidden, msgOriginRejected, truncate(origin, maxShownPath), truncate(own[len(own)-1], maxShownPath)).
			withCause(fmt.Errorf("cross-origin request from origin %q rejected", origin))
	}
}
