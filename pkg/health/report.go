package health

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// ComponentStatus is one check's latest result, for reports.
type ComponentStatus struct {
	Name      string  `json:"name"`
	Status    Status  `json:"status"`
	Message   string  `json:"message,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
	Critical  bool    `json:"critical"`
	Checked   string  `json:"checked_at,omitempty"`
}

// Report is the system status with every component's latest result.
type Report struct {
	Status     Status            `json:"status"`
	Score      float64           `json:"score"`
	Components []ComponentStatus `json:"checks"`
}

// Report returns the current system status: worst-of the components (or
// weighted, see Options.Weighted). A check that has not run counts as failed
// for the status.
func (m *Manager) Report() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	rep := Report{Status: Healthy, Components: []ComponentStatus{}}
	var wsum, score float64
	for _, name := range m.order {
		e := m.checks[name]
		s := e.last.Status
		cs := ComponentStatus{
			Name: name, Status: s, Message: e.last.Message, Critical: e.Critical,
			LatencyMS: float64(e.last.Latency) / float64(time.Millisecond),
		}
		if !e.last.Checked.IsZero() {
			cs.Checked = e.last.Checked.UTC().Format(time.RFC3339Nano)
		}
		rep.Components = append(rep.Components, cs)
		eff := s
		if s == Unknown {
			eff = Failed
		}
		if eff.rank() > rep.Status.rank() {
			rep.Status = eff
		}
		wsum += e.Weight
		score += e.Weight * eff.score()
	}
	sort.Slice(rep.Components, func(i, j int) bool { return rep.Components[i].Name < rep.Components[j].Name })
	rep.Score = 1
	if wsum > 0 {
		rep.Score = score / wsum
	}
	if m.o.Weighted {
		switch {
		case rep.Score >= 0.9:
			rep.Status = Healthy
		case rep.Score >= 0.5:
			rep.Status = Degraded
		default:
			rep.Status = Failed
		}
	}
	return rep
}

// Ready reports whether no critical check is failed or not yet run.
func (m *Manager) Ready() (bool, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var failing []string
	for _, name := range m.order {
		e := m.checks[name]
		if e.Critical && (e.last.Status == Failed || e.last.Status == Unknown) {
			failing = append(failing, name)
		}
	}
	return len(failing) == 0, failing
}

// publishSystem publishes health.system.status.
func (m *Manager) publishSystem(ctx context.Context) {
	rep := m.Report()
	ev := events.NewHealthEvent(events.SystemStatus, m.o.Source, "system")
	ev.Status = string(rep.Status)
	ev.Metric, ev.Value = "health_score", rep.Score
	bad := 0
	for _, c := range rep.Components {
		if c.Status != Healthy {
			bad++
		}
	}
	ev.Message = strconv.Itoa(len(rep.Components)-bad) + " of " + strconv.Itoa(len(rep.Components)) + " components healthy"
	m.publish(ctx, ev)
}
