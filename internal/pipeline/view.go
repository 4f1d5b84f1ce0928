package pipeline

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// view draws the latest windows and the alerts.
type view struct {
	out               io.Writer
	ansi              bool
	agg               *aggregator.Service
	am                *alerting.Service
	bus               *jsbus.Bus
	window            time.Duration
	httpAddr, natsURL string

	lastEvents uint64
	lastAt     time.Time
}

func (v *view) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.draw(ctx)
		}
	}
}

const maxWindowRows = 12

func (v *view) draw(ctx context.Context) {
	alerts, err := v.am.Alerts(ctx)
	if err != nil {
		return
	}
	st := v.agg.Stats()
	now := time.Now()
	rate := 0.0
	if !v.lastAt.IsZero() {
		rate = float64(st.Events-v.lastEvents) / now.Sub(v.lastAt).Seconds()
	}
	v.lastEvents, v.lastAt = st.Events, now

	var b strings.Builder
	if v.ansi {
		b.WriteString("\x1b[H\x1b[2J")
	} else {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "jetmon up  %s   http://%s", now.Format("15:04:05"), v.httpAddr)
	if v.natsURL != "" {
		fmt.Fprintf(&b, "   %s", v.natsURL)
	}
	fmt.Fprintf(&b, "\naggregated %d events (%.0f/s), %d windows emitted, %d series, %d late\n\n", st.Events, rate, st.Emitted, st.Series, st.Late)

	// The latest window of each series.
	latest := map[string]*events.AggregateEvent{}
	for _, w := range v.agg.Recent() {
		k := w.Source + "\x00" + w.Name()
		if cur := latest[k]; cur == nil || w.WindowEnd.After(cur.WindowEnd) {
			latest[k] = w
		}
	}
	fmt.Fprintf(&b, "LATEST %s WINDOWS\n", v.window)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  ENDS\tSOURCE\tOPERATION\t COUNT\t ERR%%\t  P50 ms\t  P95 ms\t  P99 ms\n")
	keys := slices.Sorted(maps.Keys(latest))
	for i, k := range keys {
		if i == maxWindowRows {
			fmt.Fprintf(tw, "  … %d more series (GET /api/v1/windows)\n", len(keys)-maxWindowRows)
			break
		}
		w := latest[k]
		errPct := 0.0
		if w.Count > 0 {
			errPct = 100 * float64(w.ErrorCount) / float64(w.Count)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%6d\t%5.1f\t%8.1f\t%8.1f\t%8.1f\n", w.WindowEnd.Local().Format("15:04:05"), w.Source, w.Name(), w.Count, errPct, w.P50, w.P95, w.P99)
	}
	_ = tw.Flush()

	b.WriteString("\nALERTS\n")
	if len(alerts) == 0 {
		b.WriteString("  none\n")
	}
	order := map[alerting.State]int{alerting.StateFiring: 0, alerting.StatePending: 1, alerting.StateResolved: 2}
	slices.SortStableFunc(alerts, func(x, y alerting.AlertStatus) int {
		if d := order[x.State] - order[y.State]; d != 0 {
			return d
		}
		return strings.Compare(x.Rule+x.Labels.String(), y.Rule+y.Labels.String())
	})
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, a := range alerts {
		state := strings.ToUpper(string(a.State))
		if len(a.SilencedBy) > 0 {
			state += " (silenced)"
		} else if len(a.InhibitedBy) > 0 {
			state += " (inhibited)"
		}
		since := a.ActiveAt
		if a.State == alerting.StateResolved {
			since = a.ResolvedAt
		}
		summary := a.Annotations["summary"]
		if summary == "" {
			summary = a.Labels.String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\tsince %s\n", state, a.Rule, summary, since.Local().Format("15:04:05"))
	}
	_ = tw.Flush()
	_, _ = io.WriteString(v.out, b.String())
}
