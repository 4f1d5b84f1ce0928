// Command producer puts events on the bus: `producer serve` runs the HTTP
// ingest, which answers 2xx only for events JetStream has stored, and the
// health agent behind a circuit-breaking publisher; `producer loadgen`
// generates a realistic workload.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/internal/producer"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

const usage = `producer: puts events on the jetmon bus.

Usage:
  producer serve [flags]     HTTP ingest (POST /v1/events) and health agent
  producer loadgen [flags]   generate a realistic workload
  producer healthcheck       exit 0 when the local /readyz (or --url) answers 200

Run 'producer <command> --help' for the flags.
`

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, env)
	case "loadgen":
		return loadgen(ctx, args[1:], stdout, stderr, env)
	case "healthcheck":
		return cli.Healthcheck(ctx, "producer", "PRODUCER", "http://127.0.0.1:9101/readyz", args[1:], stderr, env)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "producer: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// connect opens the bus with a breaker in front; the breaker registers
// itself for the bus's asynchronous ack failures and is their only retry.
func connect(ctx context.Context, nf *cli.NATSFlags, log *zerolog.Logger, batch int, spoolDir string, reg prometheus.Registerer) (*jsbus.Bus, *breaker.Publisher, error) {
	cfg, err := nf.Config("jetmon-producer", log)
	if err != nil {
		return nil, nil, err
	}
	cfg.BatchMaxEvents = batch
	bus, err := jsbus.Connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	p, err := breaker.New(bus, breaker.Options{Name: "producer", SpoolDir: spoolDir, Logger: log, Registerer: reg})
	if err != nil {
		_ = bus.Close()
		return nil, nil, err
	}
	return bus, p, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("producer serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf cli.NATSFlags
	nf.Register(fs)
	addr := fs.String("http", "127.0.0.1:9101", "listen address of /v1/events, /healthz, /readyz and /metrics")
	tokenFile := fs.String("token-file", "", "file holding the bearer token every HTTP path but /healthz and /readyz requires (env PRODUCER_TOKEN sets it too)")
	insecureHTTP := fs.Bool("insecure-http", false, "allow --http beyond loopback without a token")
	grantFile := fs.String("grant-token-file", "", "file holding a second bearer token that may also publish the types only the pipeline emits: aggregated windows, monitoring.*, health.threshold.* (env PRODUCER_GRANT_TOKEN sets it too)")
	maxBody := fs.Int64("max-body", 4<<20, "largest request body in bytes")
	assignIDs := fs.Bool("assign-ids", false, "give events without an id or timestamp a new id and the time of receipt (retries then cannot be deduplicated)")
	healthFile := fs.String("health-config", "", "JSON file of health-check targets (http, tcp, redis, nats)")
	spoolDir := fs.String("spool-dir", "", "keep the breaker's spool on disk here (survives restarts)")
	batch := fs.Int("batch", 100, "events per JetStream message (1: no batching)")
	source := fs.String("source", "producer", "source of the health events")
	logLevel := fs.String("log-level", "info", "log level")
	logJSON := fs.Bool("log-json", false, "log JSON lines")
	if code, ok := cli.Parse(fs, "PRODUCER", args, cli.EnvWithNATSURL("PRODUCER", env), stderr); !ok {
		return code
	}
	log, err := cli.NewLogger(stderr, *logLevel, !*logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "producer serve: %v\n", err)
		return 2
	}
	token, err := cli.Secret(env, "PRODUCER_TOKEN", *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "producer serve: --token-file: %v\n", err)
		return 2
	}
	grant, err := cli.Secret(env, "PRODUCER_GRANT_TOKEN", *grantFile)
	if err != nil {
		fmt.Fprintf(stderr, "producer serve: --grant-token-file: %v\n", err)
		return 2
	}
	if err := httpd.CheckExposure(*addr, token, *insecureHTTP); err != nil {
		fmt.Fprintf(stderr, "producer serve: %v\n", err)
		return 2
	}
	var hc producer.HealthConfig
	if *healthFile != "" {
		if hc, err = producer.LoadHealthConfig(*healthFile); err != nil {
			fmt.Fprintf(stderr, "producer serve: %v\n", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg := httpd.NewRegistry()
	bus, br, err := connect(ctx, &nf, &log, *batch, *spoolDir, reg)
	if err != nil {
		log.Error().Err(err).Msg("cannot connect")
		return 1
	}
	err = producer.Serve(ctx, producer.ServeOptions{
		Bus: bus, Breaker: br, HTTP: *addr, Token: token, InsecureHTTP: *insecureHTTP, GrantToken: grant, MaxBody: *maxBody, AssignDefaults: *assignIDs, Health: hc, Source: *source,
		Env: env, Logger: log, Registry: reg,
		Ready: func(a net.Addr) { log.Info().Str("addr", a.String()).Msg("ingest listening: POST /v1/events") },
	})
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = br.WaitDrained(dctx)
	cancel()
	err = errors.Join(err, br.Close(), bus.Close())
	if err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}

func loadgen(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("producer loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf cli.NATSFlags
	nf.Register(fs)
	var o producer.LoadOptions
	fs.IntVar(&o.Rate, "rate", 1000, "requests per second")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&o.Count, "count", 0, "stop after this many requests (0: run for --duration)")
	fs.IntVar(&o.Operations, "operations", 5, "distinct operations")
	fs.IntVar(&o.Sources, "sources", 3, "distinct sources (services)")
	fs.IntVar(&o.Depth, "depth", 3, "services one request crosses (one trace, parent/child spans)")
	fs.Float64Var(&o.ErrorRate, "error-rate", 0.02, "share of failed operations")
	fs.Float64Var(&o.MedianMS, "median-ms", 20, "median latency (log-normal)")
	fs.Float64Var(&o.Sigma, "sigma", 0.8, "spread of the latency; larger makes a slower tail")
	fs.StringVar(&o.SlowOperation, "slow-operation", "", "an operation ten times slower than the rest")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress bar")
	batch := fs.Int("batch", 100, "events per JetStream message (1: no batching)")
	logLevel := fs.String("log-level", "warn", "log level")
	if code, ok := cli.Parse(fs, "PRODUCER", args, cli.EnvWithNATSURL("PRODUCER", env), stderr); !ok {
		return code
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "producer loadgen: %v\n", err)
		return 2
	}
	log, err := cli.NewLogger(stderr, *logLevel, true)
	if err != nil {
		fmt.Fprintf(stderr, "producer loadgen: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	bus, br, err := connect(ctx, &nf, &log, *batch, "", nil)
	if err != nil {
		log.Error().Err(err).Msg("cannot connect")
		return 1
	}
	rep, err := producer.LoadGen(ctx, br, o, stderr)
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = br.WaitDrained(dctx)
	_ = bus.Flush(dctx)
	cancel()
	st := br.Stats()
	_ = br.Close()
	_ = bus.Close()
	if err != nil {
		fmt.Fprintf(stderr, "producer loadgen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s; dropped %d, spooled %d\n", rep, st.Dropped, st.Spooled)
	return 0
}
