// Command jetmon is the operator's CLI for jetmon. `jetmon up` runs the whole
// pipeline in one process: an embedded NATS JetStream server, the streams, and
// (today) the demo publisher and subscribers of internal/demo on the JetStream
// bus. Later issues add the aggregator and the alert manager to it.
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

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/demo"
	"github.com/jetmon/jetmon/internal/natsserver"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
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
	transport := fs.String("transport", "jetstream", "jetstream (embedded NATS server) or memory")
	dataDir := fs.String("data-dir", ".jetmon/data", "JetStream store of the embedded server; the next start resumes from it")
	natsPort := fs.Int("nats-port", 0, "also listen for NATS clients on 127.0.0.1:PORT (e.g. 4222 for the nats CLI); 0: in-process only")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of console text")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: jetmon up [flags]\n\nStarts an embedded NATS JetStream server, applies the streams, runs a demo\npublisher and subscribers on the JetStream bus, and prints every event and a\nperiodic summary.\n\nFlags:\n")
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
	if *natsPort < 0 || *natsPort > 65535 {
		fmt.Fprintf(stderr, "jetmon up: nats-port %d: must be 0 (no listener) or a TCP port\n", *natsPort)
		return 2
	}
	log = log.With().Str("component", "jetmon-up").Logger()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	bus, shutdown, err := openBus(ctx, *transport, *dataDir, *natsPort, log)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon up: %v\n", err)
		return 1
	}
	runErr := demo.Run(ctx, bus, opts, stdout, log)
	closeErr := shutdown()
	if err := errors.Join(runErr, closeErr); err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}

// openBus starts the transport of `jetmon up` and returns the bus and a
// shutdown function that closes the bus, then the server.
func openBus(ctx context.Context, transport, dataDir string, natsPort int, log zerolog.Logger) (events.Bus, func() error, error) {
	switch transport {
	case "memory":
		bus := events.NewMemoryBus(events.MemoryOptions{})
		return bus, bus.Close, nil
	case "jetstream":
	default:
		return nil, nil, fmt.Errorf("transport %q: must be jetstream or memory", transport)
	}
	srvLog := log.Level(zerolog.WarnLevel)
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dataDir, Port: natsPort, Logger: &srvLog})
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS server (data dir %s): %w", dataDir, err)
	}
	cfg := jsbus.DefaultConfig()
	cfg.Conn, err = srv.Connect()
	if err != nil {
		srv.Stop()
		return nil, nil, fmt.Errorf("connect to the embedded server: %w", err)
	}
	cfg.Logger = &log
	cfg.Streams.MaxBytesScale = 0.25 // a laptop's share
	bus, err := jsbus.Connect(ctx, cfg)
	if err != nil {
		cfg.Conn.Close()
		srv.Stop()
		return nil, nil, err
	}
	if url := srv.ClientURL(); url != "" {
		log.Info().Str("url", url).Msg("NATS clients can connect, e.g. nats --server " + url + " sub 'performance.>'")
	}
	log.Info().Str("data_dir", dataDir).Msg("embedded NATS JetStream server running")
	return bus, func() error {
		err := bus.Close()
		cfg.Conn.Close()
		srv.Stop()
		return err
	}, nil
}
