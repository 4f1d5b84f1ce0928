package health

import (
	"encoding/json"
	"net/http"
)

// Healthz is the liveness probe: 200 "ok" while the process can answer.
// Following Kubernetes conventions it does not look at dependencies — a
// failing database must not get the process restarted.
func (m *Manager) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
}

// Readyz is the readiness probe: 200 when no critical check is failed (or
// not yet run), 503 otherwise, with the report of every check as JSON.
func (m *Manager) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ready, failing := m.Ready()
		body := struct {
			Ready   bool     `json:"ready"`
			Failing []string `json:"failing,omitempty"`
			Report
		}{ready, failing, m.Report()}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
}

// Mount registers /healthz and /readyz on mux.
func (m *Manager) Mount(mux *http.ServeMux) {
	mux.Handle("GET /healthz", m.Healthz())
	mux.Handle("GET /readyz", m.Readyz())
}
