package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jetmon/jetmon/pkg/events"
)

// EventFlowTracer records the events seen on a bus, by trace and by context
// id, so that a developer can follow one request or validation through the
// system. It keeps at most its limit of events.
type EventFlowTracer struct {
	mu     sync.Mutex
	limit  int
	events []events.Event
	sub    events.Subscription
}

// TraceFlow subscribes to pattern (">" for everything) on bus and records up
// to limit events (default 10,000), the oldest forgotten first.
func TraceFlow(ctx context.Context, bus events.Subscriber, pattern string, limit int) (*EventFlowTracer, error) {
	if limit <= 0 {
		limit = 10_000
	}
	t := &EventFlowTracer{limit: limit}
	sub, err := bus.Subscribe(ctx, pattern, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		t.mu.Lock()
		if len(t.events) >= t.limit {
			t.events = slices.Delete(t.events, 0, len(t.events)/10+1)
		}
		t.events = append(t.events, ev)
		t.mu.Unlock()
		return nil
	}))
	if err != nil {
		return nil, err
	}
	t.sub = sub
	return t, nil
}

// ByTrace returns the recorded events of trace id, oldest first.
func (t *EventFlowTracer) ByTrace(id events.TraceID) []events.Event {
	return t.filter(func(ev events.Event) bool { return ev.Metadata().TraceID == id })
}

// ByContext returns the recorded events of context id, oldest first.
func (t *EventFlowTracer) ByContext(id string) []events.Event {
	return t.filter(func(ev events.Event) bool { return ev.Metadata().ContextID == id })
}

func (t *EventFlowTracer) filter(keep func(events.Event) bool) []events.Event {
	t.mu.Lock()
	var out []events.Event
	for _, ev := range t.events {
		if keep(ev) {
			out = append(out, ev)
		}
	}
	t.mu.Unlock()
	slices.SortStableFunc(out, func(a, b events.Event) int { return a.Metadata().Timestamp.Compare(b.Metadata().Timestamp) })
	return out
}

// Format renders a flow as one line per event.
func Format(flow []events.Event) string {
	var b strings.Builder
	for _, ev := range flow {
		m := ev.Metadata()
		fmt.Fprintf(&b, "%s  %-32s %-14s span=%s parent=%s\n", m.Timestamp.Format("15:04:05.000000"), m.Type, m.Source, m.SpanID, m.ParentSpanID)
	}
	return b.String()
}

// Stop unsubscribes.
func (t *EventFlowTracer) Stop() error { return t.sub.Unsubscribe() }

// IntegrationReport is what [VerifyIntegration] found: the bus's connection,
// the coordinator's mode, the validation service's subscriptions, and the
// problems among them.
type IntegrationReport struct {
	PublisherConnected bool           `json:"publisher_connected"`
	CoordinatorEnabled bool           `json:"coordinator_enabled"`
	Mode               MonitoringMode `json:"mode,omitempty"`
	Subscriptions      []string       `json:"subscriptions"`
	Problems           []string       `json:"problems"`
}

// OK reports whether no problem was found.
func (r IntegrationReport) OK() bool { return len(r.Problems) == 0 }

// VerifyIntegration checks that the monitoring is wired: the bus is
// connected, the coordinator is enabled, and the validation service (if
// given) has its subscriptions.
func VerifyIntegration(bus events.Bus, c Coordinator, vms *ValidationMonitoringService) IntegrationReport {
	r := IntegrationReport{Subscriptions: []string{}, Problems: []string{}}
	if bus == nil {
		r.Problems = append(r.Problems, "no bus")
	} else if r.PublisherConnected = bus.IsConnected(); !r.PublisherConnected {
		r.Problems = append(r.Problems, "the bus is not connected")
	}
	if c == nil {
		r.Problems = append(r.Problems, "no coordinator")
	} else {
		r.CoordinatorEnabled = c.Enabled()
		if sw, ok := c.(*Switchable); ok {
			r.Mode = sw.Mode()
		}
		if !r.CoordinatorEnabled {
			r.Problems = append(r.Problems, "the coordinator is disabled")
		}
	}
	if vms != nil {
		r.Subscriptions = vms.SubscriptionIDs()
		if len(r.Subscriptions) == 0 {
			r.Problems = append(r.Problems, "the validation monitoring service has no subscription (not started?)")
		}
	}
	return r
}
