package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/redact"
	"github.com/jetmon/jetmon/pkg/alerting"
)

// backtest runs a predict rule over the stored aggregated windows and
// prints, per series, when it would have fired and how early compared
// with the plain threshold rule.
func backtest(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("alertmanager backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf cli.NATSFlags
	nf.Register(fs)
	rules := fs.String("rules", "", "rules file holding the rule")
	rule := fs.String("rule", "", "name (alert) of the predict rule to run")
	since := fs.Duration("since", 24*time.Hour, "how much history to read")
	usage(fs, `Usage: alertmanager backtest --rules FILE --rule NAME [flags]

Replays the stored performance.metric.aggregated windows of the last --since
through the predict rule NAME and, next to it, the plain threshold rule with
the same match, field, op, threshold and for; prints per series when each
would have fired and the predict rule's lead.
`)
	if code, ok := parse(fs, args, stderr, env); !ok {
		return code
	}
	cfg, err := alerting.Load(*rules)
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager backtest: %v\n", redact.Error(err))
		return 2
	}
	var r *alerting.Rule
	for _, x := range cfg.Rules {
		if x.Name == *rule {
			r = x
		}
	}
	if r == nil || r.Kind != alerting.KindPredict {
		fmt.Fprintf(stderr, "alertmanager backtest: %s has no predict rule named %q\n", *rules, *rule)
		return 2
	}
	log, _ := cli.NewLogger(stderr, "warn", true)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	bus, err := nf.Connect(ctx, "jetmon-alertmanager-backtest", &log)
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager backtest: %v\n", redact.Error(err))
		return 1
	}
	defer func() { _ = bus.Close() }()
	windows, err := windowsSince(ctx, bus, time.Now().Add(-*since))
	if err != nil {
		fmt.Fprintf(stderr, "alertmanager backtest: %v\n", err)
		return 1
	}
	res := alerting.Backtest(r, windows)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIES\tPREDICT FIRED\tFORECAST\tERROR\tTHRESHOLD FIRED\tLEAD")
	at := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, b := range res {
		lead := "-"
		if b.Lead != 0 || (!b.Fired.IsZero() && !b.ThresholdFired.IsZero()) {
			lead = b.Lead.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4g in %s\t%.3g\t%s\t%s\n", b.Labels, at(b.Fired), b.Forecast.Value, b.Forecast.ETA, b.Forecast.Error, at(b.ThresholdFired), lead)
	}
	_ = tw.Flush()
	if len(res) == 0 {
		fmt.Fprintln(stderr, "no series of the rule fired in that range")
	}
	return 0
}
