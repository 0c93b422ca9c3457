package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/contactcenter/agentd/agent"
	"github.com/labstack/echo/v4"
)

// AuthConfig selects the authentication schemes. At least one must be
// enabled.
type AuthConfig struct {
	// JWT enables "Authorization: Bearer <JWT>". Nil disables it.
	JWT *JWTConfig
	// Basic enables "Authorization: Basic" with the agent id as user name
	// and a password checked against the agent's bcrypt PasswordHash.
	Basic bool
}

// Authentication scheme names as sent in Authorization and
// WWW-Authenticate (RFC 6750, RFC 7617).
const (
	schemeBearer = "Bearer"
	schemeBasic  = "Basic"
)

// authenticator finds the agent that the credentials of a request belong
// to.
type authenticator struct {
	jwt       *jwtVerifier
	basic     *basicVerifier
	directory func() *agent.Directory
	schemes   string // enabled schemes, for messages, such as "Bearer, Basic"
}

func newAuthenticator(cfg AuthConfig, directory func() *agent.Directory) (*authenticator, error) {
	if cfg.JWT == nil && !cfg.Basic {
		return nil, errors.New("no authentication scheme enabled: set Auth.JWT, Auth.Basic or both")
	}
	a := &authenticator{directory: directory}
	var schemes []string
	if cfg.JWT != nil {
		v, err := newJWTVerifier(*cfg.JWT)
		if err != nil {
			return nil, err
		}
		a.jwt = v
		schemes = append(schemes, schemeBearer)
	}
	if cfg.Basic {
		a.basic = newBasicVerifier(directory)
		schemes = append(schemes, schemeBasic)
	}
	a.schemes = strings.Join(schemes, ", ")
	return a, nil
}

// agentID returns the id of the agent that the request's credentials
// belong to. It fails with unauthenticated (401) for missing or invalid
// credentials and with forbidden (403) when a valid bearer token names an
// agent that is not in the directory.
func (a *authenticator) agentID(r *http.Request) (string, error) {
	values := r.Header.Values(echo.HeaderAuthorization)
	switch {
	case len(values) == 0 || strings.TrimSpace(values[0]) == "":
		return "", newAPIError(codeUnauthenticated, msgCredentialsMissing, a.schemes)
	case len(values) > 1:
		return "", newAPIError(codeUnauthenticated, msgAuthorizationRepeated, len(values))
	}

	scheme, credentials, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	switch {
	case strings.EqualFold(scheme, schemeBearer) && a.jwt != nil:
		return a.bearerAgentID(strings.TrimSpace(credentials))
	case strings.EqualFold(scheme, schemeBasic) && a.basic != nil:
		return a.basic.agentID(r)
	default:
		return "", newAPIError(codeUnauthenticated, msgSchemeRejected, scheme, a.schemes)
	}
}

func (a *authenticator) bearerAgentID(token string) (string, error) {
	agentID, err := a.jwt.agentID(token)
	if err != nil {
		return "", err
	}
	if _, ok := a.directory().Agent(agentID); !ok {
		return "", newAPIError(codeForbidden, msgAgentNotInDirectory, agentID)
	}
	return agentID, nil
}

// challenges returns one WWW-Authenticate value per enabled scheme.
func (a *authenticator) challenges(invalidToken bool) []string {
	var out []string
	if a.jwt != nil {
		challenge := schemeBearer + ` realm="agentd"`
		if invalidToken {
			challenge += `, error="invalid_token"`
		}
		out = append(out, challenge)
	}
	if a.basic != nil {
		out = append(out, schemeBasic+` realm="agentd", charset="UTF-8"`)
	}
	return out
}

// authenticate is the middleware of the API routes: it stores the agent
// of the credentials in the request state.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		agentID, err := s.auth.agentID(c.Request())
		if err != nil {
			return err
		}
		stateOf(c).agentID = agentID
		return next(c)
	}
}

// ValidateAuth checks an authentication configuration as New does, keys
// included, without serving anything. agentd check-config uses it.
func ValidateAuth(cfg AuthConfig) error {
	_, err := newAuthenticator(cfg, func() *agent.Directory { return nil })
	return err
}
