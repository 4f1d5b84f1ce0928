package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/internal/natsauth"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/console"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/ingest"
	"github.com/jetmon/jetmon/pkg/natsserver"
)

// Run runs the pipeline until ctx ends, then stops every part in order.
func Run(ctx context.Context, o Options) (err error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	p, err := build(ctx, o)
	if p != nil {
		defer func() { err = errors.Join(err, p.close()) }()
	}
	if err != nil {
		return err
	}
	return p.run(ctx)
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = 5 * time.Second
	}
	if o.FlapEvery <= 0 {
		o.FlapEvery = 20 * time.Second
	}
	if o.ViewEvery <= 0 {
		o.ViewEvery = 2 * time.Second
	}
	if o.HTTP == "" {
		o.HTTP = "127.0.0.1:9100"
	}
	if o.NATSHost == "" {
		o.NATSHost = "127.0.0.1"
	}
	return o
}

// pipeline is everything `jetmon up` runs, built and not yet started.
type pipeline struct {
	o       Options
	log     zerolog.Logger
	srv     *natsserver.Server
	nc      *nats.Conn
	bus     *jsbus.Bus
	pub     *breaker.Publisher // the demo load's publisher
	agg     *aggregator.Service
	am      *alerting.Service
	tr      *traces
	con     *console.Console
	handler http.Handler // the one HTTP server's, guarded
}

// build starts the embedded server and connects the bus, and builds every
// part on it. On error it returns what it built so far, for close.
func build(ctx context.Context, o Options) (*pipeline, error) {
	p := &pipeline{o: o, log: o.Logger}
	rules, err := loadRules(o.Rules)
	if err != nil {
		return nil, err
	}
	if err := p.startNATS(); err != nil {
		return p, err
	}
	// One connection: publishers batch, the breaker (registered for the
	// bus's async failures by breaker.New) retries.
	cfg := jsbus.DefaultConfig()
	cfg.Conn, cfg.Logger = p.nc, &p.log
	cfg.BatchMaxEvents = 100
	cfg.Streams.MaxBytesScale = 0.25 // a laptop's share
	if p.bus, err = jsbus.Connect(ctx, cfg); err != nil {
		return p, err
	}
	reg := httpd.NewRegistry()
	if p.pub, err = breaker.New(p.bus, breaker.Options{Name: "producer", Source: "jetmon-up", Logger: &p.log, Registerer: reg}); err != nil {
		return p, err
	}
	if err := p.buildRuntimes(ctx, rules, reg); err != nil {
		return p, err
	}
	return p, p.buildHTTP(reg)
}

func loadRules(file string) (*alerting.Config, error) {
	var rules *alerting.Config
	var err error
	if file == "" {
		rules, err = alerting.Parse("demo rules", demoRules)
	} else {
		rules, err = alerting.Load(file)
	}
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return rules, nil
}

// startNATS starts the embedded server and connects as the internal user.
func (p *pipeline) startNATS() error {
	o := p.o
	srvLog := p.log.Level(zerolog.WarnLevel)
	users, internal, err := o.natsUsers()
	if err != nil {
		return err
	}
	so := natsserver.Options{StoreDir: o.DataDir, Host: o.NATSHost, Port: o.NATSPort, Users: users, Logger: &srvLog}
	if !o.NATS.NoGuests {
		so.NoAuthUser = string(natsauth.Guest)
	}
	if p.srv, err = natsserver.Start(so); err != nil {
		return fmt.Errorf("embedded NATS server (data dir %s): %w", o.DataDir, err)
	}
	if p.nc, err = p.srv.Connect(internal); err != nil {
		return fmt.Errorf("connect to the embedded server: %w", err)
	}
	p.log.Info().Str("data_dir", o.DataDir).Msg("embedded NATS JetStream server running")
	return nil
}

// buildRuntimes builds the aggregator, the alert manager, the trace runtime
// and the console on the bus.
func (p *pipeline) buildRuntimes(ctx context.Context, rules *alerting.Config, reg *prometheus.Registry) (err error) {
	o, bus := p.o, p.bus
	p.agg, err = aggregator.New(aggregator.Options{
		Bus: bus, Window: o.Window, Lateness: max(o.Window/5, 200*time.Millisecond), Logger: &p.log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	store, err := alerting.NewKVStore(ctx, bus.JetStream(), 1, 0)
	if err != nil {
		return err
	}
	p.am, err = alerting.New(alerting.Options{
		Config: rules, RulesFile: o.Rules, Bus: bus, Alerts: &alerting.JetStreamSink{JS: bus.JetStream()}, Store: store,
		Instance: "jetmon-up", Durable: "alertmanager-jetmon-up", ExternalURL: "http://" + o.HTTP, Logger: &p.log, Registerer: reg,
		History: func(ctx context.Context, since time.Time) ([]*events.AggregateEvent, error) { // threshold: auto
			var out []*events.AggregateEvent
			_, err := bus.Replay(ctx, string(events.MetricAggregated), jsbus.ReplayOptions{From: since}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
				if a, ok := ev.(*events.AggregateEvent); ok {
					out = append(out, a)
				}
				return nil
			}))
			return out, err
		},
	})
	if err != nil {
		return err
	}
	if p.tr, err = buildTraces(bus, o.TraceHorizon, &p.log, reg); err != nil {
		return err
	}
	// The console reads the streams like a standalone `jetmon console`
	// would, and links to the trace API served beside it; its pages hold
	// no data and load without the token.
	co := console.DefaultOptions()
	co.Bus, co.Logger, co.Registerer = bus, p.log, reg
	co.Traces = true // the trace API is mounted on the same mux
	p.con, err = console.New(co)
	return err
}

// buildHTTP makes the one HTTP server's handler: ingest, every part's API,
// the console, /metrics, behind the guard.
func (p *pipeline) buildHTTP(reg *prometheus.Registry) error {
	o := p.o
	// 2xx means stored: the ingest publishes straight through the bus and
	// answers once JetStream has acknowledged; the breaker is for the demo
	// load, which must never block.
	ing, err := ingest.New(ingest.Options{Publisher: p.bus, GrantToken: o.GrantToken, AssignDefaults: true})
	if err != nil {
		return err
	}
	mux := httpd.Mux(reg)
	ing.Mount(mux)
	p.tr.mount(mux)
	p.con.Mount(mux)
	aggMux, amMux := http.NewServeMux(), http.NewServeMux()
	p.agg.Mount(aggMux)
	p.am.Mount(amMux)
	for _, path := range []string{"/api/v1/windows", "/api/v1/stats"} {
		mux.Handle(path, aggMux)
	}
	for _, path := range []string{"/api/v1/alerts", "/api/v1/silences", "/api/v1/silences/", "/api/v1/rules", "/api/v1/baselines", "/api/v1/thresholds"} {
		mux.Handle(path, amMux)
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.agg.Ready() || !p.am.Ready() || !p.tr.svc.Ready() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	guard := httpd.ForAddr(o.HTTP, o.Token, o.GrantToken)
	guard.Open = append([]string{"/healthz", "/readyz"}, console.Public()...)
	p.handler = guard.Wrap(mux)
	return nil
}

// close stops what build started, last first: the breaker, the bus (its
// acks settle), the connection, the server.
func (p *pipeline) close() error {
	var err error
	if p.pub != nil {
		_ = p.pub.Close()
	}
	if p.bus != nil {
		err = p.bus.Close()
	}
	if p.nc != nil {
		p.nc.Close()
	}
	if p.srv != nil {
		p.srv.Stop()
	}
	return err
}

// part is one long-running piece of the pipeline.
type part struct {
	name string
	run  func(context.Context) error
}

// run runs every part until ctx ends or one fails (which stops the others),
// and the live view once everything is up.
func (p *pipeline) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var httpAddr atomic.Value
	parts := append(p.parts(), part{"http", func(ctx context.Context) error {
		return httpd.Serve(ctx, p.o.HTTP, p.handler, func(a net.Addr) { httpAddr.Store(a) })
	}})
	errc := make(chan error, len(parts))
	for _, pt := range parts {
		go func() {
			err := pt.run(ctx)
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("%s: %w", pt.name, err)
				cancel()
			} else {
				err = nil
			}
			errc <- err
		}()
	}
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		if !waitReady(ctx, func() bool { return p.agg.Ready() && p.am.Ready() && httpAddr.Load() != nil }) {
			return
		}
		p.announce(ctx, httpAddr.Load().(net.Addr))
	}()
	var first error
	for range parts {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	<-viewDone
	return first
}

// parts lists the runtimes, the rules reloader and the demo workload.
func (p *pipeline) parts() []part {
	o := p.o
	parts := []part{
		{"aggregator", p.agg.Run},
		{"alertmanager", p.am.Run},
		{"traces", p.tr.svc.Run},
		{"console", p.con.Run},
	}
	if o.Rules != "" && o.Reload != nil {
		parts = append(parts, part{"reloader", func(ctx context.Context) error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-o.Reload:
					if err := p.am.ReloadFile(ctx); err != nil {
						p.log.Error().Err(err).Msg("reload failed; the running rules stay")
					}
				}
			}
		}})
	}
	if o.Rate > 0 {
		parts = append(parts,
			part{"loadgen", func(ctx context.Context) error { return demoLoad(ctx, p.pub, o.Rate) }},
			part{"flapping component", func(ctx context.Context) error { return flap(ctx, p.pub, o.FlapEvery) }})
	}
	return parts
}

// announce says where everything is, calls Options.Ready, and runs the
// live view until ctx ends.
func (p *pipeline) announce(ctx context.Context, addr net.Addr) {
	natsURL := p.srv.ClientURL()
	printWhere(&p.log, addr, natsURL)
	if p.o.Ready != nil {
		p.o.Ready(addr, natsURL)
	}
	if p.o.View != nil {
		v := &view{out: p.o.View, ansi: p.o.ANSI, agg: p.agg, am: p.am, bus: p.bus, window: p.o.Window, httpAddr: addr.String(), natsURL: natsURL}
		v.run(ctx, p.o.ViewEvery)
	}
}

func waitReady(ctx context.Context, ready func() bool) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

func printWhere(log *zerolog.Logger, addr net.Addr, natsURL string) {
	base := "http://" + addr.String()
	ev := log.Info().Str("console", base+"/console/").Str("ingest", base+"/v1/events").Str("windows", base+"/api/v1/windows").
		Str("alerts", base+"/api/v1/alerts").Str("metrics", base+"/metrics")
	if natsURL != "" {
		ev = ev.Str("nats", natsURL)
	}
	ev.Msg("jetmon up: pipeline running (Ctrl-C stops it)")
	if natsURL != "" {
		log.Info().Msg("try: nats --server " + natsURL + " sub 'alerts.>'   or   nats --server " + natsURL + " sub 'performance.metric.aggregated.>'")
		log.Info().Msg("try: jetmon tail --nats-url " + natsURL + " 'health.>'   or   jetmon dlq list --nats-url " + natsURL)
	}
	log.Info().Msg(`try: curl -s ` + base + `/v1/events -H 'Content-Type: application/json' -d '{"event_type":"performance.operation.complete","source":"me","operation":"hello","duration_ms":900}'`)
}
