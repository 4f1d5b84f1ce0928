// Command jetmon is the operator's CLI for jetmon. `jetmon up` runs the whole
// pipeline in one process; today that is the in-memory bus with the demo
// publisher and subscribers (see internal/demo).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/demo"
	"github.com/jetmon/jetmon/pkg/events"
)

const usage = `jetmon: event-driven monitoring on NATS JetStream.

Usage:
  jetmon up [flags]     run the pipeline in one process (Ctrl-C stops it)
  jetmon types          list the event types of the taxonomy
  jetmon help           show this help

Run 'jetmon up --help' for the flags of up.
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

func up(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("jetmon up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := demo.DefaultOptions()
	rate := fs.Int("rate", def.Rate, "operations per second the demo publisher emits")
	duration := fs.Duration("duration", def.Duration, "stop after this long (0: run until Ctrl-C or SIGTERM)")
	summaryEvery := fs.Duration("summary-every", def.SummaryEvery, "interval of the summary table")
	quiet := fs.Bool("quiet", false, "print only the summary tables, not every event")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of console text")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: jetmon up [flags]\n\nRuns a demo publisher and subscribers on an in-memory bus and prints\nevery event and a periodic summary.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := cli.ParseWithEnv(fs, "JETMON", args, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "jetmon up: %v\n", err)
		return 2
	}
	log, err := cli.NewLogger(stderr, *logLevel, !*logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon up: %v\n", err)
		return 2
	}
	opts := demo.Options{Rate: *rate, Duration: *duration, SummaryEvery: *summaryEvery, Quiet: *quiet}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "jetmon up: %v\n", err)
		return 2
	}
	log = log.With().Str("component", "jetmon-up").Logger()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	bus := events.NewMemoryBus(events.MemoryOptions{})
	runErr := demo.Run(ctx, bus, opts, stdout, log)
	closeErr := bus.Close()
	if err := errors.Join(runErr, closeErr); err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return 1
	}
	log.Info().Uint64("published", bus.Stats().Published).Msg("stopped")
	return 0
}
