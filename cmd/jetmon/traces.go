package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/otlp"
	"github.com/jetmon/jetmon/pkg/trace"
	"github.com/jetmon/jetmon/pkg/tracing"
)

// traceCmd is `jetmon trace ID`: fetch one trace from the API and print it
// as a waterfall (or as JSON / OTLP JSON).
func traceCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("jetmon trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9100", "base URL of the trace API (jetmon up, or jetmon traces serve)")
	tokenFile := fs.String("token-file", "", "file holding the API's bearer token (env JETMON_TOKEN sets it too)")
	format := fs.String("format", "waterfall", "waterfall, json (the API's shape) or otlp (OTLP/JSON, for other trace viewers)")
	width := fs.Int("width", 60, "columns of the waterfall's bars")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the API")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: jetmon trace [flags] TRACE_ID

Prints one assembled trace: a waterfall of its spans (service, name, offset,
duration, self time; * marks the critical path, ! an error), then its
critical path. The trace id is 32 lowercase hex digits.

Flags (each also settable as JETMON_<FLAG>):
`)
		fs.PrintDefaults()
	}
	if err := cli.ParseWithEnv(fs, "JETMON", args, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "jetmon trace: %v\n", err)
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "jetmon trace: one trace id expected, got %d arguments\n", fs.NArg())
		return 2
	}
	id, err := events.ParseTraceID(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "jetmon trace: trace id %.80q: must be 32 lowercase hex digits, not all zero\n", fs.Arg(0))
		return 2
	}
	if *format != "waterfall" && *format != "json" && *format != "otlp" {
		fmt.Fprintf(stderr, "jetmon trace: --format %q: must be waterfall, json or otlp\n", *format)
		return 2
	}
	if *width < 10 || *width > 1000 {
		fmt.Fprintf(stderr, "jetmon trace: --width %d: must be between 10 and 1000\n", *width)
		return 2
	}
	token, err := cli.Secret(env, "JETMON_TOKEN", *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon trace: --token-file: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	q := ""
	if *format == "otlp" {
		q = "?format=otlp"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*url, "/")+"/api/v1/traces/"+id.String()+q, nil)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon trace: --url %q: %v\n", *url, err)
		return 2
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon trace: %v\n", err)
		return 1
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		fmt.Fprintf(stderr, "jetmon trace: reading the answer: %v\n", err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "jetmon trace: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		if resp.StatusCode == http.StatusNotFound {
			return 3
		}
		return 1
	}
	if *format != "waterfall" {
		_, _ = stdout.Write(body)
		return 0
	}
	var v trace.View
	if err := json.Unmarshal(body, &v); err != nil {
		fmt.Fprintf(stderr, "jetmon trace: the answer is not a trace: %v\n", err)
		return 1
	}
	Waterfall(stdout, v, *width)
	return 0
}

// Waterfall prints v as a terminal waterfall, width columns of bars.
func Waterfall(w io.Writer, v trace.View, width int) {
	fmt.Fprintf(w, "trace %s  %s  %.3f ms  %d spans  %d errors\n", v.TraceID, v.Start.Format(time.RFC3339Nano), v.DurationMS, v.SpanCount, v.ErrorCount)
	label := 0
	labels := make([]string, len(v.Spans))
	for i, s := range v.Spans {
		labels[i] = strings.Repeat("  ", min(s.Depth, 20)) + s.Service + " " + s.Name
		if r := []rune(labels[i]); len(r) > 60 {
			labels[i] = string(r[:59]) + "…"
		}
		label = max(label, len([]rune(labels[i])))
	}
	total := max(v.DurationMS, 1e-9)
	for i, s := range v.Spans {
		a := int(math.Floor(s.OffsetMS / total * float64(width)))
		b := max(int(math.Ceil((s.OffsetMS+s.DurationMS)/total*float64(width))), a+1)
		a, b = min(max(a, 0), width-1), min(b, width)
		bar := strings.Repeat(" ", a) + strings.Repeat("█", b-a) + strings.Repeat(" ", width-b)
		mark := " "
		if s.CriticalMS > 0 {
			mark = "*"
		}
		if s.Error {
			mark += "!"
		} else {
			mark += " "
		}
		fmt.Fprintf(w, "%s %-*s |%s| %9.3f ms +%.3f self %.3f\n", mark, label, labels[i], bar, s.DurationMS, s.OffsetMS, s.SelfMS)
	}
	fmt.Fprint(w, "critical path:")
	for _, c := range v.CriticalPath {
		name := "(gap)"
		if c.Index >= 0 {
			name = c.Service + " " + c.Name
		}
		fmt.Fprintf(w, " %s %.3f ms;", name, c.DurationMS)
	}
	fmt.Fprintln(w)
}

// tracesCmd is `jetmon traces serve`: the trace runtime as its own daemon.
func tracesCmd(ctx context.Context, args []string, _, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(stderr, "Usage: jetmon traces serve [flags]   (jetmon traces serve --help for the flags)")
		return 2
	}
	fs := flag.NewFlagSet("jetmon traces serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf cli.NATSFlags
	nf.Register(fs)
	d := tracing.DefaultOptions()
	name := fs.String("name", d.Name, "durable consumer name (Name-p<i> with --partitions)")
	horizon := fs.Duration("horizon", d.Assembly.Horizon, "a trace is stored once no span arrived for this long; later spans merge into it")
	maxOpen := fs.Int("max-open", d.Assembly.MaxOpen, "traces held open at once; past it the idlest is stored early (counted)")
	maxSpans := fs.Int("max-spans", d.Assembly.MaxSpans, "spans per open trace; further spans are dropped (counted)")
	partitions := fs.Int("partitions", 0, "split traces by trace id between this many instances (0 or 1: one)")
	partition := fs.Int("partition", 0, "this instance's partition, from 0 to --partitions - 1")
	retention := fs.Duration("retention", d.Retention, "how long stored traces are kept")
	maxRecovery := fs.Duration("max-recovery", d.MaxRecovery, "how far back a restart replays the streams to rebuild the traces open at the last stop")
	fromBeginning := fs.Bool("from-beginning", false, "a new consumer starts at the oldest stored event (assembles the history) instead of with new ones")
	window := fs.Duration("window", d.Analysis.Window, "window of the dependency map and bottlenecks")
	otlpDoor := fs.Bool("otlp", false, "also take OTLP/HTTP exports on POST /v1/traces (stored as performance events)")
	httpAddr := fs.String("http", "127.0.0.1:9104", "address of the trace API, /healthz, /readyz and /metrics")
	tokenFile := fs.String("http-token-file", "", "file holding the bearer token every HTTP path but /healthz and /readyz requires (env JETMON_HTTP_TOKEN sets it too)")
	insecureHTTP := fs.Bool("insecure-http", false, "allow --http beyond loopback without a token")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of console text")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: jetmon traces serve [flags]

Runs the trace assembly runtime (docs/traces.md): consumes every event
family, assembles traces by trace id, stores them in the TRACES stream and
serves the trace API (/api/v1/traces, /api/v1/dependencies,
/api/v1/bottlenecks). SIGTERM stores the open traces and stops.

Flags (each also settable as JETMON_<FLAG>; NATS_URL works too):
`)
		fs.PrintDefaults()
	}
	if err := cli.ParseWithEnv(fs, "JETMON", args[1:], cli.EnvWithNATSURL("JETMON", env)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "jetmon traces serve: %v\n", err)
		return 2
	}
	o := d
	o.Name, o.Partitions, o.Partition, o.Retention, o.FromBeginning, o.MaxRecovery = *name, *partitions, *partition, *retention, *fromBeginning, *maxRecovery
	o.Assembly.Horizon, o.Assembly.MaxOpen, o.Assembly.MaxSpans, o.Analysis.Window = *horizon, *maxOpen, *maxSpans, *window
	check := o
	check.Bus = &jsbus.Bus{} // checks the flags before connecting
	if err := check.Validate(); err != nil {
		fmt.Fprintf(stderr, "jetmon traces serve: %v\n", err)
		return 2
	}
	token, err := cli.Secret(env, "JETMON_HTTP_TOKEN", *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon traces serve: --http-token-file: %v\n", err)
		return 2
	}
	if err := httpd.CheckExposure(*httpAddr, token, *insecureHTTP); err != nil {
		fmt.Fprintf(stderr, "jetmon traces serve: %v\n", err)
		return 2
	}
	log, err := cli.NewLogger(stderr, *logLevel, !*logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon traces serve: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	bus, err := nf.Connect(ctx, "jetmon-traces", &log)
	if err != nil {
		log.Error().Err(err).Msg("cannot connect")
		return 1
	}
	defer func() { _ = bus.Close() }()
	reg := httpd.NewRegistry()
	o.Bus, o.Logger, o.Registerer = bus, &log, reg
	svc, err := tracing.New(o)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	mux := httpd.Mux(reg)
	svc.Mount(mux)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !svc.Ready() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if *otlpDoor {
		door, err := otlp.New(otlp.Options{Publisher: bus})
		if err != nil {
			log.Error().Err(err).Msg("cannot start the OTLP door")
			return 1
		}
		door.Mount(mux)
	}
	runErr := httpd.ServeWhile(ctx, *httpAddr, httpd.ForAddr(*httpAddr, token).Wrap(mux),
		func(a net.Addr) { log.Info().Str("addr", a.String()).Msg("http listening") }, svc.Run)
	if runErr != nil {
		log.Error().Err(runErr).Msg("stopped with an error")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}
