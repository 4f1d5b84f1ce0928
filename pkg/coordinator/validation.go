package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// ValidationPhase is the phase name the ValidationMonitoringService uses.
const ValidationPhase = "validation"

// ValidationMonitoringService turns the validation.* events on a bus into
// coordinator phases: validation.started starts the "validation" phase for
// the event's field path (a performance.phase.start, in EventDriven mode);
// validation.completed or validation.failed ends it with the event's
// duration (or the time since the start) and status. The phase carries the
// validation's context id and trace.
type ValidationMonitoringService struct {
	bus events.Subscriber
	c   Coordinator

	mu     sync.Mutex
	subs   []events.Subscription
	starts map[string]time.Time // context id -> start, bounded
}

// maxOpenValidations bounds the starts remembered without an end.
const maxOpenValidations = 100_000

// NewValidationMonitoringService returns a stopped service.
func NewValidationMonitoringService(bus events.Subscriber, c Coordinator) *ValidationMonitoringService {
	return &ValidationMonitoringService{bus: bus, c: c, starts: map[string]time.Time{}}
}

// Start subscribes to validation.* (with opts, e.g. a durable name).
func (s *ValidationMonitoringService) Start(ctx context.Context, opts ...events.SubscribeOption) error {
	sub, err := s.bus.Subscribe(ctx, "validation.*", events.HandlerFunc(s.handle), opts...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	return nil
}

// SubscriptionIDs returns the ids of the service's subscriptions.
func (s *ValidationMonitoringService) SubscriptionIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.subs))
	for i, sub := range s.subs {
		ids[i] = sub.ID()
	}
	return ids
}

// Stop unsubscribes.
func (s *ValidationMonitoringService) Stop() error {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	return nil
}

func (s *ValidationMonitoringService) handle(ctx context.Context, ev events.Event) error {
	v, ok := ev.(*events.ValidationEvent)
	if !ok {
		return nil
	}
	ctx = WithContextID(events.ContextWithTrace(ctx, v.Trace()), v.ContextID)
	switch v.Type {
	case events.ValidationStarted:
		s.mu.Lock()
		if len(s.starts) >= maxOpenValidations {
			s.forgetOldest()
		}
		s.starts[v.ContextID] = v.Timestamp
		s.mu.Unlock()
		s.c.PhaseStart(ctx, ValidationPhase, v.FieldPath)
	case events.ValidationCompleted, events.ValidationFailed:
		s.mu.Lock()
		start, known := s.starts[v.ContextID]
		delete(s.starts, v.ContextID)
		s.mu.Unlock()
		d := time.Duration(v.DurationMS * float64(time.Millisecond))
		if d == 0 && known {
			d = v.Timestamp.Sub(start)
		}
		status := v.Status
		if status == "" {
			status = events.StatusSuccess
			if v.Type == events.ValidationFailed {
				status = events.StatusFailure
			}
		}
		s.c.PhaseEnd(ctx, ValidationPhase, v.FieldPath, d, status)
	}
	return nil
}

// forgetOldest drops the oldest tenth of the open validations. Caller holds mu.
func (s *ValidationMonitoringService) forgetOldest() {
	var cut time.Time
	n := 0
	for _, t := range s.starts {
		if n == 0 || t.Before(cut) {
			cut = t
		}
		n++
	}
	cut = cut.Add(time.Since(cut) / 10)
	for id, t := range s.starts {
		if !t.After(cut) {
			delete(s.starts, id)
		}
	}
}
