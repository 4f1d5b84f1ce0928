// Command webhooksink is a webhook receiver for the compose test: it counts
// the alerts the alert managers notify, by status and fingerprint, and
// serves the counts at GET /counts, so a test can check that each alert was
// notified exactly once.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/pkg/alerting"
)

// Counts are the notifications received: status → fingerprint → count.
type Counts map[string]map[string]int

func main() { os.Exit(run()) }

func run() int {
	addr := flag.String("addr", "0.0.0.0:9200", "listen address")
	flag.Parse()
	var mu sync.Mutex
	counts := Counts{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		var m alerting.WebhookMessage
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, a := range m.Alerts {
			if counts[a.Status] == nil {
				counts[a.Status] = map[string]int{}
			}
			counts[a.Status][a.Fingerprint]++
		}
	})
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(counts)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := httpd.Serve(ctx, *addr, mux, func(a net.Addr) { fmt.Println("webhook sink listening on", a) }); err != nil {
		fmt.Fprintln(os.Stderr, "webhooksink:", err)
		return 1
	}
	return 0
}
