// Package console is jetmon's web console: performance, health, alert and
// dead-letter dashboards in the browser, live over server-sent events, and
// views of the traces of pkg/tracing (a waterfall per trace, the dependency
// map, the bottlenecks) where its API is served beside ([Options].Traces).
//
// The console holds no state of its own: every page is computed at request
// time from NATS (the streams through [history.Reader], the alert state and
// silences in their key-value buckets, stream and consumer info), so any
// number of consoles can run side by side behind a load balancer. Its
// assets (one HTML page, one script, one stylesheet; charts drawn as SVG by
// that script) are embedded in the binary.
//
// The handler does no authentication of its own: mount it behind the
// daemon's guard (tokens, loopback, write rules). Its writes (silences,
// dead-letter retry and drop) take JSON bodies only and refuse another
// origin; the pages and assets hold no data and can be left open ([Public])
// so that a browser can load them before it has the token, which the page
// then sends as a bearer token on every API call.
package console

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/history"
)

// Options configure a [Console].
type Options struct {
	// Bus is the connection to read (and, for silences and dead letters,
	// write) through; the console does not close it.
	Bus *jsbus.Bus
	// History bounds history queries (default [history.DefaultOptions]).
	History history.Options
	// MaxLive is the most live (server-sent events) clients at once
	// (default 64); more are answered 503.
	MaxLive int
	// LiveBuffer is how many updates a live client may fall behind before
	// it is cut off (default 1,024); it reconnects and reloads.
	LiveBuffer int
	// LiveMaxAge ends a live stream after this long (default 10 min); the
	// page reconnects at once, so no connection is held forever.
	LiveMaxAge time.Duration
	// Logger receives the console's warnings (default: none).
	Logger zerolog.Logger
	// Traces says that the trace API of pkg/tracing (/api/v1/traces,
	// /api/v1/traces/{id}, /api/v1/dependencies, /api/v1/bottlenecks) is
	// served on the same origin as the console: `jetmon up` sets it, a
	// standalone `jetmon console` does not. The pages learn it from
	// GET /api/v1/console/features and, without it, say that traces are
	// not served here instead of asking for them.
	Traces bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer receives the console's metrics (default: none):
	// jetmon_console_live_clients, jetmon_console_live_cutoffs_total and
	// jetmon_console_request_seconds{route}.
	Registerer prometheus.Registerer
}

// DefaultOptions returns the defaults documented on [Options].
func DefaultOptions() Options {
	return Options{History: history.DefaultOptions(), MaxLive: 64, LiveBuffer: 1024, LiveMaxAge: 10 * time.Minute, Logger: zerolog.Nop(), Now: time.Now}
}

// Validate names the first field out of range.
func (o Options) Validate() error {
	switch {
	case o.Bus == nil:
		return errors.New("console: Bus is required")
	case o.MaxLive <= 0:
		return errors.New("console: MaxLive must be positive")
	case o.LiveBuffer <= 0:
		return errors.New("console: LiveBuffer must be positive")
	case o.LiveMaxAge <= 0:
		return errors.New("console: LiveMaxAge must be positive")
	case o.Now == nil:
		return errors.New("console: Now is required")
	}
	return o.History.Validate()
}

// Console serves the pages, the console's API and the live stream. It is
// safe for concurrent use; [Console.Close] ends every live stream.
type Console struct {
	o         Options
	cutoffs   prometheus.Counter
	latency   *prometheus.HistogramVec
	hist      *history.Reader
	liveSlots chan struct{} // one token per live client
	done      chan struct{}
	close     sync.Once
	mu        sync.Mutex // orders wg.Add of a new live stream before Close's Wait
	wg        sync.WaitGroup
}

// New returns a console over o.Bus.
func New(o Options) (*Console, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	h, err := history.New(o.Bus.JetStream(), o.History)
	if err != nil {
		return nil, err
	}
	c := &Console{o: o, hist: h, liveSlots: make(chan struct{}, o.MaxLive), done: make(chan struct{})}
	c.cutoffs = prometheus.NewCounter(prometheus.CounterOpts{Name: "jetmon_console_live_cutoffs_total", Help: "Live clients cut off for falling LiveBuffer updates behind."})
	c.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "jetmon_console_request_seconds", Help: "Time to answer the console's API requests (history queries included), by route.",
		Buckets: []float64{.005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5, 15},
	}, []string{"route"})
	if o.Registerer != nil {
		live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_console_live_clients", Help: "Live (server-sent events) clients connected now."},
			func() float64 { return float64(len(c.liveSlots)) })
		for _, m := range []prometheus.Collector{live, c.cutoffs, c.latency} {
			if err := o.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("console: metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Close ends every live stream and waits for their handlers to return. It
// is idempotent; afterwards live requests are answered 503.
func (c *Console) Close() {
	c.close.Do(func() {
		c.mu.Lock()
		close(c.done)
		c.mu.Unlock()
	})
	c.wg.Wait()
}

// Run blocks until ctx ends, then closes c: the shape of every long-lived
// component.
func (c *Console) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-c.done:
	}
	c.Close()
	return nil
}

// track registers a live stream with c's WaitGroup, or reports false once
// c is closed.
func (c *Console) track() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return false
	default:
		c.wg.Add(1)
		return true
	}
}
