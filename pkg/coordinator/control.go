package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Switchable is a Coordinator whose mode (and sample rate) can change at run
// time without a restart; calls go to the current implementation through one
// atomic load. It is safe for concurrent use.
type Switchable struct {
	bus  events.Publisher
	o    Options
	cur  atomic.Pointer[current]
	mu   sync.Mutex // serialises changes
	ed   *EventDrivenCoordinator
	dir  *DirectCoordinator
	mode MonitoringMode // the mode chosen (kept while disabled)
	off  bool
}

type current struct {
	c    Coordinator
	mode MonitoringMode
}

var _ Coordinator = (*Switchable)(nil)

// NewSwitchable starts in mode. bus receives the EventDriven events; the
// Direct aggregates survive mode switches.
func NewSwitchable(mode MonitoringMode, bus events.Publisher, o Options) (*Switchable, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Switchable{bus: bus, o: o, dir: NewDirect()}
	if err := s.SetMode(mode); err != nil {
		return nil, err
	}
	return s, nil
}

// SetMode switches to mode.
func (s *Switchable) SetMode(mode MonitoringMode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.impl(mode); err != nil {
		return err
	}
	s.mode = mode
	s.apply()
	return nil
}

// impl returns (creating on first use) the implementation of mode. Caller
// holds mu.
func (s *Switchable) impl(mode MonitoringMode) (Coordinator, error) {
	switch mode {
	case Disabled:
		return Noop{}, nil
	case Direct:
		return s.dir, nil
	case EventDriven:
		if s.ed == nil {
			if s.bus == nil {
				return nil, errors.New("coordinator: EventDriven mode needs a bus")
			}
			ed, err := NewEventDriven(s.bus, s.o)
			if err != nil {
				return nil, err
			}
			s.ed = ed
		}
		return s.ed, nil
	}
	return nil, fmt.Errorf("coordinator: unknown monitoring mode %q", mode)
}

// apply publishes the current choice. Caller holds mu.
func (s *Switchable) apply() {
	mode := s.mode
	if s.off {
		mode = Disabled
	}
	c, _ := s.impl(mode)
	s.cur.Store(&current{c: c, mode: mode})
}

// SetEnabled turns monitoring off (Disabled) or back on (the chosen mode).
func (s *Switchable) SetEnabled(on bool) {
	s.mu.Lock()
	s.off = !on
	s.apply()
	s.mu.Unlock()
}

// Mode returns the mode in force (Disabled while turned off).
func (s *Switchable) Mode() MonitoringMode { return s.cur.Load().mode }

// SetSampleRate changes the EventDriven sample rate for the event types
// matching pattern ("" for all).
func (s *Switchable) SetSampleRate(pattern string, r float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.impl(EventDriven); err != nil {
		return err
	}
	return s.ed.SetSampleRate(pattern, r)
}

// SampleRate returns the EventDriven sample rate for t (1 before any is set).
func (s *Switchable) SampleRate(t events.Type) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ed == nil {
		return 1
	}
	return s.ed.SampleRate(t)
}

// Direct returns the Direct aggregates (filled while in Direct mode).
func (s *Switchable) Direct() *DirectCoordinator { return s.dir }

// EventDriven returns the EventDriven coordinator, or nil if never used.
func (s *Switchable) EventDriven() *EventDrivenCoordinator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ed
}

// Close flushes and stops the EventDriven coordinator, if any.
func (s *Switchable) Close(ctx context.Context) error {
	s.mu.Lock()
	ed := s.ed
	s.mu.Unlock()
	if ed != nil {
		return ed.Close(ctx)
	}
	return nil
}

// PhaseStart calls the current mode's coordinator.
func (s *Switchable) PhaseStart(ctx context.Context, phase, fieldPath string) {
	s.cur.Load().c.PhaseStart(ctx, phase, fieldPath)
}

// PhaseEnd calls the current mode's coordinator.
func (s *Switchable) PhaseEnd(ctx context.Context, phase, fieldPath string, d time.Duration, status string) {
	s.cur.Load().c.PhaseEnd(ctx, phase, fieldPath, d, status)
}

// OperationComplete calls the current mode's coordinator.
func (s *Switchable) OperationComplete(ctx context.Context, op string, d time.Duration) {
	s.cur.Load().c.OperationComplete(ctx, op, d)
}

// OperationFailed calls the current mode's coordinator.
func (s *Switchable) OperationFailed(ctx context.Context, op string, d time.Duration, err error) {
	s.cur.Load().c.OperationFailed(ctx, op, d, err)
}

// RecordMetric calls the current mode's coordinator.
func (s *Switchable) RecordMetric(ctx context.Context, name string, value float64, unit string) {
	s.cur.Load().c.RecordMetric(ctx, name, value, unit)
}

// ResourceAllocated calls the current mode's coordinator.
func (s *Switchable) ResourceAllocated(ctx context.Context, resource string, amount float64) {
	s.cur.Load().c.ResourceAllocated(ctx, resource, amount)
}

// ResourceReleased calls the current mode's coordinator.
func (s *Switchable) ResourceReleased(ctx context.Context, resource string, amount float64) {
	s.cur.Load().c.ResourceReleased(ctx, resource, amount)
}

// Time calls the current mode's coordinator.
func (s *Switchable) Time(ctx context.Context, op string) func() {
	return s.cur.Load().c.Time(ctx, op)
}

// Enabled calls the current mode's coordinator.
func (s *Switchable) Enabled() bool { return s.cur.Load().c.Enabled() }

// ControlPattern is what [Control] subscribes to.
const ControlPattern = "monitoring.>"

// Control subscribes s to the fleet's control events on bus: a
// monitoring.mode.switched event sets the mode, monitoring.sampled the sample
// rate (of the event types matching its scope), monitoring.enabled and
// monitoring.disabled turn monitoring on and off. Each change is
// acknowledged with a monitoring.config.changed event from source that names
// the control event it answers (config "in_reply_to"). Other monitoring
// events are ignored. Unsubscribe the returned subscription to stop.
func Control(ctx context.Context, bus events.Bus, s *Switchable, source string) (events.Subscription, error) {
	h := events.HandlerFunc(func(ctx context.Context, ev events.Event) error {
		c, ok := ev.(*events.ControlEvent)
		if !ok {
			return nil
		}
		var err error
		switch c.Type {
		case events.ModeSwitched:
			var mode MonitoringMode
			if mode, err = ParseMode(c.Mode); err == nil {
				err = s.SetMode(mode)
			}
		case events.MonitoringSampled:
			err = s.SetSampleRate(c.Scope, c.SampleRate)
		case events.MonitoringEnabled:
			s.SetEnabled(true)
		case events.MonitoringDisabled:
			s.SetEnabled(false)
		default:
			return nil
		}
		ack := events.NewControlEvent(events.ConfigChanged, source)
		ack.Mode = string(s.Mode())
		ack.Scope = c.Scope
		ack.SampleRate = s.SampleRate(events.OperationComplete)
		ack.Config = map[string]string{
			"component": "coordinator", "in_reply_to": c.ID, "control": string(c.Type),
			"sample_rate": strconv.FormatFloat(ack.SampleRate, 'g', -1, 64),
		}
		ack.SetTrace(c.Trace().Child())
		if err != nil {
			ack.Reason = "control refused: " + err.Error()
			ack.Config["error"] = err.Error()
		} else {
			ack.Reason = "applied " + string(c.Type)
		}
		return bus.Publish(ctx, ack)
	})
	return bus.Subscribe(ctx, ControlPattern, h)
}
