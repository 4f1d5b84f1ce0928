package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/pkg/console"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// consoleCmd runs the web console alone against a NATS deployment. It holds
// no state: any number can run behind a load balancer.
func consoleCmd(ctx context.Context, args []string, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("jetmon console", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf cli.NATSFlags
	nf.Register(fs)
	httpAddr := fs.String("http", "127.0.0.1:9200", "address of the console (/console/), its API, /metrics and /healthz")
	tokenFile := fs.String("token-file", "", "file holding the bearer token the API requires (env JETMON_TOKEN sets it too); the pages themselves load without it and ask for it")
	insecureHTTP := fs.Bool("insecure-http", false, "allow --http beyond loopback without a token")
	maxLive := fs.Int("max-live", console.DefaultOptions().MaxLive, "most live (server-sent events) clients at once")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of console text")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: jetmon console [flags]

Serves the web console (performance, health, alerts, dead letters, live
updates) for the NATS deployment at --nats-url. Every page is computed from
the streams and key-value buckets at request time: the console keeps no state,
so several can run side by side. It never creates or updates streams. Give
it the NATS user "console" (least privilege: read, add silences, retry and
drop dead letters); a "reader" can browse but not write.

Flags (each also settable as JETMON_<FLAG>; NATS_URL works too):
`)
		fs.PrintDefaults()
	}
	if err := cli.ParseWithEnv(fs, "JETMON", args, cli.EnvWithNATSURL("JETMON", env)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "jetmon console: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "jetmon console: unexpected arguments %q\n", fs.Args())
		return 2
	}
	token, err := cli.Secret(env, "JETMON_TOKEN", *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon console: --token-file: %v\n", err)
		return 2
	}
	if err := httpd.CheckExposure(*httpAddr, token, *insecureHTTP); err != nil {
		fmt.Fprintf(stderr, "jetmon console: --http: %v (give --token-file, or --insecure-http)\n", err)
		return 2
	}
	log, err := cli.NewLogger(stderr, *logLevel, !*logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon console: %v\n", err)
		return 2
	}
	log = log.With().Str("component", "console").Logger()
	if *maxLive <= 0 {
		fmt.Fprintf(stderr, "jetmon console: --max-live %d: must be positive\n", *maxLive)
		return 2
	}
	co := console.DefaultOptions()
	co.MaxLive, co.Logger = *maxLive, log
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := nf.Config("jetmon-console", &log)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon console: %v\n", err)
		return 2
	}
	cfg.SkipStreams = true // a reader: the streams are the pipeline's to manage
	bus, err := jsbus.Connect(ctx, cfg)
	if err != nil {
		log.Error().Err(err).Msg("cannot connect to NATS")
		return 1
	}
	defer func() { _ = bus.Close() }()
	reg := httpd.NewRegistry()
	co.Bus, co.Registerer = bus, reg
	con, err := console.New(co)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon console: %v\n", err)
		return 2
	}
	mux := httpd.Mux(reg)
	con.Mount(mux)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !bus.Conn().IsConnected() {
			http.Error(w, "not connected to NATS", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	guard := httpd.ForAddr(*httpAddr, token)
	guard.Open = append([]string{"/healthz", "/readyz"}, console.Public()...)
	// The console ends its live streams when ctx ends, so the server's
	// shutdown does not wait for them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _ = con.Run(ctx) })
	err = httpd.Serve(ctx, *httpAddr, guard.Wrap(mux), func(a net.Addr) {
		log.Info().Str("console", "http://"+a.String()+"/console/").Msg("jetmon console serving")
	})
	cancel()
	wg.Wait()
	if err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}
