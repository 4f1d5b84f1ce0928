// Package pipeline is `jetmon up`: the whole pipeline in one process. It
// starts an embedded NATS JetStream server, applies the streams, and runs the
// producer (HTTP ingest behind the circuit breaker, a load generator with a
// slow operation, a flapping component), the aggregator and the alert
// manager on it, with a live terminal view of the latest windows and alerts.
package pipeline

import (
	"context"
	"crypto/rand"
	_ "embed" // the demo rules
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/internal/natsauth"
	"github.com/jetmon/jetmon/internal/producer"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/console"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/ingest"
	"github.com/jetmon/jetmon/pkg/natsserver"
)

//go:embed rules.yaml
var demoRules []byte

// DemoRules returns the rules run when Options.Rules is empty.
func DemoRules() []byte { return demoRules }

// Options configure [Run].
type Options struct {
	// DataDir is the embedded server's JetStream store; a restart resumes it.
	DataDir string
	// NATSPort, when positive, lets NATS clients (the nats CLI) connect on
	// NATSHost:NATSPort (default host 127.0.0.1).
	NATSPort int
	NATSHost string
	// NATS says who may connect on NATSPort; see [NATSAccess].
	NATS NATSAccess
	// HTTP is the address of the one HTTP server (ingest, APIs, metrics).
	HTTP string
	// Token, when set, is required on every HTTP path but /healthz and
	// /readyz. GrantToken, when set, lets an ingest request that presents it
	// instead publish the types only the pipeline emits (aggregated windows,
	// monitoring control, threshold events); without it nobody can.
	Token, GrantToken string
	// InsecureHTTP allows HTTP beyond loopback without a Token.
	InsecureHTTP bool
	// Window is the aggregation window (default 5s).
	Window time.Duration
	// TraceHorizon is how long a trace stays open after its last span
	// (default 10s, see pkg/trace).
	TraceHorizon time.Duration
	// Rate is the load generator's requests per second; 0 turns the demo
	// workload (load, flapping component) off.
	Rate int
	// FlapEvery is how often the demo component changes state (default 20s).
	FlapEvery time.Duration
	// Rules is a rules file; empty runs [DemoRules]. A value on Reload
	// re-reads it (SIGHUP).
	Rules  string
	Reload <-chan struct{}
	// View receives the live view every ViewEvery (default 2s); nil: none.
	// ANSI says whether to redraw in place (a terminal).
	View      io.Writer
	ViewEvery time.Duration
	ANSI      bool
	Logger    zerolog.Logger
	// Ready, if set, is called with the HTTP address once everything runs.
	Ready func(httpAddr net.Addr, natsURL string)
}

// NATSAccess configures the users of the embedded server's listener. The
// pipeline's own parts connect in-process as an internal user whose password
// is made anew at each start and never leaves the process.
type NATSAccess struct {
	// NoGuests refuses clients without credentials; by default they connect
	// as natsauth.Guest: they may publish events (not the pipeline-only
	// types) and read every stream, and manage nothing.
	NoGuests bool
	// Passwords of the roles' users (natsauth.Operator, Producer, Reader,
	// ...); a role without a password has no user. Only the operator can
	// create, change, purge or delete streams.
	Passwords map[natsauth.Role]string
	// Insecure allows a listener beyond loopback that guests can use.
	Insecure bool
}

// ErrNATSExposed reports a NATS listener beyond loopback open to guests.
var ErrNATSExposed = errors.New("a NATS listener beyond loopback must not admit guests")

// Validate reports the first unsafe or impossible setting, naming it: HTTP
// beyond loopback without a token ([httpd.ErrExposed]), a NATS listener
// beyond loopback open to guests ([ErrNATSExposed]), an unknown role or a
// short password.
func (o Options) Validate() error {
	if o.NATSHost == "" {
		o.NATSHost = "127.0.0.1"
	}
	if err := httpd.CheckExposure(o.HTTP, o.Token, o.InsecureHTTP); err != nil {
		return err
	}
	if o.NATSPort != 0 && !o.NATS.NoGuests && !o.NATS.Insecure && !httpd.IsLoopback(o.NATSHost) {
		return fmt.Errorf("nats host %s: %w (refuse guests, or allow it explicitly)", o.NATSHost, ErrNATSExposed)
	}
	for r, pw := range o.NATS.Passwords {
		if !slices.Contains(natsauth.Roles(), r) || r == natsauth.Guest {
			return fmt.Errorf("nats user %q: not a role (one of operator, producer, aggregator, alertmanager, reader, traces)", r)
		}
		if len(pw) < 8 || len(pw) > 72 {
			return fmt.Errorf("nats user %s: password of %d characters: must be 8 to 72", r, len(pw))
		}
	}
	return nil
}

// natsUsers returns the embedded server's users: the internal one, the
// configured roles, and the guest unless refused.
func (o Options) natsUsers() (users []*server.User, internal nats.Option, err error) {
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	pw := hex.EncodeToString(secret)
	users = append(users, &server.User{Username: internalUser, Password: natsauth.Hash(pw, bcrypt.MinCost)})
	for _, r := range natsauth.Roles() {
		if p, ok := o.NATS.Passwords[r]; ok {
			users = append(users, natsauth.User(r, p, bcrypt.DefaultCost))
		}
	}
	if !o.NATS.NoGuests {
		users = append(users, natsauth.User(natsauth.Guest, "", 0))
	}
	return users, nats.UserInfo(internalUser, pw), nil
}

// internalUser is the pipeline's own parts' user of the embedded server.
const internalUser = "jetmon-internal"

// Run runs the pipeline until ctx ends, then stops every part in order.
func Run(ctx context.Context, o Options) (err error) {
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
	if err := o.Validate(); err != nil {
		return err
	}
	log := o.Logger
	var rules *alerting.Config
	if o.Rules == "" {
		rules, err = alerting.Parse("demo rules", demoRules)
	} else {
		rules, err = alerting.Load(o.Rules)
	}
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}

	srvLog := log.Level(zerolog.WarnLevel)
	users, internal, err := o.natsUsers()
	if err != nil {
		return err
	}
	so := natsserver.Options{StoreDir: o.DataDir, Host: o.NATSHost, Port: o.NATSPort, Users: users, Logger: &srvLog}
	if !o.NATS.NoGuests {
		so.NoAuthUser = string(natsauth.Guest)
	}
	srv, err := natsserver.Start(so)
	if err != nil {
		return fmt.Errorf("embedded NATS server (data dir %s): %w", o.DataDir, err)
	}
	defer srv.Stop()
	nc, err := srv.Connect(internal)
	if err != nil {
		return fmt.Errorf("connect to the embedded server: %w", err)
	}
	defer nc.Close()
	log.Info().Str("data_dir", o.DataDir).Msg("embedded NATS JetStream server running")

	// One connection: publishers batch, the breaker (registered for the
	// bus's async failures by breaker.New) retries.
	cfg := jsbus.DefaultConfig()
	cfg.Conn, cfg.Logger = nc, &log
	cfg.BatchMaxEvents = 100
	cfg.Streams.MaxBytesScale = 0.25 // a laptop's share
	bus, err := jsbus.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bus.Close()) }()
	reg := httpd.NewRegistry()
	pub, err := breaker.New(bus, breaker.Options{Name: "producer", Source: "jetmon-up", Logger: &log, Registerer: reg})
	if err != nil {
		return err
	}
	defer func() { _ = pub.Close() }()

	agg, err := aggregator.New(aggregator.Options{
		Bus: bus, Window: o.Window, Lateness: max(o.Window/5, 200*time.Millisecond), Logger: &log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	store, err := alerting.NewKVStore(ctx, bus.JetStream(), 1, 0)
	if err != nil {
		return err
	}
	am, err := alerting.New(alerting.Options{
		Config: rules, RulesFile: o.Rules, Bus: bus, Alerts: &alerting.JetStreamSink{JS: bus.JetStream()}, Store: store,
		Instance: "jetmon-up", Durable: "alertmanager-jetmon-up", ExternalURL: "http://" + o.HTTP, Logger: &log, Registerer: reg,
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
	// 2xx means stored: the ingest publishes straight through the bus and
	// answers once JetStream has acknowledged; the breaker is for the demo
	// load, which must never block.
	ing, err := ingest.New(ingest.Options{Publisher: bus, GrantToken: o.GrantToken, AssignDefaults: true})
	if err != nil {
		return err
	}

	tr, err := buildTraces(bus, o.TraceHorizon, &log, reg)
	if err != nil {
		return err
	}
	// The console reads the streams like a standalone `jetmon console`
	// would, and links to the trace API served beside it; its pages hold
	// no data and load without the token.
	co := console.DefaultOptions()
	co.Bus, co.Logger, co.Registerer = bus, log, reg
	co.Traces = true // tr is mounted on the same mux
	con, err := console.New(co)
	if err != nil {
		return err
	}
	mux := httpd.Mux(reg)
	ing.Mount(mux)
	tr.mount(mux)
	con.Mount(mux)
	guard := httpd.ForAddr(o.HTTP, o.Token, o.GrantToken)
	guard.Open = append([]string{"/healthz", "/readyz"}, console.Public()...)
	guarded := guard.Wrap(mux)
	aggMux, amMux := http.NewServeMux(), http.NewServeMux()
	agg.Mount(aggMux)
	am.Mount(amMux)
	for _, p := range []string{"/api/v1/windows", "/api/v1/stats"} {
		mux.Handle(p, aggMux)
	}
	for _, p := range []string{"/api/v1/alerts", "/api/v1/silences", "/api/v1/silences/", "/api/v1/rules", "/api/v1/baselines", "/api/v1/thresholds"} {
		mux.Handle(p, amMux)
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !agg.Ready() || !am.Ready() || !tr.svc.Ready() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type part struct {
		name string
		run  func(context.Context) error
	}
	var httpAddr atomic.Value
	parts := []part{
		{"aggregator", agg.Run},
		{"alertmanager", am.Run},
		{"traces", tr.svc.Run},
		{"console", con.Run},
		{"http", func(ctx context.Context) error {
			return httpd.Serve(ctx, o.HTTP, guarded, func(a net.Addr) { httpAddr.Store(a) })
		}},
	}
	if o.Rules != "" && o.Reload != nil {
		parts = append(parts, part{"reloader", func(ctx context.Context) error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-o.Reload:
					if err := am.ReloadFile(ctx); err != nil {
						log.Error().Err(err).Msg("reload failed; the running rules stay")
					}
				}
			}
		}})
	}
	if o.Rate > 0 {
		parts = append(parts,
			part{"loadgen", func(ctx context.Context) error { return demoLoad(ctx, pub, o.Rate) }},
			part{"flapping component", func(ctx context.Context) error { return flap(ctx, pub, o.FlapEvery) }})
	}
	errc := make(chan error, len(parts))
	for _, p := range parts {
		go func() {
			err := p.run(ctx)
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("%s: %w", p.name, err)
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
		if !waitReady(ctx, func() bool { return agg.Ready() && am.Ready() && httpAddr.Load() != nil }) {
			return
		}
		addr := httpAddr.Load().(net.Addr)
		natsURL := srv.ClientURL()
		printWhere(&log, addr, natsURL)
		if o.Ready != nil {
			o.Ready(addr, natsURL)
		}
		if o.View != nil {
			v := &view{out: o.View, ansi: o.ANSI, agg: agg, am: am, bus: bus, window: o.Window, httpAddr: addr.String(), natsURL: natsURL}
			v.run(ctx, o.ViewEvery)
		}
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

// SlowOperation is the demo's slow operation (p95 well above 250 ms).
const SlowOperation = "checkout.charge"

// FlappingComponent is the demo's component that fails and recovers.
const FlappingComponent = "payments-db"

// demoLoad runs the load generator until ctx ends.
func demoLoad(ctx context.Context, pub events.Publisher, rate int) error {
	_, err := producer.LoadGen(ctx, pub, producer.LoadOptions{
		Rate: rate, Duration: 100 * 365 * 24 * time.Hour, Operations: 4, Sources: 3, Depth: 3,
		MedianMS: 30, Sigma: 0.5, SlowOperation: SlowOperation, Quiet: true,
	}, nil)
	return err
}

// flap makes FlappingComponent fail and recover every `every`.
func flap(ctx context.Context, pub events.Publisher, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		failed = !failed
		typ, msg := events.ComponentHealthy, "connection pool recovered"
		if failed {
			typ, msg = events.ComponentFailed, "connection refused (simulated)"
		}
		ev := events.NewHealthEvent(typ, "svc-1", FlappingComponent)
		ev.Message = msg
		if err := pub.Publish(ctx, ev); err != nil && ctx.Err() == nil {
			return err
		}
	}
}
