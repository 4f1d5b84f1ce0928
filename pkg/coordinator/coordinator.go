// Package coordinator is the API application code calls on its hot paths to
// report performance: phases, operations, metrics and resources.
//
// A [Coordinator] comes in three modes ([MonitoringMode]): [Direct] aggregates
// in the process (count, errors, average, p50/p95/p99, max per operation)
// for immediate feedback; [EventDriven] publishes the performance.* events
// of the taxonomy through a bounded asynchronous queue, so the caller pays
// well under a microsecond; [Disabled] does nothing and costs nothing. [New]
// builds one from a mode; [Tee] runs two side by side (while a system
// migrates from Direct to EventDriven); [Switchable] changes mode at run
// time, which [Control] does when a monitoring.mode.switched, sampled,
// enabled or disabled event arrives on the bus. [ValidationMonitoringService] turns validation.* events into
// phases. No method ever panics into the caller or blocks it beyond a
// configured bound.
package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Coordinator records performance. Every method is safe for concurrent use,
// returns quickly, and never fails the caller: problems are counted by the
// implementation instead. The context carries the trace ([events.ContextWithTrace])
// and the unit of work ([WithContextID]) the record belongs to.
type Coordinator interface {
	// PhaseStart marks the start of phase for fieldPath.
	PhaseStart(ctx context.Context, phase, fieldPath string)
	// PhaseEnd marks its end, after d, with status (e.g. events.StatusSuccess).
	PhaseEnd(ctx context.Context, phase, fieldPath string, d time.Duration, status string)
	// OperationComplete records a successful operation that took d.
	OperationComplete(ctx context.Context, op string, d time.Duration)
	// OperationFailed records a failed operation that took d.
	OperationFailed(ctx context.Context, op string, d time.Duration, err error)
	// RecordMetric records a named value.
	RecordMetric(ctx context.Context, name string, value float64, unit string)
	// ResourceAllocated and ResourceReleased record amount of resource.
	ResourceAllocated(ctx context.Context, resource string, amount float64)
	ResourceReleased(ctx context.Context, resource string, amount float64)
	// Time starts timing op; calling the returned function records it as
	// complete: defer c.Time(ctx, "op")().
	Time(ctx context.Context, op string) func()
	// Enabled reports whether anything is recorded (false in Disabled mode),
	// so callers can skip building expensive arguments.
	Enabled() bool
}

// TimeErr is Time for operations that can fail: the deferred call records
// op as failed when *errp is non-nil.
//
//	func handle(ctx context.Context) (err error) {
//		defer coordinator.TimeErr(ctx, c, "handle", &err)()
func TimeErr(ctx context.Context, c Coordinator, op string, errp *error) func() {
	if !c.Enabled() {
		return noopDone
	}
	start := time.Now()
	return func() {
		d := time.Since(start)
		if errp != nil && *errp != nil {
			c.OperationFailed(ctx, op, d, *errp)
			return
		}
		c.OperationComplete(ctx, op, d)
	}
}

func noopDone() {}

// MonitoringMode selects a Coordinator implementation.
type MonitoringMode string

// The modes.
const (
	Direct      MonitoringMode = events.ModeDirect
	EventDriven MonitoringMode = events.ModeEventDriven
	Disabled    MonitoringMode = events.ModeDisabled
)

// ParseMode accepts "direct", "event_driven" (or "event-driven") and "disabled".
func ParseMode(s string) (MonitoringMode, error) {
	switch s {
	case "direct":
		return Direct, nil
	case "event_driven", "event-driven", "eventdriven":
		return EventDriven, nil
	case "disabled", "off", "none":
		return Disabled, nil
	}
	return "", fmt.Errorf("monitoring mode %q: must be direct, event_driven or disabled", s)
}

type contextIDKey struct{}

// WithContextID returns a copy of ctx whose records carry id as their
// context_id (e.g. the id of a validation run).
func WithContextID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, contextIDKey{}, id)
}

// ContextID returns the context id carried by ctx, or "".
func ContextID(ctx context.Context) string {
	id, _ := ctx.Value(contextIDKey{}).(string)
	return id
}

// New returns a coordinator in mode. bus is needed for EventDriven (it may be
// nil otherwise); the returned function stops the coordinator's background
// work (flushing what is queued) and must be called at shutdown.
func New(mode MonitoringMode, bus events.Publisher, o Options) (Coordinator, func(context.Context) error, error) {
	switch mode {
	case Disabled:
		return Noop{}, func(context.Context) error { return nil }, nil
	case Direct:
		return NewDirect(), func(context.Context) error { return nil }, nil
	case EventDriven:
		if bus == nil {
			return nil, nil, fmt.Errorf("coordinator: EventDriven mode needs a bus")
		}
		ed, err := NewEventDriven(bus, o)
		if err != nil {
			return nil, nil, err
		}
		return ed, ed.Close, nil
	}
	return nil, nil, fmt.Errorf("coordinator: unknown monitoring mode %q", mode)
}

// Tee records to both a and b: Direct and EventDriven side by side while a
// system migrates from one to the other.
func Tee(a, b Coordinator) Coordinator { return tee{a, b} }

type tee struct{ a, b Coordinator }

func (t tee) PhaseStart(ctx context.Context, phase, fieldPath string) {
	t.a.PhaseStart(ctx, phase, fieldPath)
	t.b.PhaseStart(ctx, phase, fieldPath)
}

func (t tee) PhaseEnd(ctx context.Context, phase, fieldPath string, d time.Duration, status string) {
	t.a.PhaseEnd(ctx, phase, fieldPath, d, status)
	t.b.PhaseEnd(ctx, phase, fieldPath, d, status)
}

func (t tee) OperationComplete(ctx context.Context, op string, d time.Duration) {
	t.a.OperationComplete(ctx, op, d)
	t.b.OperationComplete(ctx, op, d)
}

func (t tee) OperationFailed(ctx context.Context, op string, d time.Duration, err error) {
	t.a.OperationFailed(ctx, op, d, err)
	t.b.OperationFailed(ctx, op, d, err)
}

func (t tee) RecordMetric(ctx context.Context, name string, value float64, unit string) {
	t.a.RecordMetric(ctx, name, value, unit)
	t.b.RecordMetric(ctx, name, value, unit)
}

func (t tee) ResourceAllocated(ctx context.Context, resource string, amount float64) {
	t.a.ResourceAllocated(ctx, resource, amount)
	t.b.ResourceAllocated(ctx, resource, amount)
}

func (t tee) ResourceReleased(ctx context.Context, resource string, amount float64) {
	t.a.ResourceReleased(ctx, resource, amount)
	t.b.ResourceReleased(ctx, resource, amount)
}

func (t tee) Time(ctx context.Context, op string) func() {
	if !t.Enabled() {
		return noopDone
	}
	start := time.Now()
	return func() { t.OperationComplete(ctx, op, time.Since(start)) }
}

func (t tee) Enabled() bool { return t.a.Enabled() || t.b.Enabled() }

// Noop is the Disabled coordinator: every method does nothing, allocates
// nothing, and costs about a nanosecond.
type Noop struct{}

// PhaseStart does nothing.
func (Noop) PhaseStart(context.Context, string, string) {}

// PhaseEnd does nothing.
func (Noop) PhaseEnd(context.Context, string, string, time.Duration, string) {}

// OperationComplete does nothing.
func (Noop) OperationComplete(context.Context, string, time.Duration) {}

// OperationFailed does nothing.
func (Noop) OperationFailed(context.Context, string, time.Duration, error) {}

// RecordMetric does nothing.
func (Noop) RecordMetric(context.Context, string, float64, string) {}

// ResourceAllocated does nothing.
func (Noop) ResourceAllocated(context.Context, string, float64) {}

// ResourceReleased does nothing.
func (Noop) ResourceReleased(context.Context, string, float64) {}

// Time does nothing.
func (Noop) Time(context.Context, string) func() { return noopDone }

// Enabled reports false.
func (Noop) Enabled() bool { return false }
