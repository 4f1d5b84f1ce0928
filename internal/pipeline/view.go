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
	"unicode/utf8"

	"github.com/jetmon/jetmon/internal/redact"
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
	_, _ = io.WriteString(v.out, v.render(time.Now(), v.agg.Stats(), v.agg.Recent(), alerts))
}

// render returns one frame. Every string that comes from events (sources,
// operations, rule labels and annotations) goes through [term], so that no
// event can move the cursor, retitle the window or otherwise talk to the
// terminal.
func (v *view) render(now time.Time, st aggregator.Stats, recent []*events.AggregateEvent, alerts []alerting.AlertStatus) string {
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
	fmt.Fprintf(&b, "jetmon up  %s   console http://%s/console/", now.Format("15:04:05"), term(v.httpAddr))
	if v.natsURL != "" {
		fmt.Fprintf(&b, "   %s", term(redact.URL(v.natsURL)))
	}
	fmt.Fprintf(&b, "\naggregated %d events (%.0f/s), %d windows emitted, %d series, %d late\n\n", st.Events, rate, st.Emitted, st.Series, st.Late)

	// The latest window of each series.
	latest := map[string]*events.AggregateEvent{}
	for _, w := range recent {
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
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%6d\t%5.1f\t%8.1f\t%8.1f\t%8.1f\n", w.WindowEnd.Local().Format("15:04:05"), term(w.Source), term(w.Name()), w.Count, errPct, w.P50, w.P95, w.P99)
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
		fmt.Fprintf(tw, "  %s\t%s\t%s\tsince %s\n", state, term(a.Rule), term(summary), since.Local().Format("15:04:05"))
	}
	_ = tw.Flush()
	return b.String()
}

// term returns s safe to write to a terminal: C0 controls (tab and newline
// included, which would break the table), DEL, C1 controls, Unicode
// bidirectional overrides and bytes that are not UTF-8 are shown as visible
// escapes (\x1b, \u202e) instead of being sent raw. A backslash is left
// alone: the escapes are for reading, not for parsing back.
func term(s string) string {
	clean := true
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || isBidi(r) || (r == utf8.RuneError && !validAt(s, i)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case (r >= 0x80 && r <= 0x9f) || isBidi(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// isBidi reports Unicode bidirectional embedding, override and isolate
// controls, which reorder what the terminal shows.
func isBidi(r rune) bool { return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) }

// validAt reports whether the U+FFFD at s[i] is really in s (not a bad byte).
func validAt(s string, i int) bool {
	r, n := utf8.DecodeRuneInString(s[i:])
	return r == utf8.RuneError && n == 3
}
