package daemon

import (
	"encoding/json"
	"net/http"
	"time"
)

// dependency is one outside system readiness depends on.
type dependency struct {
	name   string
	status func() (up bool, since time.Time, lastErr error)
}

// dependencyStatus is one entry of the /readyz body.
type dependencyStatus struct {
	Status    string    `json:"status"` // up or down
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// healthzHandler returns 200 while the process serves HTTP.
func healthzHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// readyzHandler reports each dependency, with 503 while any is down.
func readyzHandler(deps []dependency) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		body := map[string]dependencyStatus{}
		code := http.StatusOK
		for _, d := range deps {
			up, since, lastErr := d.status()
			st := dependencyStatus{Status: "up", Since: since.UTC().Truncate(time.Millisecond)}
			if !up {
				st.Status = "down"
				code = http.StatusServiceUnavailable
			}
			if lastErr != nil {
				st.LastError = lastErr.Error()
			}
			body[d.name] = st
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
}
