package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchmarkPause serves one authenticated pause request per iteration
// through the whole handler: routing, authentication, body decoding, the
// fake use case and the JSON response.
func benchmarkPause(b *testing.B, auth string) {
	s, fake, _ := testServer(b)
	fake.result = pausedResult()
	body := `{"pause_id":"5"}`

	// The first request fills the Basic password cache.
	warm := request{path: "/api/v1/asterisk_pause/", contentType: "application/json", body: body, auth: auth}
	if rec := serve(s, warm); rec.Code != http.StatusOK {
		b.Fatalf("warm-up request: status %d: %s", rec.Code, rec.Body.String())
	}
	handler := s.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/asterisk_pause/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
}

func BenchmarkPauseJWT(b *testing.B) {
	benchmarkPause(b, bearer(hsToken(b, validClaims())))
}

func BenchmarkPauseBasicWarmCache(b *testing.B) {
	benchmarkPause(b, basic("1001", password1001))
}
