// Command jetmon is the operator's CLI for jetmon. `jetmon up` runs the whole
// pipeline in one process (see internal/pipeline): an embedded NATS JetStream
// server, the producer's ingest and a demo load, the aggregator and the alert
// manager, with a live view. `jetmon tail` follows events as they are stored,
// and `jetmon dlq` lists, retries and drops dead letters.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/natsauth"
	"github.com/jetmon/jetmon/internal/pipeline"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

const usage = `jetmon: event-driven monitoring on NATS JetStream.

Usage:
  jetmon up [flags]              run the pipeline in one process (Ctrl-C stops it)
  jetmon console [flags]         serve the web console for a NATS deployment (stateless)
  jetmon tail [flags] [PATTERN]  print events as they are stored (read-only)
  jetmon dlq list|retry|drop     inspect dead letters, publish them again, drop them
  jetmon trace [flags] ID        print one assembled trace as a waterfall (or OTLP JSON)
  jetmon traces serve [flags]    run the trace assembly runtime alone (docs/traces.md)
  jetmon streams apply [flags]   create or update the streams (as the NATS operator)
  jetmon nats-config [flags]     write a NATS server's users (one per component) and their passwords
  jetmon healthcheck [--url U]   exit 0 when U (default the local /readyz) answers 200
  jetmon types                   list the event types of the taxonomy
  jetmon help                    show this help

Run 'jetmon COMMAND --help' for the flags of a command.
`

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "up":
		return up(ctx, args[1:], stdout, stderr, env)
	case "console":
		return consoleCmd(ctx, args[1:], stderr, env)
	case "tail":
		return tail(ctx, args[1:], stdout, stderr, env)
	case "dlq":
		return dlq(ctx, args[1:], stdout, stderr, env)
	case "trace":
		return traceCmd(ctx, args[1:], stdout, stderr, env)
	case "traces":
		return tracesCmd(ctx, args[1:], stdout, stderr, env)
	case "healthcheck":
		return cli.Healthcheck(ctx, "jetmon", "JETMON", "http://127.0.0.1:9100/readyz", args[1:], stderr, env)
	case "streams":
		return streamsCmd(ctx, args[1:], stdout, stderr, env)
	case "nats-config":
		return natsConfig(args[1:], stdout, stderr, env)
	case "types":
		for _, t := range events.Types() {
			fmt.Fprintln(stdout, t)
		}
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "jetmon: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// up runs `jetmon up`: flags, then the pipeline until a signal or --duration.
func up(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("jetmon up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f upFlags
	f.register(fs)
	if code, ok := cli.Parse(fs, "JETMON", args, env, stderr); !ok {
		return code
	}
	o, err := f.options(env)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon up: %v\n", err)
		return 2
	}
	log, err := cli.NewLogger(stderr, *f.logLevel, !*f.logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon up: %v\n", err)
		return 2
	}
	o.Logger = log
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *f.duration)
		defer cancel()
	}
	if !*f.quiet {
		o.View = stdout
		if file, ok := stdout.(*os.File); ok && cli.IsTerminal(file) {
			o.ANSI = true
			// Keep the redrawn view readable: only warnings and errors
			// go to the log while it runs.
			o.Logger = log.Level(max(log.GetLevel(), zerolog.WarnLevel))
			o.Ready = func(addr net.Addr, natsURL string) {
				fmt.Fprintf(stderr, "jetmon up: http://%s  %s  (Ctrl-C stops)\n", addr, natsURL)
			}
		}
	}
	if o.Rules != "" {
		reload := make(chan struct{}, 1)
		defer cli.OnSIGHUP(ctx, func() {
			select {
			case reload <- struct{}{}:
			default: // a reload is already due
			}
		})()
		o.Reload = reload
	}
	if err := pipeline.Run(ctx, o); err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}

// upFlags are the flags of `jetmon up`.
type upFlags struct {
	rate, natsPort                                       *int
	window, traceHorizon, duration, refresh              *time.Duration
	rules, httpAddr, dataDir, natsHost                   *string
	tokenFile, grantFile, logLevel                       *string
	noGuests, natsInsecure, insecureHTTP, quiet, logJSON *bool
	natsPW                                               map[natsauth.Role]*string
}

func (f *upFlags) register(fs *flag.FlagSet) {
	f.rate = fs.Int("rate", 50, "requests per second of the demo load (3 services each); 0: no demo workload")
	f.window = fs.Duration("window", 5*time.Second, "aggregation window")
	f.traceHorizon = fs.Duration("trace-horizon", 10*time.Second, "a trace is stored once no span arrived for this long (docs/traces.md)")
	f.rules = fs.String("rules", "", "alerting rules file, reloaded on SIGHUP (default: the built-in demo rules; see examples/rules.yaml)")
	f.httpAddr = fs.String("http", "127.0.0.1:9100", "address of ingest (/v1/events), the APIs, /metrics, /healthz and /readyz")
	f.dataDir = fs.String("data-dir", ".jetmon/data", "JetStream store of the embedded server; the next start resumes from it")
	f.natsPort = fs.Int("nats-port", 4222, "also listen for NATS clients (the nats CLI) on NATS-HOST:PORT; 0: in-process only")
	f.natsHost = fs.String("nats-host", "127.0.0.1", "address of the NATS listener; beyond loopback it needs --nats-no-guests (or --nats-insecure)")
	f.noGuests = fs.Bool("nats-no-guests", false, "refuse NATS clients without credentials (by default they may publish events and read streams, never manage them)")
	f.natsInsecure = fs.Bool("nats-insecure", false, "allow guests on a NATS listener beyond loopback")
	f.natsPW = map[natsauth.Role]*string{}
	for _, r := range []natsauth.Role{natsauth.Operator, natsauth.Producer, natsauth.Reader} {
		f.natsPW[r] = fs.String("nats-"+string(r)+"-password-file", "", "file holding the password of NATS user "+string(r)+" (env JETMON_NATS_"+strings.ToUpper(string(r))+"_PASSWORD sets it too); no password: no such user")
	}
	f.tokenFile = fs.String("token-file", "", "file holding the bearer token every HTTP path but /healthz and /readyz requires (env JETMON_TOKEN sets it too)")
	f.grantFile = fs.String("grant-token-file", "", "file holding the bearer token that lets an ingest request publish the pipeline-only types: aggregated windows, monitoring control, threshold events (env JETMON_GRANT_TOKEN)")
	f.insecureHTTP = fs.Bool("insecure-http", false, "allow --http beyond loopback without a token")
	f.duration = fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C or SIGTERM)")
	f.refresh = fs.Duration("refresh", 2*time.Second, "interval of the live view")
	f.quiet = fs.Bool("quiet", false, "no live view, logs only")
	f.logLevel = fs.String("log-level", "info", "log level: debug, info, warn, error")
	f.logJSON = fs.Bool("log-json", false, "log JSON lines instead of console text")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: jetmon up [flags]

Runs the whole pipeline in one process: an embedded NATS JetStream server
(streams applied, store in --data-dir), the producer's HTTP ingest behind the
circuit breaker, a demo load (one slow operation, one flapping component), the
aggregator, the alert manager, the trace runtime (with OTLP/HTTP in) and the
web console (/console/), with a live view of the latest windows and alerts.
Ctrl-C stops it; the next start resumes from the same data dir.

Flags (each also settable as JETMON_<FLAG>, e.g. JETMON_RATE):
`)
		fs.PrintDefaults()
	}
}

// options checks the flags and reads the secrets they name; an error names
// the flag. The logger and the view are the caller's.
func (f *upFlags) options(env func(string) (string, bool)) (pipeline.Options, error) {
	switch {
	case *f.rate < 0 || *f.rate > 100_000:
		return pipeline.Options{}, fmt.Errorf("rate %d: must be between 0 and 100000 requests per second", *f.rate)
	case *f.natsPort < 0 || *f.natsPort > 65535:
		return pipeline.Options{}, fmt.Errorf("nats-port %d: must be 0 (no listener) or a TCP port", *f.natsPort)
	case *f.window <= 0:
		return pipeline.Options{}, fmt.Errorf("window %s: must be positive", *f.window)
	case *f.traceHorizon <= 0:
		return pipeline.Options{}, fmt.Errorf("trace-horizon %s: must be positive", *f.traceHorizon)
	case *f.refresh <= 0:
		return pipeline.Options{}, fmt.Errorf("refresh %s: must be positive", *f.refresh)
	case *f.duration < 0:
		return pipeline.Options{}, fmt.Errorf("duration %s: must not be negative", *f.duration)
	}
	token, err := cli.Secret(env, "JETMON_TOKEN", *f.tokenFile)
	if err != nil {
		return pipeline.Options{}, fmt.Errorf("--token-file: %w", err)
	}
	grant, err := cli.Secret(env, "JETMON_GRANT_TOKEN", *f.grantFile)
	if err != nil {
		return pipeline.Options{}, fmt.Errorf("--grant-token-file: %w", err)
	}
	access := pipeline.NATSAccess{NoGuests: *f.noGuests, Insecure: *f.natsInsecure, Passwords: map[natsauth.Role]string{}}
	for r, file := range f.natsPW {
		pw, err := cli.Secret(env, "JETMON_NATS_"+strings.ToUpper(string(r))+"_PASSWORD", *file)
		if err != nil {
			return pipeline.Options{}, fmt.Errorf("--nats-%s-password-file: %w", r, err)
		}
		if pw != "" {
			access.Passwords[r] = pw
		}
	}
	if *f.rules != "" {
		if _, err := alerting.Load(*f.rules); err != nil {
			return pipeline.Options{}, fmt.Errorf("--rules: %w", err)
		}
	}
	o := pipeline.Options{
		DataDir: *f.dataDir, NATSPort: *f.natsPort, NATSHost: *f.natsHost, NATS: access, HTTP: *f.httpAddr,
		Token: token, GrantToken: grant, InsecureHTTP: *f.insecureHTTP, Window: *f.window, Rate: *f.rate, Rules: *f.rules,
		TraceHorizon: *f.traceHorizon, ViewEvery: *f.refresh,
	}
	return o, o.Validate()
}
