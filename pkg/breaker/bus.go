package breaker

import (
	"context"
	"errors"

	"github.com/jetmon/jetmon/pkg/events"
)

// Bus is an [events.Bus] whose Publish goes through a circuit-breaking
// [Publisher]; subscribing and the rest go straight to the wrapped bus.
type Bus struct {
	events.Bus
	p *Publisher
}

var _ events.Bus = (*Bus)(nil)

// Wrap returns bus with a breaker in front of its Publish. A nil bus fails
// with [ErrNoPublisher].
func Wrap(bus events.Bus, o Options) (*Bus, error) {
	if bus == nil {
		return nil, ErrNoPublisher
	}
	p, err := New(bus, o)
	if err != nil {
		return nil, err
	}
	return &Bus{Bus: bus, p: p}, nil
}

// Publish publishes through the breaker; see [Publisher.Publish].
func (b *Bus) Publish(ctx context.Context, ev events.Event) error { return b.p.Publish(ctx, ev) }

// Breaker returns the circuit-breaking publisher, for its stats, state and
// metrics.
func (b *Bus) Breaker() *Publisher { return b.p }

// Close closes the breaker (a disk spool keeps what is left), then the bus.
func (b *Bus) Close() error { return errors.Join(b.p.Close(), b.Bus.Close()) }
