// Command alertmanager evaluates alerting rules against the event bus and
// notifies receivers. See pkg/alerting.
//
//	alertmanager [run] --rules rules.yaml     evaluate and notify
//	alertmanager check rules.yaml...          validate rules files
//	alertmanager silence add|list|expire      manage silences over the API
//	alertmanager suggest --field p95          threshold suggestions from history
//	alertmanager backtest --rules F --rule N  a predict rule over stored history
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/internal/redact"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)) }

const envPrefix = "ALERTMANAGER"

func envLookup(env func(string) (string, bool)) func(string) (string, bool) {
	return cli.EnvWithNATSURL(envPrefix, env)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return check(args[1:], stdout, stderr)
		case "silence":
			return silence(ctx, args[1:], stdout, stderr, env)
		case "suggest":
			return suggest(ctx, args[1:], stdout, stderr, env)
		case "backtest":
			return backtest(ctx, args[1:], stdout, stderr, env)
		case "healthcheck":
			return cli.Healthcheck(ctx, "alertmanager", envPrefix, "http://127.0.0.1:9103/readyz", args[1:], stderr, env)
		case "run":
			args = args[1:]
		}
	}
	return serve(ctx, args, stderr, env)
}

func usage(fs *flag.FlagSet, text string) {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text+"\nFlags (each also settable as "+envPrefix+"_<FLAG>, e.g. "+envPrefix+"_RULES):\n")
		fs.PrintDefaults()
	}
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer, env func(string) (string, bool)) (int, bool) {
	return cli.Parse(fs, envPrefix, args, envLookup(env), stderr)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]`)

func serve(ctx context.Context, args []string, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("alertmanager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf cli.NATSFlags
	nf.Register(fs)
	rules := fs.String("rules", "rules.yaml", "rules file (YAML); reloaded on SIGHUP and on monitoring.config.changed with config.component=alertmanager")
	httpAddr := fs.String("http", "127.0.0.1:9103", "address of /healthz, /readyz, /metrics and /api/v1 (empty: off)")
	host, _ := os.Hostname()
	instance := fs.String("instance", unsafeName.ReplaceAllString(host, "_"), "this instance's name among its peers; names its input consumers, so keep it across restarts")
	externalURL := fs.String("external-url", "", "URL people use to reach this instance (in notifications; default http://<--http>)")
	retryFor := fs.Duration("retry-for", time.Minute, "how long one notification is retried")
	maxSilence := fs.Duration("max-silence", alerting.DefaultMaxSilence, "how far from now a silence created over the API may end (negative: no limit)")
	tokenFile := fs.String("api-token-file", "", "file holding the bearer token the API's writes (silences) require (env ALERTMANAGER_API_TOKEN sets it too)")
	httpTokenFile := fs.String("http-token-file", "", "file holding the bearer token every HTTP path but /healthz and /readyz requires; the API token passes too (env ALERTMANAGER_HTTP_TOKEN sets it too)")
	insecureHTTP := fs.Bool("insecure-http", false, "allow --http beyond loopback without --http-token-file")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of console text")
	usage(fs, `Usage: alertmanager [run] [flags]
       alertmanager check FILE...
       alertmanager silence add|list|expire [flags]
       alertmanager suggest [flags]
       alertmanager healthcheck [--url URL]

Evaluates the rules file against aggregated windows, health and other events
on NATS JetStream, keeps alert state, silences and the notification log in
JetStream KV (so several instances notify each alert once), and notifies
log, webhook and Prometheus Alertmanager receivers.
`)
	if code, ok := parse(fs, args, stderr, env); !ok {
		return code
	}
	log, err := cli.NewLogger(stderr, *logLevel, !*logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager: %v\n", err)
		return 2
	}
	cfg, err := alerting.Load(*rules)
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager: --rules: %v\n", redact.Error(err))
		return 2
	}
	if *instance == "" {
		fmt.Fprintln(stderr, "alertmanager: --instance must not be empty")
		return 2
	}
	apiToken, err := cli.Secret(env, "ALERTMANAGER_API_TOKEN", *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager: --api-token-file: %v\n", err)
		return 2
	}
	httpToken, err := cli.Secret(env, "ALERTMANAGER_HTTP_TOKEN", *httpTokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager: --http-token-file: %v\n", err)
		return 2
	}
	if err := httpd.CheckExposure(*httpAddr, httpToken, *insecureHTTP); err != nil {
		fmt.Fprintf(stderr, "alertmanager: %v\n", err)
		return 2
	}
	if *externalURL == "" && *httpAddr != "" {
		*externalURL = "http://" + *httpAddr
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	bus, err := nf.Connect(ctx, "jetmon-alertmanager", &log)
	if err != nil {
		log.Error().Err(redact.Error(err)).Msg("cannot connect")
		return 1
	}
	defer func() { _ = bus.Close() }()
	// A cluster that has just formed may take a while to place replicated
	// buckets: retry rather than exit and be restarted.
	store, err := backoff.RetryWithData(func() (*alerting.KVStore, error) {
		st, err := alerting.NewKVStore(ctx, bus.JetStream(), bus.StreamReplicas(), 0)
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("opening the state buckets failed; retrying")
		}
		return st, err
	}, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(2*time.Minute)), ctx))
	if err != nil {
		log.Error().Err(err).Msg("cannot open the state buckets")
		return 1
	}
	reg := httpd.NewRegistry()
	svc, err := alerting.New(alerting.Options{
		Config: cfg, RulesFile: *rules, Bus: bus, Alerts: &alerting.JetStreamSink{JS: bus.JetStream()}, Store: store,
		Instance: *instance, Durable: "alertmanager-" + unsafeName.ReplaceAllString(*instance, "_"),
		ExternalURL: *externalURL, APIToken: apiToken, RetryFor: *retryFor, MaxSilence: *maxSilence, Logger: &log, Registerer: reg,
		History: func(ctx context.Context, since time.Time) ([]*events.AggregateEvent, error) {
			return windowsSince(ctx, bus, since)
		},
	})
	if err != nil {
		log.Error().Err(redact.Error(err)).Msg("cannot start")
		return 1
	}
	mux := httpd.Mux(reg)
	svc.Mount(mux)
	defer cli.OnSIGHUP(ctx, func() {
		if err := svc.ReloadFile(ctx); err != nil {
			log.Error().Err(err).Msg("reload on SIGHUP failed; the running rules stay")
		}
	})()
	guarded := httpd.ForAddr(*httpAddr, httpToken, apiToken).Wrap(mux)
	runErr := httpd.ServeWhile(ctx, *httpAddr, guarded, func(a net.Addr) { log.Info().Str("addr", a.String()).Msg("http listening") }, svc.Run)
	if runErr != nil {
		log.Error().Err(runErr).Msg("stopped with an error")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}

// check validates rules files like promtool check rules.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("alertmanager check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage(fs, "Usage: alertmanager check FILE...\n\nValidates rules files; every problem is reported as FILE:LINE: FIELD: REASON.\nExit status 1 if any file is invalid.\n")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "alertmanager check: name at least one rules file")
		return 2
	}
	code := 0
	for _, f := range fs.Args() {
		cfg, err := alerting.Load(f)
		if err != nil {
			fmt.Fprintf(stderr, "FAILED %s:\n%v\n", f, redact.Error(err))
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "SUCCESS %s: %d rules, %d receivers, %d inhibit rules\n", f, len(cfg.Rules), len(cfg.Receivers), len(cfg.InhibitRules))
	}
	return code
}

// silence manages silences through a running instance's API.
func silence(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 || (args[0] != "add" && args[0] != "list" && args[0] != "expire") {
		fmt.Fprintln(stderr, "Usage: alertmanager silence add --matcher NAME=VALUE... --duration 2h --comment TEXT\n       alertmanager silence list\n       alertmanager silence expire ID")
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			return 0
		}
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("alertmanager silence "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9103", "API of a running alertmanager")
	var matchers multi
	fs.Var(&matchers, "matcher", "label matcher NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX (repeatable; add)")
	duration := fs.Duration("duration", 2*time.Hour, "how long the silence lasts (add)")
	comment := fs.String("comment", "", "why (add)")
	author := fs.String("author", os.Getenv("USER"), "who (add)")
	tokenFile := fs.String("token-file", "", "file holding the API's bearer token (add, expire; env ALERTMANAGER_API_TOKEN sets it too)")
	usage(fs, "Usage: alertmanager silence "+verb+" [flags]\n")
	if code, ok := parse(fs, args[1:], stderr, env); !ok {
		return code
	}
	token, err := cli.Secret(env, "ALERTMANAGER_API_TOKEN", *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager silence %s: --token-file: %v\n", verb, err)
		return 2
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var out []byte
	switch verb {
	case "add":
		if len(matchers) == 0 {
			fmt.Fprintln(stderr, "alertmanager silence add: at least one --matcher is required")
			return 2
		}
		req := alerting.SilenceRequest{Matchers: map[string]string{}, Duration: duration.String(), Comment: *comment, CreatedBy: *author}
		for _, m := range matchers {
			pm, perr := alerting.ParseMatcher(m)
			if perr != nil {
				fmt.Fprintf(stderr, "alertmanager silence add: %v\n", perr)
				return 2
			}
			v := pm.Value
			if pm.Op != "=" {
				v = pm.Op + pm.Value
			}
			req.Matchers[pm.Name] = v
		}
		body, _ := json.Marshal(req)
		out, err = call(ctx, client, http.MethodPost, *url+"/api/v1/silences", token, body)
		if err == nil {
			var s alerting.Silence
			_ = json.Unmarshal(out, &s)
			fmt.Fprintln(stdout, s.ID)
			return 0
		}
	case "list":
		out, err = call(ctx, client, http.MethodGet, *url+"/api/v1/silences", token, nil)
		if err == nil {
			var ss []alerting.Silence
			if err = json.Unmarshal(out, &ss); err == nil {
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tMATCHERS\tENDS\tSTATE\tCREATED BY\tCOMMENT")
				now := time.Now()
				for _, s := range ss {
					state := "expired"
					if s.Active(now) {
						state = "active"
					} else if now.Before(s.StartsAt) {
						state = "pending"
					}
					var ms []string
					for _, k := range slices.Sorted(maps.Keys(s.Matchers)) {
						ms = append(ms, k+"="+s.Matchers[k])
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, strings.Join(ms, ","), s.EndsAt.Local().Format(time.RFC3339), state, s.CreatedBy, s.Comment)
				}
				_ = tw.Flush()
				return 0
			}
		}
	case "expire":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "alertmanager silence expire: name one silence id")
			return 2
		}
		_, err = call(ctx, client, http.MethodDelete, *url+"/api/v1/silences/"+fs.Arg(0), token, nil)
		if err == nil {
			fmt.Fprintln(stdout, "expired", fs.Arg(0))
			return 0
		}
	}
	fmt.Fprintf(stderr, "alertmanager silence %s: %v\n", verb, redact.Error(err, append(redact.Secrets(*url), token)...))
	return 1
}

func call(ctx context.Context, client *http.Client, method, url, token string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, redact.URL(url), resp.Status)
	}
	return data, nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// suggest replays stored aggregated windows and proposes a threshold per
// series (median + k·MAD of the field).
func suggest(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("alertmanager suggest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf cli.NATSFlags
	nf.Register(fs)
	field := fs.String("field", "p95", "field of the aggregated windows: p50, p90, p95, p99, avg, max, error_rate, rate, count")
	since := fs.Duration("since", 24*time.Hour, "how much history to read")
	k := fs.Float64("k", 3, "deviations (1.4826·MAD) above the median")
	apply := fs.String("apply", "", "rules file whose threshold: auto rules get their learned thresholds written in (each rule's own auto settings apply)")
	usage(fs, `Usage: alertmanager suggest [flags]

Reads the stored performance.metric.aggregated windows of the last --since and
prints, per series, the median of --field and a suggested threshold (median +
k·MAD) for a threshold rule. With --apply FILE it instead learns the thresholds
of FILE's threshold: auto rules (with their own auto settings) and writes them
into FILE: the most permissive of each rule's series.
`)
	if code, ok := parse(fs, args, stderr, env); !ok {
		return code
	}
	if math.IsNaN(alerting.FieldOf(&events.AggregateEvent{}, *field)) {
		fmt.Fprintf(stderr, "alertmanager suggest: --field %q is not a field of aggregated windows\n", *field)
		return 2
	}
	log, _ := cli.NewLogger(stderr, "warn", true)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	bus, err := nf.Connect(ctx, "jetmon-alertmanager-suggest", &log)
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager suggest: %v\n", redact.Error(err))
		return 1
	}
	defer func() { _ = bus.Close() }()
	if *apply != "" {
		done, err := applyLearned(ctx, bus, *apply)
		if err != nil {
			fmt.Fprintf(stderr, "alertmanager suggest --apply: %v\n", redact.Error(err))
			return 1
		}
		for _, a := range done {
			fmt.Fprintf(stdout, "%s: %s: threshold %.6g (learned over %d series)\n", *apply, a.rule, a.threshold, a.series)
		}
		if len(done) == 0 {
			fmt.Fprintf(stderr, "%s: no threshold: auto rule learned a threshold (too little history?)\n", *apply)
		}
		return 0
	}
	series := map[string][]float64{}
	_, err = bus.Replay(ctx, string(events.MetricAggregated), jsbus.ReplayOptions{From: time.Now().Add(-*since)}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		if a, ok := ev.(*events.AggregateEvent); ok {
			key := string(a.AggregatedType) + " " + a.Source + " " + a.Name()
			series[key] = append(series[key], alerting.FieldOf(a, *field))
		}
		return nil
	}))
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager suggest: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TYPE\tSOURCE\tNAME\tWINDOWS\tMEDIAN %s\tSUGGESTED THRESHOLD\n", strings.ToUpper(*field))
	for _, key := range slices.Sorted(maps.Keys(series)) {
		parts := strings.SplitN(key, " ", 3)
		b, ok := alerting.Suggest(series[key], *k, "up")
		if !ok {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.4g\t(too few windows)\n", parts[0], parts[1], parts[2], len(series[key]), series[key][0])
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.4g\t%.4g\n", parts[0], parts[1], parts[2], b.Samples, b.Center, b.Upper)
	}
	_ = tw.Flush()
	if len(series) == 0 {
		fmt.Fprintln(stderr, "no aggregated windows in that range")
	}
	return 0
}
