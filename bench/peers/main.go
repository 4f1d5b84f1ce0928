// Command peers measures jetmon against raw nats.go and Watermill
// (watermill-nats/v2) on one nats-server process it starts itself, and
// prints each row's events per second as a ratio to its group's baseline
// measured in the same run: publish (unbatched, batched), durable consume
// (unbatched, batched), replay, and end to end (HTTP ingest → JetStream →
// aggregator windows). Ratios are medians over -runs passes; each pass runs
// every row once, in order, so a change in the machine's load lands on
// baseline and rows alike. See docs/benchmarks.md.
//
// It lives in its own module so that jetmon's go.mod does not gain Watermill.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	n, e2eN, runs int
	clients       int
	quick         bool
	server        string // nats-server binary; "" builds it
	svg, md, json string // outputs besides the table on stdout
	cpuprofile    string // CPU profile of one row
	profileRow    string // the row cpuprofile profiles
	only          string // run only this group
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 100_000, "events per row")
	fs.IntVar(&o.e2eN, "e2e-n", 300_000, "events per end-to-end row")
	fs.IntVar(&o.clients, "e2e-clients", 4, "HTTP clients sending at once end to end (past 4, the unbatched row overflows the bus's 4,096 pending acks and the door answers 503 for some events, which fails the row)")
	fs.IntVar(&o.runs, "runs", 3, "passes over every row; ratios are medians")
	fs.BoolVar(&o.quick, "quick", false, "a smoke run: 2,000 events per row, one pass")
	fs.StringVar(&o.server, "nats-server", "", "nats-server binary (default: build "+natsServerModule+" at the version go.mod requires)")
	fs.StringVar(&o.svg, "svg", "", "write a chart of the ratios to this file")
	fs.StringVar(&o.md, "md", "", "write the table as Markdown to this file")
	fs.StringVar(&o.json, "json", "", "write every measurement as JSON to this file")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile (this process only) of the last pass of the -profile row to this file")
	fs.StringVar(&o.profileRow, "profile", "jetmon_batched_100_counted", "the row -cpuprofile profiles")
	fs.StringVar(&o.only, "only", "", "run only this group (publish, consume, replay, e2e)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.quick {
		o.n, o.e2eN, o.runs = 2000, 5000, 1
	}
	switch {
	case o.n < 1, o.e2eN < 1, o.clients < 1:
		return o, errors.New("-n, -e2e-n and -e2e-clients must be at least 1")
	case o.runs < 1:
		return o, errors.New("-runs must be at least 1")
	case o.only != "" && !slices.ContainsFunc(rows(&env{}, &env{}), func(r row) bool { return r.group == o.only }):
		return o, fmt.Errorf("-only %q: no such group (publish, consume, replay, e2e)", o.only)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "peers:", err)
		return 2
	}
	res, err := measure(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "peers:", err)
		return 1
	}
	tbl := res.table()
	fmt.Fprint(stdout, tbl.text())
	for _, w := range []struct {
		path string
		data func() ([]byte, error)
	}{
		{o.md, func() ([]byte, error) { return []byte(tbl.markdown()), nil }},
		{o.svg, func() ([]byte, error) { return []byte(tbl.svg()), nil }},
		{o.json, res.marshal},
	} {
		if w.path == "" {
			continue
		}
		data, err := w.data()
		if err == nil {
			err = os.WriteFile(w.path, data, 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "peers:", err)
			return 1
		}
	}
	return 0
}

// measure starts the server and runs every row o.runs times.
func measure(ctx context.Context, o options, stderr io.Writer) (*results, error) {
	bin := o.server
	if bin == "" {
		dir, err := os.MkdirTemp("", "jetmon-peers-bin-*")
		if err != nil {
			return nil, err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		if bin, err = buildServer(ctx, dir, stderr); err != nil {
			return nil, err
		}
	}
	srv, err := startServer(ctx, bin)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	res := &results{Runs: o.runs, N: o.n, E2EN: o.e2eN, CPUs: runtime.NumCPU(), Start: time.Now().UTC()}
	res.LoadBefore = loadAverage()
	e := &env{url: srv.url, n: o.n, srv: srv}
	e2e := &env{url: srv.url, n: o.e2eN, srv: srv, clients: o.clients}
	for pass := range o.runs {
		for _, r := range rows(e, e2e) {
			if o.only != "" && r.group != o.only {
				continue
			}
			var stopProfile func()
			if o.cpuprofile != "" && pass == o.runs-1 && r.name == o.profileRow {
				if stopProfile, err = startProfile(o.cpuprofile); err != nil {
					return nil, err
				}
			}
			rates, err := r.run(ctx)
			if stopProfile != nil {
				stopProfile()
			}
			if err != nil {
				return nil, fmt.Errorf("pass %d, %s/%s: %w", pass+1, r.group, r.name, err)
			}
			n, cpu := e.n, e.cpu
			if r.group == "e2e" {
				n, cpu = e2e.n, e2e.cpu
			}
			for i, rate := range rates {
				name := r.name
				if i > 0 {
					name = r.extra
				}
				res.add(pass, r.group, name, r.baseline && i == 0, r.about, rate,
					float64(cpu.client.Microseconds())/float64(n), float64(cpu.server.Microseconds())/float64(n))
				fmt.Fprintf(stderr, "pass %d  %-8s %-44s %12.0f events/s\n", pass+1, r.group, name, rate)
			}
		}
	}
	res.LoadAfter = loadAverage()
	return res, nil
}

func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// loadAverage is the machine's 1-minute load average, as /proc says.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil || len(b) == 0 {
		return "unknown"
	}
	var one string
	_, _ = fmt.Sscan(string(b), &one)
	return one
}

// row is one measurement; a row with extra returns a second rate under
// that name.
type row struct {
	group, name, extra string
	baseline           bool
	about              string
	run                func(context.Context) ([]float64, error)
}

func one(f func(context.Context) (float64, error)) func(context.Context) ([]float64, error) {
	return func(ctx context.Context) ([]float64, error) {
		r, err := f(ctx)
		return []float64{r}, err
	}
}

func two(f func(context.Context) (float64, float64, error)) func(context.Context) ([]float64, error) {
	return func(ctx context.Context) ([]float64, error) {
		a, b, err := f(ctx)
		return []float64{a, b}, err
	}
}

// rows lists every row in the order a pass runs them; the first of each
// group is its baseline.
func rows(e, e2e *env) []row {
	return []row{
		{
			group: "publish", name: "raw_publish_async", baseline: true, run: one(e.rawPublish),
			about: "raw nats.go PublishMsgAsync, Nats-Msg-Id, the bus's bytes and headers (jsbus.NewMsg), event built and encoded in the loop",
		},
		{group: "publish", name: "jetmon_unbatched", run: one(e.jetmonPublish(0)), about: "Bus.Publish, async, one event per message"},
		{group: "publish", name: "jetmon_batched_100", run: one(e.jetmonPublish(100)), about: "Bus.Publish, BatchMaxEvents 100 (events/s)"},
		{group: "publish", name: "watermill_64_goroutines", run: one(e.watermillPublish), about: "watermill-nats/v2 pkg/nats publisher, JetStream, TrackMsgId, 64 goroutines"},

		{
			group: "consume", name: "raw_durable_ack_each", baseline: true, run: one(e.rawConsume(false)),
			about: "raw nats.go durable pull consumer, jetmon's consumer settings, default Consume options, ack each, no decoding",
		},
		{group: "consume", name: "raw_durable_decode_ack_each", run: one(e.rawConsume(true)), about: "the same, decoding each event (the work jetmon does)"},
		{group: "consume", name: "jetmon_durable", run: one(e.jetmonSubscribe(0)), about: "durable Subscribe: decode, handler, ack each"},
		{group: "consume", name: "jetmon_durable_batched_100", run: one(e.jetmonSubscribe(100)), about: "durable Subscribe over batch messages of 100 events (events/s)"},
		{group: "consume", name: "watermill_durable", run: one(e.watermillSubscribe(true)), about: "watermill-nats/v2 pkg/nats durable JetStream subscriber, decode and ack each"},

		{group: "replay", name: "raw_ordered", baseline: true, run: one(e.rawOrdered), about: "raw nats.go ordered consumer, no decoding"},
		{group: "replay", name: "jetmon_replay", run: one(e.jetmonReplay), about: "Bus.Replay: ordered consumer, decode, handler"},
		{group: "replay", name: "watermill_ephemeral_from_start", run: one(e.watermillSubscribe(false)), about: "Watermill has no replay: its ephemeral subscriber from the first message, decode and ack each"},

		{
			group: "e2e", name: "jetmon_unbatched_counted", extra: "jetmon_unbatched_windows_stored", baseline: true, run: two(e2e.endToEnd(0)),
			about: "HTTP NDJSON ingest → JetStream, one event per message → aggregator; to every event counted / every window stored",
		},
		{
			group: "e2e", name: "jetmon_batched_100_counted", extra: "jetmon_batched_100_windows_stored", run: two(e2e.endToEnd(100)),
			about: "the same with BatchMaxEvents 100",
		},
	}
}
