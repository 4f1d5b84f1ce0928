package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// results holds every measurement of a run.
type results struct {
	Runs, N, E2EN, CPUs   int
	Start                 time.Time
	LoadBefore, LoadAfter string
	Rows                  []*result
}

// result is one row over every pass.
type result struct {
	Group, Name, About string
	Baseline           bool
	Rates              []float64 // events/s per pass
	// ClientUS and ServerUS are the CPU microseconds per event spent in
	// the harness's process and in nats-server's, per pass, over the timed
	// section (for the second rate of an end-to-end row: up to the first).
	ClientUS, ServerUS []float64
}

func (r *results) add(pass int, group, name string, baseline bool, about string, rate, clientUS, serverUS float64) {
	i := slices.IndexFunc(r.Rows, func(x *result) bool { return x.Group == group && x.Name == name })
	if i < 0 {
		r.Rows = append(r.Rows, &result{Group: group, Name: name, About: about, Baseline: baseline})
		i = len(r.Rows) - 1
	}
	row := r.Rows[i]
	for len(row.Rates) < pass {
		row.Rates = append(row.Rates, 0)
	}
	row.Rates = append(row.Rates, rate)
	row.ClientUS = append(row.ClientUS, clientUS)
	row.ServerUS = append(row.ServerUS, serverUS)
}

func (r *results) marshal() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// line is one row of the table: its median rate and its median ratio to
// the baseline of its group (ratios taken pass by pass, so each pairs with
// the baseline run next to it), and the range of those ratios.
type line struct {
	group, name, about  string
	baseline            bool
	rate, ratio, lo, hi float64
	clientUS, serverUS  float64 // median CPU µs per event
	vsWatermill         float64 // median ratio to the group's Watermill row; 0 without one
	baselineName        string
}

type table struct {
	r     *results
	lines []line
}

func (r *results) table() table {
	t := table{r: r}
	base := map[string]*result{}
	wm := map[string]*result{}
	for _, row := range r.Rows {
		if row.Baseline {
			base[row.Group] = row
		}
		if strings.HasPrefix(row.Name, "watermill") {
			wm[row.Group] = row
		}
	}
	ratios := func(a, b *result) []float64 {
		var out []float64
		for i := range min(len(a.Rates), len(b.Rates)) {
			if b.Rates[i] > 0 {
				out = append(out, a.Rates[i]/b.Rates[i])
			}
		}
		return out
	}
	for _, row := range r.Rows {
		l := line{
			group: row.Group, name: row.Name, about: row.About, baseline: row.Baseline, rate: median(row.Rates),
			clientUS: median(row.ClientUS), serverUS: median(row.ServerUS),
		}
		if b := base[row.Group]; b != nil {
			rs := ratios(row, b)
			l.ratio, l.baselineName = median(rs), b.Name
			if len(rs) > 0 {
				l.lo, l.hi = slices.Min(rs), slices.Max(rs)
			}
		}
		if w := wm[row.Group]; w != nil && w != row && strings.HasPrefix(row.Name, "jetmon") {
			l.vsWatermill = median(ratios(row, w))
		}
		t.lines = append(t.lines, l)
	}
	return t
}

func (t table) header() string {
	return fmt.Sprintf("%d pass(es), %d events per row (end to end %d), %d CPUs, load average %s before, %s after, %s",
		t.r.Runs, t.r.N, t.r.E2EN, t.r.CPUs, t.r.LoadBefore, t.r.LoadAfter, t.r.Start.Format(time.RFC3339))
}

func (t table) text() string {
	var b strings.Builder
	fmt.Fprintln(&b, t.header())
	fmt.Fprintf(&b, "%-8s %-36s %12s %8s %15s %10s %9s %9s\n", "group", "row", "events/s", "ratio", "range", "×watermill", "µs/ev cli", "µs/ev srv")
	for _, l := range t.lines {
		wm := ""
		if l.vsWatermill > 0 {
			wm = fmt.Sprintf("%.2f×", l.vsWatermill)
		}
		fmt.Fprintf(&b, "%-8s %-36s %12.0f %7.2f× %15s %10s %9.2f %9.2f\n", l.group, l.name, l.rate, l.ratio, fmt.Sprintf("%.2f–%.2f", l.lo, l.hi), wm, l.clientUS, l.serverUS)
	}
	return b.String()
}

func (t table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", t.header())
	fmt.Fprintln(&b, "| group | row | what it measures | events/s (median) | × baseline (median, range) | × Watermill | CPU µs/event: harness + nats-server |")
	fmt.Fprintln(&b, "| --- | --- | --- | ---: | ---: | ---: | ---: |")
	for _, l := range t.lines {
		ratio := fmt.Sprintf("%.2f× (%.2f–%.2f)", l.ratio, l.lo, l.hi)
		if l.baseline {
			ratio = "1 (baseline)"
		}
		wm := ""
		if l.vsWatermill > 0 {
			wm = fmt.Sprintf("%.1f×", l.vsWatermill)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %.0f | %s | %s | %.1f + %.1f |\n", l.group, l.name, l.about, l.rate, ratio, wm, l.clientUS, l.serverUS)
	}
	return b.String()
}
