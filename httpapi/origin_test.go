package httpapi

import (
	"net/http"
	"testing"

	"github.com/contactcenter/agentd/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withAllowedOrigins sets Config.AllowedOrigins of a test server.
func withAllowedOrigins(origins ...string) serverOptions {
	return func(c *Config) { c.AllowedOrigins = origins }
}

func TestOriginCheck(t *testing.T) {
	tests := []struct {
		name    string
		target  string // request URL, whose host becomes the Host header
		headers map[string]string
		allowed bool
	}{
		{name: "no Origin", target: "http://example.com/api/v1/asterisk_logout/", allowed: true},
		{name: "own origin", target: "http://example.com/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "http://example.com"}, allowed: true},
		{name: "own origin with port", target: "http://127.0.0.1:8080/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "http://127.0.0.1:8080"}, allowed: true},
		{name: "own origin with default port", target: "http://example.com:80/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "http://example.com"}, allowed: true},
		{name: "own origin in upper case", target: "http://example.com/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "HTTP://EXAMPLE.COM"}, allowed: true},
		{name: "own origin over TLS", target: "https://example.com/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "https://example.com"}, allowed: true},
		{name: "other site", target: "http://example.com/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "https://evil.example"}},
		{name: "other port", target: "http://example.com:8080/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "http://example.com"}},
		{name: "https page to http server", target: "http://example.com/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "https://example.com"}},
		{name: "http page to https server", target: "https://example.com/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "http://example.com"}},
		{name: "null origin", target: "http://example.com/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "null"}},
		{name: "malformed origin", target: "http://example.com/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "example.com"}},
		{name: "allowed origin", target: "http://127.0.0.1:8080/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "https://phone.example.com"}, allowed: true},
		{name: "allowed origin written differently", target: "http://127.0.0.1:8080/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "https://crm.example.com"}, allowed: true},
		{name: "subdomain of allowed origin", target: "http://127.0.0.1:8080/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "https://evil.phone.example.com"}},
		{
			name:    "same-origin proxy that rewrites Host",
			target:  "http://127.0.0.1:8080/api/v1/asterisk_logout/",
			headers: map[string]string{"Origin": "https://omnileads.example.com", "Sec-Fetch-Site": "same-origin"},
			allowed: true,
		},
		{
			name:    "cross-site by Sec-Fetch-Site",
			target:  "http://127.0.0.1:8080/api/v1/asterisk_logout/",
			headers: map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
		},
		{
			name:    "same-site by Sec-Fetch-Site",
			target:  "http://127.0.0.1:8080/api/v1/asterisk_logout/",
			headers: map[string]string{"Origin": "https://other.omnileads.example.com", "Sec-Fetch-Site": "same-site"},
		},
		{
			name:   "forwarded proto and host",
			target: "http://127.0.0.1:8080/api/v1/asterisk_logout/",
			headers: map[string]string{
				"Origin": "https://omnileads.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "omnileads.example.com",
			},
			allowed: true,
		},
		{
			name:    "forwarded host only",
			target:  "http://127.0.0.1:8080/api/v1/asterisk_logout/",
			headers: map[string]string{"Origin": "http://omnileads.example.com", "X-Forwarded-Host": "omnileads.example.com"},
			allowed: true,
		},
		{
			name:    "forwarded proto only",
			target:  "http://omnileads.example.com/api/v1/asterisk_logout/",
			headers: map[string]string{"Origin": "https://omnileads.example.com", "X-Forwarded-Proto": "https"},
			allowed: true,
		},
		{
			name:   "forwarded chain uses first entry",
			target: "http://127.0.0.1:8080/api/v1/asterisk_logout/",
			headers: map[string]string{
				"Origin": "https://omnileads.example.com", "X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "omnileads.example.com, 10.0.0.5",
			},
			allowed: true,
		},
		{
			name:   "forwarded origin of another site",
			target: "http://127.0.0.1:8080/api/v1/asterisk_logout/",
			headers: map[string]string{
				"Origin": "https://evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "omnileads.example.com",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake, _ := testServer(t, withAllowedOrigins("https://phone.example.com", "HTTPS://CRM.example.com:443"))
			req := request{path: tt.target, auth: basic("1001", password1001), headers: tt.headers}.build()
			rec := serveRequest(s, req)

			if tt.allowed {
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.Len(t, fake.recorded(), 1)
				return
			}
			require.Equal(t, http.StatusForbidden, rec.Code, rec.Body.String())
			e := decodeError(t, rec)
			assert.Equal(t, "forbidden", e.Error.Code)
			assert.Contains(t, e.Error.Message, tt.headers["Origin"])
			assert.Contains(t, e.Error.Message, "http.cors.allowed_origins")
			assert.Empty(t, fake.recorded(), "a rejected request must not reach the use case")
		})
	}
}

func TestOriginRejectedMessage(t *testing.T) {
	tests := []struct {
		language string
		want     string
	}{
		{"", `Requests from pages at origin "https://evil.example" are rejected, because it is neither this server's own origin (http://127.0.0.1:8080) nor listed in http.cors.allowed_origins. If that page is a trusted webphone, ask the administrator to add its origin to http.cors.allowed_origins.`},
		{"es", `Se rechazan las solicitudes de páginas del origen "https://evil.example", porque no es el origen propio de este servidor (http://127.0.0.1:8080) ni figura en http.cors.allowed_origins. Si esa página es un webphone de confianza, pida al administrador que agregue su origen a http.cors.allowed_origins.`},
	}
	for _, tt := range tests {
		t.Run(tt.language, func(t *testing.T) {
			s, _, _ := testServer(t)
			rec := serve(s, request{path: "http://127.0.0.1:8080/api/v1/asterisk_pause/", body: "pause_id=5", contentType: "application/x-www-form-urlencoded",
				auth: basic("1001", password1001), language: tt.language, headers: map[string]string{"Origin": "https://evil.example"}})

			require.Equal(t, http.StatusForbidden, rec.Code)
			assert.Equal(t, tt.want, decodeError(t, rec).Error.Message)
		})
	}
}

func TestOriginMessageNamesForwardedOrigin(t *testing.T) {
	s, _, _ := testServer(t)
	rec := serve(s, request{path: "http://127.0.0.1:8080/api/v1/asterisk_login/", auth: basic("1001", password1001),
		headers: map[string]string{"Origin": "https://evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "omnileads.example.com"}})

	require.Equal(t, http.StatusForbidden, rec.Code)
	assert.Contains(t, decodeError(t, rec).Error.Message, "(https://omnileads.example.com)")
}

func TestOriginCheckedBeforeCredentials(t *testing.T) {
	s, fake, _ := testServer(t)
	for name, auth := range map[string]string{"none": "", "wrong password": basic("1001", "wrong")} {
		t.Run(name, func(t *testing.T) {
			rec := serve(s, request{path: "/api/v1/asterisk_logout/", auth: auth, headers: map[string]string{"Origin": "https://evil.example"}})

			require.Equal(t, http.StatusForbidden, rec.Code)
			assert.Equal(t, "forbidden", decodeError(t, rec).Error.Code)
			assert.Empty(t, rec.Header().Values("WWW-Authenticate"), "no Basic challenge, so the browser shows no login dialog")
		})
	}
	assert.Empty(t, fake.recorded())
}

func TestOriginRejectionLogged(t *testing.T) {
	s, _, logs := testServer(t)
	serve(s, request{path: "/api/v1/asterisk_logout/", auth: basic("1001", password1001), headers: map[string]string{"Origin": "https://evil.example"}})

	lines := logLines(t, logs)
	require.Len(t, lines, 1)
	assert.Equal(t, "INFO", lines[0]["level"])
	assert.Equal(t, "forbidden", lines[0]["code"])
	assert.Contains(t, lines[0]["err"], `"https://evil.example"`)
}

func TestOriginIgnoredOnOtherMethods(t *testing.T) {
	s, _, _ := testServer(t)
	rec := serve(s, request{method: http.MethodOptions, path: "/api/v1/asterisk_logout/", headers: map[string]string{"Origin": "https://evil.example"}})

	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "method_not_allowed", decodeError(t, rec).Error.Code)
}

func TestNewValidatesAllowedOrigins(t *testing.T) {
	for _, origin := range []string{"*", "phone.example.com", "ftp://phone.example.com", "https://phone.example.com/", "https://phone.example.com/app", "https://"} {
		t.Run(origin, func(t *testing.T) {
			dir := testDirectory(t)
			_, err := New(Config{Service: &fakeAgents{}, Directory: func() *agent.Directory { return dir }, Auth: AuthConfig{Basic: true}, AllowedOrigins: []string{origin}})

			require.Error(t, err)
			assert.Contains(t, err.Error(), "Config.AllowedOrigins has")
			assert.Contains(t, err.Error(), origin)
		})
	}
}

func TestNormalizeOrigin(t *testing.T) {
	tests := map[string]string{
		"https://phone.example.com":     "https://phone.example.com",
		"https://phone.example.com:443": "https://phone.example.com",
		"http://phone.example.com:80":   "http://phone.example.com",
		"http://phone.example.com:443":  "http://phone.example.com:443",
		"HTTPS://Phone.Example.COM":     "https://phone.example.com",
		"http://[::1]:8080":             "http://[::1]:8080",
	}
	for origin, want := range tests {
		got, ok := normalizeOrigin(origin)
		assert.True(t, ok, origin)
		assert.Equal(t, want, got, origin)
	}
}
