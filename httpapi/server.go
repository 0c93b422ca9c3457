package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/labstack/echo/v4"
)

// Defaults for Config fields left at zero.
const (
	DefaultMaxBodyBytes   int64 = 64 << 10
	DefaultRequestTimeout       = 10 * time.Second
)

// Agents is the part of agent.Service that the API calls.
type Agents interface {
	Login(ctx context.Context, agentID string, src agent.Source) (agent.Result, error)
	Logout(ctx context.Context, agentID string, src agent.Source) (agent.Result, error)
	Pause(ctx context.Context, agentID, pauseID string, src agent.Source) (agent.Result, error)
	Unpause(ctx context.Context, agentID, pauseID string, src agent.Source) (agent.Result, error)
	Status(agentID string) (agent.Status, error)
}

// Config holds what a Server needs.
type Config struct {
	Service Agents
	// Directory returns the agent directory in force. Authentication reads
	// agents and password hashes from it on every request, so a reload
	// takes effect at once.
	Directory func() *agent.Directory
	Auth      AuthConfig
	// MaxBodyBytes is the maximum request body size in bytes. Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// RequestTimeout bounds each use case call. Zero means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// AllowedOrigins lists the origins other than agentd's own, such as
	// https://omnileads.example.com, whose pages may call the API. A
	// request whose Origin header is neither gets 403 forbidden.
	AllowedOrigins []string
	Logger         *slog.Logger
}

// Server is the HTTP API. Its handler is an echo instance.
type Server struct {
	agents         Agents
	directory      func() *agent.Directory
	auth           *authenticator
	origins        *originChecker
	maxBodyBytes   int64
	requestTimeout time.Duration
	log            *slog.Logger
	echo           *echo.Echo
}

// apiPrefix starts every API route. A 404 message for a path under it
// lists the API routes, and for other paths the mounted routes too.
const apiPrefix = "/api/"

// API routes. Each is served with and without the trailing slash, because
// echo's redirecting middleware would respond to a POST with a redirect
// that browsers follow as a GET.
const (
	routeLogin   = "/api/v1/asterisk_login/"
	routeLogout  = "/api/v1/asterisk_logout/"
	routePause   = "/api/v1/asterisk_pause/"
	routeUnpause = "/api/v1/asterisk_unpause/"
)

// New validates cfg and returns a Server with the API routes registered.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil {
		return nil, errors.New("httpapi: Config.Service is nil: pass the agent service")
	}
	if cfg.Directory == nil {
		return nil, errors.New("httpapi: Config.Directory is nil: pass a function that returns the agent directory in force")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("httpapi: Config.MaxBodyBytes is %d: use 0 for the default of %d bytes or a positive size", cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("httpapi: Config.RequestTimeout is %s: use 0 for the default of %s or a positive duration", cfg.RequestTimeout, DefaultRequestTimeout)
	}
	auth, err := newAuthenticator(cfg.Auth, cfg.Directory)
	if err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	origins, err := newOriginChecker(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}

	s := &Server{
		agents:         cfg.Service,
		directory:      cfg.Directory,
		auth:           auth,
		origins:        origins,
		maxBodyBytes:   orDefault(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		requestTimeout: orDefault(cfg.RequestTimeout, DefaultRequestTimeout),
		log:            cfg.Logger,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.echo = s.newEcho()
	return s, nil
}

// orDefault returns value, or fallback when value is zero.
func orDefault[T comparable](value, fallback T) T {
	var zero T
	if value == zero {
		return fallback
	}
	return value
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler {
	return s.echo
}

// Echo returns the echo instance, to mount more routes such as /healthz,
// /readyz or /metrics. Mounted routes get request ids, request logging at
// Debug and the error format, but no authentication.
func (s *Server) Echo() *echo.Echo {
	return s.echo
}

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.observe)

	s.addRoute(e, routeLogin, s.handleLogin)
	s.addRoute(e, routeLogout, s.handleLogout)
	s.addRoute(e, routePause, s.handlePause)
	s.addRoute(e, routeUnpause, s.handleUnpause)
	return e
}

// addRoute registers handler for POST on route with and without its
// trailing slash. OPTIONS is registered too, because echo's router would
// respond to it with 204. The API has no CORS preflight, so OPTIONS gets
// 405 unless CORS middleware mounted through Echo handles it first.
func (s *Server) addRoute(e *echo.Echo, route string, handler echo.HandlerFunc) {
	for _, path := range []string{route, route[:len(route)-1]} {
		e.POST(path, handler, s.checkOrigin, s.authenticate)
		e.OPTIONS(path, s.rejectMethod)
	}
}

// isAPIRoute reports whether path is one of the API routes, with or
// without the trailing slash.
func isAPIRoute(path string) bool {
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	switch path {
	case routeLogin, routeLogout, routePause, routeUnpause:
		return true
	}
	return false
}

// notFoundError is the 404 of an unknown path. A path under /api/ is most
// likely a misspelled API route, so the message lists the API routes. For
// other paths, such as /healthz/, it lists the mounted routes as well.
func (s *Server) notFoundError(method, path string) *apiError {
	if strings.HasPrefix(path, apiPrefix) {
		return newAPIError(codeNotFound, msgNoEndpoint, path)
	}
	mounted := s.mountedRoutes()
	if len(mounted) == 0 {
		return newAPIError(codeNotFound, msgNoRoute, method, path)
	}
	return newAPIError(codeNotFound, msgNoRouteListMounted, method, path, strings.Join(mounted, ", "))
}

// mountedRoutes returns "METHOD path" for each route added through Echo,
// sorted by path and then method.
func (s *Server) mountedRoutes() []string {
	var routes []*echo.Route
	for _, r := range s.echo.Routes() {
		if r.Method != echo.RouteNotFound && !isAPIRoute(r.Path) {
			routes = append(routes, r)
		}
	}
	slices.SortFunc(routes, func(a, b *echo.Route) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Method, b.Method))
	})
	out := make([]string, 0, len(routes))
	for _, r := range routes {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

func (s *Server) rejectMethod(c echo.Context) error {
	r := c.Request()
	return newAPIError(codeMethodNotAllowed, msgMethodRejected, r.Method, r.URL.Path, http.MethodPost)
}
