package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// opFlags are the flags every command that talks to a running deployment
// shares: the NATS connection, and how long to wait for it.
type opFlags struct {
	nats    cli.NATSFlags
	timeout time.Duration
}

func (o *opFlags) register(fs *flag.FlagSet) {
	o.nats.Register(fs)
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up connecting (and on each request) after this long")
}

// parseOp parses the flags of an operator command; ok is false when the
// command is done (help shown, or a usage error reported with exit code 2).
func parseOp(fs *flag.FlagSet, args []string, stderr io.Writer, env func(string) (string, bool)) (code int, ok bool) {
	return cli.Parse(fs, "JETMON", args, cli.EnvWithNATSURL("JETMON", env), stderr)
}

// connect opens the bus of an operator command: it never creates or
// changes streams, and logs only errors.
func (o *opFlags) connect(ctx context.Context, name string, stderr io.Writer) (*jsbus.Bus, error) {
	log := zerolog.New(stderr).Level(zerolog.ErrorLevel)
	cfg, err := o.nats.Config(name, &log)
	if err != nil {
		return nil, err
	}
	cfg.SkipStreams = true
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return jsbus.Connect(ctx, cfg)
}

func tail(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("jetmon tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of opFlags
	of.register(fs)
	since := fs.Duration("since", 0, "start with the events stored this long ago (e.g. 10m); 0: only new ones")
	all := fs.Bool("all", false, "start at the beginning of the streams")
	asJSON := fs.Bool("json", false, "print each event in its wire form (JSON lines)")
	count := fs.Int("count", 0, "stop after this many events (0: run until Ctrl-C)")
	source := fs.String("source", "", "only the events of this source (service)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: jetmon tail [flags] [PATTERN]

Prints the events matching PATTERN (default ">", everything; e.g.
"performance.>", "health.component.failed") as they are stored. It reads
with ordered consumers: nothing is acknowledged or dead-lettered, and the
pipeline's consumers see no difference. Undecodable messages are reported
on stderr.

Flags (each also settable as JETMON_<FLAG>; NATS_URL works too):
`)
		fs.PrintDefaults()
	}
	if code, ok := parseOp(fs, args, stderr, env); !ok {
		return code
	}
	pattern := ">"
	switch fs.NArg() {
	case 0:
	case 1:
		pattern = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "jetmon tail: one pattern, got %q\n", fs.Args())
		return 2
	}
	if err := events.ValidatePattern(pattern); err != nil {
		fmt.Fprintf(stderr, "jetmon tail: %v\n", err)
		return 2
	}
	if *since < 0 || *count < 0 {
		fmt.Fprintf(stderr, "jetmon tail: --since and --count must not be negative\n")
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	bus, err := of.connect(ctx, "jetmon-tail", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon tail: %v\n", err)
		return 1
	}
	defer func() { _ = bus.Close() }()
	o := jsbus.FollowOptions{All: *all}
	if *since > 0 {
		o.From = time.Now().Add(-*since)
	}
	o.Undecodable = func(subject string, seq uint64, _ []byte, err error) {
		fmt.Fprintf(stderr, "jetmon tail: %s #%d: undecodable: %v\n", subject, seq, err)
	}
	errEnough := errors.New("--count events printed")
	printed := 0
	var buf []byte
	err = bus.Follow(ctx, pattern, o, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		if *count > 0 && printed >= *count {
			return errEnough // the rest of a batch
		}
		if *source != "" && ev.Metadata().Source != *source {
			return nil
		}
		if *asJSON {
			buf = append(ev.AppendJSON(buf[:0]), '\n')
		} else {
			buf = append(appendSummary(buf[:0], ev), '\n')
		}
		if _, err := stdout.Write(buf); err != nil {
			return err
		}
		if printed++; *count > 0 && printed >= *count {
			return errEnough
		}
		return nil
	}))
	if err != nil && !errors.Is(err, errEnough) {
		fmt.Fprintf(stderr, "jetmon tail: %v\n", err)
		return 1
	}
	return 0
}

// appendSummary appends one human-readable line about ev: time, type,
// source, then the fields that say what happened.
func appendSummary(dst []byte, ev events.Event) []byte {
	m := ev.Metadata()
	dst = m.Timestamp.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	dst = append(dst, "  "...)
	dst = append(dst, m.Type...)
	dst = append(dst, "  "...)
	dst = append(dst, m.Source...)
	kv := func(k, v string) {
		if v != "" {
			dst = append(dst, ' ', ' ')
			dst = append(dst, k...)
			dst = append(dst, '=')
			dst = strconv.AppendQuote(dst, v)
		}
	}
	num := func(k string, v float64, unit string) {
		dst = append(dst, ' ', ' ')
		dst = append(dst, k...)
		dst = append(dst, '=')
		dst = strconv.AppendFloat(dst, math.Round(v*1000)/1000, 'f', -1, 64) // to the µs for ms
		dst = append(dst, unit...)
	}
	switch e := ev.(type) {
	case *events.PerformanceEvent:
		kv("operation", e.Operation)
		kv("phase", e.Phase)
		if e.DurationMS != 0 || strings.HasSuffix(string(m.Type), ".end") || strings.HasPrefix(string(m.Type), "performance.operation.") {
			num("duration", e.DurationMS, "ms")
		}
		kv("metric", e.Metric)
		if e.Metric != "" {
			num("value", e.Value, e.Unit)
		}
		kv("resource", e.Resource)
		kv("status", e.Status)
		kv("error", e.Error)
	case *events.AggregateEvent:
		kv("series", e.Operation+e.Metric)
		dst = append(dst, "  window="...)
		dst = e.WindowStart.UTC().AppendFormat(dst, "15:04:05")
		dst = append(dst, '+')
		dst = append(dst, e.WindowEnd.Sub(e.WindowStart).String()...)
		num("count", float64(e.Count), "")
		num("errors", float64(e.ErrorCount), "")
		num("p50", e.P50, "")
		num("p95", e.P95, "")
		num("p99", e.P99, "")
	case *events.HealthEvent:
		kv("component", e.Component)
		kv("status", e.Status)
		kv("metric", e.Metric)
		if e.Metric != "" {
			num("value", e.Value, "")
			num("threshold", e.Threshold, "")
		}
		kv("message", e.Message)
	case *events.ControlEvent:
		kv("mode", e.Mode)
		if m.Type == events.MonitoringSampled {
			num("sample_rate", e.SampleRate, "")
		}
		kv("scope", e.Scope)
		kv("reason", e.Reason)
		for _, k := range slices.Sorted(maps.Keys(e.Config)) {
			kv("config."+k, e.Config[k])
		}
	case *events.ValidationEvent:
		kv("field", e.FieldPath)
		kv("status", e.Status)
		kv("message", e.Message)
		if len(e.Errors) > 0 {
			kv("errors", strings.Join(e.Errors, "; "))
		}
	case *events.SystemEvent:
		kv("component", e.Component)
		kv("error", e.Error)
		kv("message", e.Message)
	}
	return dst
}

const dlqUsage = `Usage: jetmon dlq list|retry|drop [flags] [ARGS]

Dead letters are the messages consumers gave up on (undecodable, or their
handler kept failing), kept in the DEADLETTER stream with the reason.

  jetmon dlq list [PATTERN]        the dead letters whose event type matches
                                   PATTERN (default ">"), oldest first
  jetmon dlq retry SEQ...          publish them again to their event subject
  jetmon dlq retry --all [PATTERN] (<type>.<source>), then remove them
                                   (payloads that do not decode are refused)
  jetmon dlq drop SEQ...           remove them for good
  jetmon dlq drop --all PATTERN

Run 'jetmon dlq list --help' for the flags.
`

func dlq(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return 2
	}
	switch args[0] {
	case "list":
		return dlqList(ctx, args[1:], stdout, stderr, env)
	case "retry", "drop":
		return dlqAct(ctx, args[0], args[1:], stdout, stderr, env)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return 0
	}
	fmt.Fprintf(stderr, "jetmon dlq: unknown command %q\n\n%s", args[0], dlqUsage)
	return 2
}

// deadLetterJSON is the --json form of a dead letter.
type deadLetterJSON struct {
	Seq         uint64    `json:"seq"`
	Stored      time.Time `json:"stored"`
	Subject     string    `json:"subject"`
	Stream      string    `json:"stream"`
	OriginalSeq uint64    `json:"original_seq"`
	Deliveries  uint64    `json:"deliveries"`
	BatchIndex  int       `json:"batch_index"`
	Reason      string    `json:"reason"`
	Data        string    `json:"data"`
}

func dlqList(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("jetmon dlq list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of opFlags
	of.register(fs)
	limit := fs.Int("limit", 100, "show at most this many (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object per dead letter, with the whole payload")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags (each also settable as JETMON_<FLAG>; NATS_URL works too):\n", dlqUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseOp(fs, args, stderr, env); !ok {
		return code
	}
	pattern, code := onePattern(fs, stderr)
	if code != 0 {
		return code
	}
	if *limit < 0 {
		fmt.Fprintf(stderr, "jetmon dlq list: --limit %d must not be negative\n", *limit)
		return 2
	}
	bus, err := of.connect(ctx, "jetmon-dlq", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon dlq list: %v\n", err)
		return 1
	}
	defer func() { _ = bus.Close() }()
	rctx, cancel := context.WithTimeout(ctx, of.timeout)
	defer cancel()
	dls, err := bus.DeadLetters(rctx, pattern, *limit)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon dlq list: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, d := range dls {
			_ = enc.Encode(deadLetterJSON{
				Seq: d.Seq, Stored: d.Stored.UTC(), Subject: d.Subject, Stream: d.Stream, OriginalSeq: d.OriginalSeq,
				Deliveries: d.Deliveries, BatchIndex: d.BatchIndex, Reason: d.Reason, Data: string(d.Data),
			})
		}
		return 0
	}
	if len(dls) == 0 {
		fmt.Fprintf(stdout, "no dead letters match %q\n", pattern)
		return 0
	}
	fmt.Fprintf(stdout, "%-6s  %-20s  %-40s  %-5s  %s\n", "SEQ", "STORED", "SUBJECT", "TRIES", "REASON")
	for _, d := range dls {
		subject := d.Subject
		if d.BatchIndex >= 0 {
			subject += "[" + strconv.Itoa(d.BatchIndex) + "]"
		}
		fmt.Fprintf(stdout, "%-6d  %-20s  %-40s  %-5d  %s\n", d.Seq, d.Stored.UTC().Format("2006-01-02T15:04:05Z"), subject, d.Deliveries, oneLine(d.Reason, 120))
	}
	return 0
}

func dlqAct(ctx context.Context, verb string, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	name := "jetmon dlq " + verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of opFlags
	of.register(fs)
	all := fs.Bool("all", false, "every dead letter matching the PATTERN argument (retry: default \">\")")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags (each also settable as JETMON_<FLAG>; NATS_URL works too):\n", dlqUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseOp(fs, args, stderr, env); !ok {
		return code
	}
	var seqs []uint64
	pattern := ">"
	switch {
	case *all && verb == "drop" && fs.NArg() != 1:
		fmt.Fprintf(stderr, "%s --all: name the PATTERN to drop (\">\" for every dead letter)\n", name)
		return 2
	case *all:
		var code int
		if pattern, code = onePattern(fs, stderr); code != 0 {
			return code
		}
	case fs.NArg() == 0:
		fmt.Fprintf(stderr, "%s: give the SEQ numbers (see jetmon dlq list) or --all\n", name)
		return 2
	default:
		for _, a := range fs.Args() {
			seq, err := strconv.ParseUint(a, 10, 64)
			if err != nil || seq == 0 {
				fmt.Fprintf(stderr, "%s: %q is not a dead letter's SEQ (a positive number from jetmon dlq list)\n", name, a)
				return 2
			}
			seqs = append(seqs, seq)
		}
	}
	bus, err := of.connect(ctx, "jetmon-dlq", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	defer func() { _ = bus.Close() }()
	if *all {
		rctx, cancel := context.WithTimeout(ctx, of.timeout)
		dls, err := bus.DeadLetters(rctx, pattern, 0)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		for _, d := range dls {
			seqs = append(seqs, d.Seq)
		}
	}
	act := bus.RetryDeadLetter
	if verb == "drop" {
		act = bus.DropDeadLetter
	}
	failed := 0
	for _, seq := range seqs {
		rctx, cancel := context.WithTimeout(ctx, of.timeout)
		err := act(rctx, seq)
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
	}
	past := map[string]string{"retry": "retried", "drop": "dropped"}[verb]
	fmt.Fprintf(stdout, "%s %d of %d dead letters\n", past, len(seqs)-failed, len(seqs))
	if failed > 0 {
		return 1
	}
	return 0
}

// onePattern returns the optional single PATTERN argument (default ">").
func onePattern(fs *flag.FlagSet, stderr io.Writer) (string, int) {
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "%s: one pattern, got %q\n", fs.Name(), fs.Args())
		return "", 2
	}
	pattern := ">"
	if fs.NArg() == 1 {
		pattern = fs.Arg(0)
	}
	if err := events.ValidatePattern(pattern); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return "", 2
	}
	return pattern, 0
}

// oneLine shortens s to at most n runes on one line.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
