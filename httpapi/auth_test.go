package httpapi

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/contactcenter/agentd/agent"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loginAs sends a login request with the Authorization value auth.
func loginAs(auth string) *http.Request {
	return request{path: "/api/v1/asterisk_login/", auth: auth}.build()
}

func withJWT(cfg JWTConfig) serverOptions {
	return func(c *Config) { c.Auth = AuthConfig{JWT: &cfg} }
}

func TestBearerTokens(t *testing.T) {
	keys := signingKeys(t)
	now := time.Now()
	hs := JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret)}
	rs := JWTConfig{Algorithm: AlgorithmRS256, PublicKeyPEM: keys.rsaPEM}
	ed := JWTConfig{Algorithm: AlgorithmEdDSA, PublicKeyPEM: keys.edPEM}
	falseValue := false
	claimsWith := func(extra jwt.MapClaims) jwt.MapClaims {
		c := validClaims()
		for k, v := range extra {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return c
	}

	tests := []struct {
		name    string
		cfg     JWTConfig
		token   func(t *testing.T) string
		status  int
		agentID string // agent passed to the use case on success
		message string // part of the error message
	}{
		{
			name:    "hs256 valid",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, validClaims()) },
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name:    "rs256 valid",
			cfg:     rs,
			token:   func(t *testing.T) string { return sign(t, jwt.SigningMethodRS256, keys.rsaPrivate, validClaims()) },
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name:    "eddsa valid",
			cfg:     ed,
			token:   func(t *testing.T) string { return sign(t, jwt.SigningMethodEdDSA, keys.edPrivate, validClaims()) },
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name: "expired",
			cfg:  hs,
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}))
			},
			status:  http.StatusUnauthorized,
			message: "The bearer token has expired.",
		},
		{
			name: "expired within leeway",
			cfg:  JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), Leeway: time.Minute},
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"exp": now.Add(-30 * time.Second).Unix()}))
			},
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name: "not yet valid",
			cfg:  hs,
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()}))
			},
			status:  http.StatusUnauthorized,
			message: "not valid yet (nbf)",
		},
		{
			name: "not yet valid within leeway",
			cfg:  JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), Leeway: time.Minute},
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"nbf": now.Add(30 * time.Second).Unix()}))
			},
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name:    "exp missing",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, jwt.MapClaims{"agent_id": "1001"}) },
			status:  http.StatusUnauthorized,
			message: "has no exp claim",
		},
		{
			name:    "exp missing allowed",
			cfg:     JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), RequireExp: &falseValue},
			token:   func(t *testing.T) string { return hsToken(t, jwt.MapClaims{"agent_id": "1001"}) },
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name: "alg none",
			cfg:  hs,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims())
			},
			status:  http.StatusUnauthorized,
			message: "not signed with HS256",
		},
		{
			name: "hs256 signed with rsa public key against rs256",
			cfg:  rs,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, keys.rsaPEM, validClaims())
			},
			status:  http.StatusUnauthorized,
			message: "not signed with RS256",
		},
		{
			name:    "rs256 token against hs256",
			cfg:     hs,
			token:   func(t *testing.T) string { return sign(t, jwt.SigningMethodRS256, keys.rsaPrivate, validClaims()) },
			status:  http.StatusUnauthorized,
			message: "not signed with HS256",
		},
		{
			name:    "hs512 token against hs256",
			cfg:     hs,
			token:   func(t *testing.T) string { return sign(t, jwt.SigningMethodHS512, []byte(testSecret), validClaims()) },
			status:  http.StatusUnauthorized,
			message: "not signed with HS256",
		},
		{
			name: "wrong secret",
			cfg:  hs,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, []byte("another secret of at least 32 bytes!"), validClaims())
			},
			status:  http.StatusUnauthorized,
			message: "signature is invalid",
		},
		{
			name: "wrong rsa key",
			cfg:  rs,
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodRS256, mustRSAKey(t, 2048), validClaims())
			},
			status:  http.StatusUnauthorized,
			message: "signature is invalid",
		},
		{
			name:    "malformed",
			cfg:     hs,
			token:   func(*testing.T) string { return "not.a.jwt" },
			status:  http.StatusUnauthorized,
			message: "is not a valid JWT",
		},
		{
			name:    "empty",
			cfg:     hs,
			token:   func(*testing.T) string { return "" },
			status:  http.StatusUnauthorized,
			message: "is not a valid JWT",
		},
		{
			name:    "agent claim missing",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"agent_id": nil})) },
			status:  http.StatusUnauthorized,
			message: "names no agent. Put the agent id in claim agent_id or in sub.",
		},
		{
			name:    "numeric agent claim",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"agent_id": 1001})) },
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name:    "fractional agent claim",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"agent_id": 1001.5})) },
			status:  http.StatusUnauthorized,
			message: "Claim agent_id of the bearer token must be a non-empty string or an integer, got 1001.5.",
		},
		{
			name:    "boolean agent claim",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"agent_id": true})) },
			status:  http.StatusUnauthorized,
			message: "got true",
		},
		{
			name:    "empty agent claim",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"agent_id": ""})) },
			status:  http.StatusUnauthorized,
			message: `got ""`,
		},
		{
			name: "sub fallback",
			cfg:  hs,
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"agent_id": nil, "sub": "1003"}))
			},
			status:  http.StatusOK,
			agentID: "1003",
		},
		{
			name: "agent claim wins over sub",
			cfg:  hs,
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"sub": "user-77"}))
			},
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name: "configured claim",
			cfg:  JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), AgentClaim: "oml_agent"},
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"agent_id": "1001", "oml_agent": 1003}))
			},
			status:  http.StatusOK,
			agentID: "1003",
		},
		{
			name: "issuer matches",
			cfg:  JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), Issuer: "omnileads"},
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"iss": "omnileads"}))
			},
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name:    "wrong issuer",
			cfg:     JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), Issuer: "omnileads"},
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"iss": "other"})) },
			status:  http.StatusUnauthorized,
			message: `was not issued by "omnileads"`,
		},
		{
			name:    "issuer missing",
			cfg:     JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), Issuer: "omnileads"},
			token:   func(t *testing.T) string { return hsToken(t, validClaims()) },
			status:  http.StatusUnauthorized,
			message: `was not issued by "omnileads"`,
		},
		{
			name: "audience in list",
			cfg:  JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), Audience: "agentd"},
			token: func(t *testing.T) string {
				return hsToken(t, claimsWith(jwt.MapClaims{"aud": []string{"other", "agentd"}}))
			},
			status:  http.StatusOK,
			agentID: "1001",
		},
		{
			name:    "wrong audience",
			cfg:     JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), Audience: "agentd"},
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"aud": "webapp"})) },
			status:  http.StatusUnauthorized,
			message: `is not for audience "agentd"`,
		},
		{
			name:    "audience missing",
			cfg:     JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret), Audience: "agentd"},
			token:   func(t *testing.T) string { return hsToken(t, validClaims()) },
			status:  http.StatusUnauthorized,
			message: `is not for audience "agentd"`,
		},
		{
			name:    "exp of wrong type",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"exp": "tomorrow"})) },
			status:  http.StatusUnauthorized,
			message: "has invalid claims",
		},
		{
			name:    "unknown agent",
			cfg:     hs,
			token:   func(t *testing.T) string { return hsToken(t, claimsWith(jwt.MapClaims{"agent_id": "9999"})) },
			status:  http.StatusForbidden,
			message: `Agent "9999" is not in the agent directory`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, _ := testServer(t, withJWT(tt.cfg))
			rec := serveRequest(s, loginAs(bearer(tt.token(t))))

			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.status == http.StatusOK {
				calls := fake.recorded()
				require.Len(t, calls, 1)
				assert.Equal(t, tt.agentID, calls[0].agentID)
				return
			}
			assert.Empty(t, fake.recorded())
			e := decodeError(t, rec)
			assert.Contains(t, e.Error.Message, tt.message)
			if tt.status == http.StatusForbidden {
				assert.Equal(t, "forbidden", e.Error.Code)
				return
			}
			assert.Equal(t, "unauthenticated", e.Error.Code)
			assert.Equal(t, []string{`Bearer realm="agentd", error="invalid_token"`}, rec.Header().Values("WWW-Authenticate"))
		})
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	s, fake, _ := testServer(t)
	rec := serveRequest(s, loginAs("bearer  "+hsToken(t, validClaims())))

	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Len(t, fake.recorded(), 1)
}

func TestBasicCredentials(t *testing.T) {
	tests := []struct {
		name    string
		auth    string
		status  int
		message string
	}{
		{"valid", basic("1001", password1001), http.StatusOK, ""},
		{"lower-case scheme", "basic " + base64.StdEncoding.EncodeToString([]byte("1001:"+password1001)), http.StatusOK, ""},
		{"wrong password", basic("1001", "wrong"), http.StatusUnauthorized, "Wrong agent id or password."},
		{"other agent's password", basic("1001", password1003), http.StatusUnauthorized, "Wrong agent id or password."},
		{"agent without hash", basic("1002", ""), http.StatusUnauthorized, "Wrong agent id or password."},
		{"agent without hash with password", basic("1002", "anything"), http.StatusUnauthorized, "Wrong agent id or password."},
		{"unknown agent", basic("9999", password1001), http.StatusUnauthorized, "Wrong agent id or password."},
		{"password over 72 bytes", basic("1001", password1001+strings.Repeat("x", 72)), http.StatusUnauthorized, "Wrong agent id or password."},
		{"not base64", "Basic !!!", http.StatusUnauthorized, "Basic credentials are malformed"},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("1001")), http.StatusUnauthorized, "Basic credentials are malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, _ := testServer(t)
			rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: tt.auth})

			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.status == http.StatusOK {
				calls := fake.recorded()
				require.Len(t, calls, 1)
				assert.Equal(t, "1001", calls[0].agentID)
				return
			}
			assert.Empty(t, fake.recorded())
			e := decodeError(t, rec)
			assert.Equal(t, "unauthenticated", e.Error.Code)
			assert.Contains(t, e.Error.Message, tt.message)
			assert.Equal(t, []string{`Bearer realm="agentd"`, `Basic realm="agentd", charset="UTF-8"`}, rec.Header().Values("WWW-Authenticate"))
		})
	}
}

func TestBasicCacheFollowsDirectory(t *testing.T) {
	h1, h3 := passwordHashes(t)
	current := testDirectory(t)
	s, fake, _ := testServer(t, func(c *Config) {
		c.Directory = func() *agent.Directory { return current }
	})
	cache := s.auth.basic.cache

	rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)})
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, 1, cache.len())

	rec = serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)})
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, 1, cache.len(), "a repeated success reuses the entry")

	rec = serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", "wrong")})
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Equal(t, 1, cache.len(), "a failed check is not cached")

	// Agent 1001 now has agent 1003's password: the cached check of the
	// old password must not be used.
	current = directoryWithHashes(t, h3, h1)
	rec = serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)})
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	rec = serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1003)})
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Len(t, fake.recorded(), 3)
}

func TestPasswordCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newPasswordCache(2)
	a, b, d := c.key("1", "pa", "h"), c.key("2", "pb", "h"), c.key("3", "pd", "h")
	c.add(a)
	c.add(b)
	require.True(t, c.contains(a)) // a is now the most recently used
	c.add(d)

	assert.Equal(t, 2, c.len())
	assert.True(t, c.contains(a))
	assert.False(t, c.contains(b))
	assert.True(t, c.contains(d))
	assert.NotEqual(t, c.key("1", "pa", "h"), c.key("1", "pb", "h"))
	assert.NotEqual(t, c.key("1", "pa", "h"), c.key("1", "pa", "h2"))
}

func TestAuthenticationSchemes(t *testing.T) {
	jwtOnly := withJWT(JWTConfig{Algorithm: AlgorithmHS256, Secret: []byte(testSecret)})
	basicOnly := func(c *Config) { c.Auth = AuthConfig{Basic: true} }
	tests := []struct {
		name       string
		opts       []serverOptions
		auth       func(t *testing.T) string
		status     int
		challenges []string
		message    string
	}{
		{
			name:       "no credentials, both schemes",
			auth:       func(*testing.T) string { return "" },
			status:     http.StatusUnauthorized,
			challenges: []string{`Bearer realm="agentd"`, `Basic realm="agentd", charset="UTF-8"`},
			message:    "The request has no credentials. Send an Authorization header with one of these schemes: Bearer, Basic.",
		},
		{
			name:       "no credentials, jwt only",
			opts:       []serverOptions{jwtOnly},
			auth:       func(*testing.T) string { return "" },
			status:     http.StatusUnauthorized,
			challenges: []string{`Bearer realm="agentd"`},
			message:    "one of these schemes: Bearer.",
		},
		{
			name:       "no credentials, basic only",
			opts:       []serverOptions{basicOnly},
			auth:       func(*testing.T) string { return "" },
			status:     http.StatusUnauthorized,
			challenges: []string{`Basic realm="agentd", charset="UTF-8"`},
			message:    "one of these schemes: Basic.",
		},
		{
			name:       "basic when jwt only",
			opts:       []serverOptions{jwtOnly},
			auth:       func(*testing.T) string { return basic("1001", password1001) },
			status:     http.StatusUnauthorized,
			challenges: []string{`Bearer realm="agentd"`},
			message:    `Authorization scheme "Basic" is not accepted. Use one of these schemes: Bearer.`,
		},
		{
			name:       "bearer when basic only",
			opts:       []serverOptions{basicOnly},
			auth:       func(t *testing.T) string { return bearer(hsToken(t, validClaims())) },
			status:     http.StatusUnauthorized,
			challenges: []string{`Basic realm="agentd", charset="UTF-8"`},
			message:    `Authorization scheme "Bearer" is not accepted. Use one of these schemes: Basic.`,
		},
		{
			name:       "unknown scheme",
			auth:       func(*testing.T) string { return "Token abc" },
			status:     http.StatusUnauthorized,
			challenges: []string{`Bearer realm="agentd"`, `Basic realm="agentd", charset="UTF-8"`},
			message:    `Authorization scheme "Token" is not accepted.`,
		},
		{
			name:   "both enabled, bearer",
			auth:   func(t *testing.T) string { return bearer(hsToken(t, validClaims())) },
			status: http.StatusOK,
		},
		{
			name:   "both enabled, basic",
			auth:   func(*testing.T) string { return basic("1001", password1001) },
			status: http.StatusOK,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := testServer(t, tt.opts...)
			rec := serve(s, request{path: "/api/v1/asterisk_login/", auth: tt.auth(t)})

			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			if tt.status == http.StatusOK {
				return
			}
			e := decodeError(t, rec)
			assert.Equal(t, "unauthenticated", e.Error.Code)
			assert.Contains(t, e.Error.Message, tt.message)
			assert.Equal(t, tt.challenges, rec.Header().Values("WWW-Authenticate"))
		})
	}
}

func TestRepeatedAuthorizationHeader(t *testing.T) {
	s, fake, _ := testServer(t)
	req := loginAs(basic("1001", password1001))
	req.Header.Add("Authorization", basic("1003", password1003))
	rec := serveRequest(s, req)

	require.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Contains(t, decodeError(t, rec).Error.Message, "The request has 2 Authorization headers.")
	assert.Empty(t, fake.recorded())
}

func TestAuthenticationBeforeBody(t *testing.T) {
	s, _, _ := testServer(t)
	rec := serve(s, request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: `{"pause_id":`})

	assert.Equal(t, http.StatusUnauthorized, rec.Code)
}

func TestSecretsNeverLogged(t *testing.T) {
	s, fake, logs := testServer(t)
	token := hsToken(t, validClaims())
	expired := hsToken(t, jwt.MapClaims{"agent_id": "1001", "exp": time.Now().Add(-time.Hour).Unix()})
	fake.err = agent.ErrAsteriskUnavailable

	serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", password1001)})
	serve(s, request{path: "/api/v1/asterisk_login/", auth: basic("1001", "wrong-password-xyz")})
	serve(s, request{path: "/api/v1/asterisk_login/", auth: bearer(token)})
	serve(s, request{path: "/api/v1/asterisk_login/", auth: bearer(expired)})
	serve(s, request{path: "/api/v1/asterisk_login/", auth: bearer(token + "x")})

	out := logs.String()
	require.Len(t, logLines(t, logs), 5)
	for _, secret := range []string{password1001, "wrong-password-xyz", token, expired, testSecret, strings.Split(token, ".")[2]} {
		assert.NotContains(t, out, secret)
	}
}
