// Command aggregator aggregates performance events into windows per series
// and publishes performance.metric.aggregated events. See pkg/aggregator.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/windowing"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)) }

// common are the flags of every subcommand.
type common struct {
	nats     cli.NATSFlags
	logLevel string
	logJSON  bool
}

func (c *common) register(fs *flag.FlagSet) {
	c.nats.Register(fs)
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.logJSON, "log-json", false, "log JSON lines instead of console text")
}

func (c *common) connect(ctx context.Context, log *zerolog.Logger) (*jsbus.Bus, error) {
	return c.nats.Connect(ctx, "jetmon-aggregator", log)
}

// envLookup adds NATS_URL as a fallback for AGGREGATOR_NATS_URL.
func envLookup(env func(string) (string, bool)) func(string) (string, bool) {
	return cli.EnvWithNATSURL("AGGREGATOR", env)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) > 0 && args[0] == "replay" {
		return replay(ctx, args[1:], stdout, stderr, env)
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		return cli.Healthcheck(ctx, "aggregator", "AGGREGATOR", "http://127.0.0.1:9102/readyz", args[1:], stderr, env)
	}
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	d := aggregator.DefaultOptions()
	name := fs.String("name", d.Name, "durable consumer name (prefix, with --partitions); without --partitions run one instance per name")
	window := fs.Duration("window", d.Window, "tumbling window length")
	lateness := fs.Duration("lateness", d.Lateness, "how long after its end a window still takes events")
	maxSeries := fs.Int("max-series-per-source", d.MaxSeriesPerSource, "series per source before new ones go to the source's overflow series")
	maxSeriesTotal := fs.Int("max-series", d.MaxSeries, "series of this instance (all its partitions) before new ones go to the global overflow series")
	seriesTTL := fs.Duration("series-ttl", d.SeriesTTL, "a series without open windows and events for this long is forgotten, with its metrics")
	maxFutureSkew := fs.Duration("max-future-skew", d.MaxFutureSkew, "events timestamped further ahead of the clock are dead-lettered")
	dedupWindow := fs.Duration("dedup-window", d.DedupWindow, "an event sent again (same source and id) within this long counts once (negative: off)")
	maxDedupIDs := fs.Int("max-dedup-ids", d.MaxDedupIDs, "event ids remembered per partition for --dedup-window (about 40 bytes each)")
	idleAfter := fs.Duration("idle-after", 0, "a source quiet this long has its windows closed by the clock (default the lateness, at least 1s)")
	stallAfter := fs.Duration("stall-after", 0, "/readyz fails when a consumer with work makes no progress this long (default 2×(window+lateness+idle-after), at least 1m)")
	fromBeginning := fs.Bool("from-beginning", false, "a new consumer starts at the oldest stored event")
	partitions := fs.Int("partitions", 0, "scale out over this many partitions (0: one consumer, one instance); every instance must agree")
	instance := fs.String("instance", "", "this instance's name among its peers (default host-pid)")
	memberTTL := fs.Duration("member-ttl", 0, "an instance that stopped announcing itself counts as alive this long (default 15s; partitioned mode)")
	httpAddr := fs.String("http", "127.0.0.1:9102", "address of /healthz, /readyz, /metrics and /api/v1 (empty: off)")
	tokenFile := fs.String("http-token-file", "", "file holding the bearer token every HTTP path but /healthz and /readyz requires (env AGGREGATOR_HTTP_TOKEN sets it too)")
	insecureHTTP := fs.Bool("insecure-http", false, "allow --http beyond loopback without a token")
	profiles := fs.Bool("pprof", false, "also serve Go's profiles (goroutines, heap, CPU) at /debug/pprof/ on --http")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: aggregator [run] [flags]\n       aggregator replay --from TIME [--to TIME] [flags]\n       aggregator healthcheck [--url URL]\n\nAggregates performance events per series (type, source, operation) and window.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, "AGGREGATOR", args, envLookup(env), stderr); !ok {
		return code
	}
	switch {
	case *window <= 0:
		fmt.Fprintf(stderr, "aggregator: window %s: must be positive\n", *window)
		return 2
	case *lateness < 0:
		fmt.Fprintf(stderr, "aggregator: lateness %s: must not be negative\n", *lateness)
		return 2
	}
	if err := (aggregator.Options{
		Bus: nil, Window: *window, Lateness: *lateness, MaxSeriesPerSource: *maxSeries, MaxSeries: *maxSeriesTotal, SeriesTTL: *seriesTTL,
		MaxFutureSkew: *maxFutureSkew, DedupWindow: *dedupWindow, MaxDedupIDs: *maxDedupIDs, IdleAfter: *idleAfter, StallAfter: *stallAfter,
		Partitions: *partitions,
	}).Validate(); err != nil {
		fmt.Fprintf(stderr, "aggregator: %v\n", err)
		return 2
	}
	token, err := cli.Secret(env, "AGGREGATOR_HTTP_TOKEN", *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "aggregator: --http-token-file: %v\n", err)
		return 2
	}
	if err := httpd.CheckExposure(*httpAddr, token, *insecureHTTP); err != nil {
		fmt.Fprintf(stderr, "aggregator: %v\n", err)
		return 2
	}
	log, err := cli.NewLogger(stderr, c.logLevel, !c.logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "aggregator: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	bus, err := c.connect(ctx, &log)
	if err != nil {
		log.Error().Err(err).Msg("cannot connect")
		return 1
	}
	defer func() { _ = bus.Close() }()
	reg := httpd.NewRegistry()
	svc, err := aggregator.New(aggregator.Options{
		Bus: bus, Name: *name, Window: *window, Lateness: *lateness, MaxSeriesPerSource: *maxSeries,
		MaxSeries: *maxSeriesTotal, SeriesTTL: *seriesTTL, MaxFutureSkew: *maxFutureSkew, DedupWindow: *dedupWindow, MaxDedupIDs: *maxDedupIDs,
		IdleAfter: *idleAfter, StallAfter: *stallAfter, FromBeginning: *fromBeginning, Partitions: *partitions, Instance: *instance, MemberTTL: *memberTTL, Logger: &log, Registerer: reg,
	})
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	mux := httpd.Mux(reg)
	svc.Mount(mux)
	if *profiles {
		httpd.MountProfiles(mux)
	}
	runErr := httpd.ServeWhile(ctx, *httpAddr, httpd.ForAddr(*httpAddr, token).Wrap(mux), func(a net.Addr) { log.Info().Str("addr", a.String()).Msg("http listening") }, svc.Run)
	if runErr != nil {
		log.Error().Err(runErr).Msg("stopped with an error")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}

func replay(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("aggregator replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	from := fs.String("from", "", "start of the range, RFC 3339 (required)")
	to := fs.String("to", "", "end of the range, RFC 3339 (default: the last stored event)")
	window := fs.Duration("window", windowing.DefaultWindow, "tumbling window length")
	output := fs.String("output", "-", "NDJSON file of the recomputed windows (- for stdout)")
	subject := fs.String("subject", "", "also publish each window (core NATS) on SUBJECT.<source>")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: aggregator replay --from TIME [--to TIME] [flags]\n\nRecomputes the windows of a time range from the stored events, without\ntouching live consumers, and writes them as NDJSON.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, "AGGREGATOR", args, envLookup(env), stderr); !ok {
		return code
	}
	var o jsbus.ReplayOptions
	var err error
	if *from == "" {
		fmt.Fprintln(stderr, "aggregator replay: --from is required")
		return 2
	}
	if o.From, err = time.Parse(time.RFC3339Nano, *from); err != nil {
		fmt.Fprintf(stderr, "aggregator replay: --from %q: not an RFC 3339 time\n", *from)
		return 2
	}
	if *to != "" {
		if o.To, err = time.Parse(time.RFC3339Nano, *to); err != nil {
			fmt.Fprintf(stderr, "aggregator replay: --to %q: not an RFC 3339 time\n", *to)
			return 2
		}
	}
	log, err := cli.NewLogger(stderr, c.logLevel, !c.logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "aggregator replay: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := stdout
	if *output != "-" {
		f, err := os.Create(*output)
		if err != nil {
			fmt.Fprintf(stderr, "aggregator replay: --output: %v\n", err)
			return 1
		}
		defer func() { _ = f.Close() }()
		out = f
	}
	bus, err := c.connect(ctx, &log)
	if err != nil {
		log.Error().Err(err).Msg("cannot connect")
		return 1
	}
	defer func() { _ = bus.Close() }()
	agg := windowing.New(windowing.Options{Window: *window, Lateness: time.Nanosecond})
	enc := json.NewEncoder(out)
	written := 0
	write := func(ws []*events.AggregateEvent) error {
		for _, w := range ws {
			if err := enc.Encode(w); err != nil {
				return err
			}
			if *subject != "" {
				data, _ := events.Marshal(w)
				if err := bus.Conn().Publish(*subject+"."+events.SubjectToken(w.Source), data); err != nil {
					return err
				}
			}
			written++
		}
		return nil
	}
	bar := cli.NewProgress(stderr, "replay", *quiet)
	started, msgs := time.Now(), 0
	var stream string
	var seq, last uint64
	detail := func() string {
		return fmt.Sprintf("%-12s %d/%d  %.0f msg/s", stream, seq, last, float64(msgs)/max(time.Since(started).Seconds(), 1e-9))
	}
	o.Progress = func(s string, n, l uint64) {
		stream, seq, last = s, n, l
		msgs++
		if bar.Due() {
			bar.Draw(float64(seq)/float64(max(last, 1)), detail())
		}
	}
	var werr error
	st, err := bus.Replay(ctx, "performance.>", o, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		agg.Add(ev)
		if werr == nil {
			werr = write(agg.Closed())
		}
		return werr
	}))
	bar.Done(float64(seq)/float64(max(last, 1)), detail())
	if err == nil {
		err = write(agg.Flush())
	}
	if err != nil {
		log.Error().Err(err).Msg("replay failed")
		return 1
	}
	log.Info().Uint64("messages", st.Messages).Uint64("events", st.Events).Int("windows", written).Msg("replayed")
	return 0
}
