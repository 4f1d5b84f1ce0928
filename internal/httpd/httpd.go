// Package httpd is the operations HTTP server every daemon runs: /healthz,
// /metrics and whatever the daemon mounts, on loopback unless configured
// otherwise, shut down with the daemon.
package httpd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a Prometheus registry with the Go and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Mux returns a mux with /healthz and /metrics (from reg).
func Mux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	return mux
}

// Limits bound what one connection can hold: a client that sends its
// headers or its whole request (body included) slower than this is cut off,
// so slow clients cannot hold connections open, and an idle keep-alive
// connection is closed.
type Limits struct {
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                              int
}

// DefaultLimits are the limits of every server [Serve] runs.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
	IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
}

// Serve listens on addr and serves h until ctx ends, then shuts down within
// 5 s. An empty addr serves nothing and waits for ctx. It returns the
// listener's error, naming the address.
func Serve(ctx context.Context, addr string, h http.Handler, ready func(net.Addr)) error {
	return ServeLimits(ctx, addr, h, ready, DefaultLimits)
}

// ServeLimits is [Serve] with other limits.
func ServeLimits(ctx context.Context, addr string, h http.Handler, ready func(net.Addr), lim Limits) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("http listener %s: %w", addr, err)
	}
	if ready != nil {
		ready(l.Addr())
	}
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: lim.ReadHeaderTimeout, ReadTimeout: lim.ReadTimeout,
		IdleTimeout: lim.IdleTimeout, MaxHeaderBytes: lim.MaxHeaderBytes,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeWhile runs run and serves h on addr (see Serve) side by side until
// ctx ends or either fails; a failure stops the other. It returns the first
// error.
func ServeWhile(ctx context.Context, addr string, h http.Handler, ready func(net.Addr), run func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- Serve(ctx, addr, h, ready) }()
	go func() { errc <- run(ctx) }()
	var first error
	for range 2 {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// MountProfiles serves the Go runtime's profiles (net/http/pprof) under
// GET /debug/pprof/ on mux: goroutine dumps, heap, CPU. They reveal the
// program's internals, so a daemon mounts them only when asked (--pprof),
// behind the same token as every other path.
func MountProfiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
