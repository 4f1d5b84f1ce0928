package events

import (
	"context"
	"strconv"
	"sync/atomic"
)

// NoopBus accepts every event and delivers none: the transport of the
// Disabled monitoring mode. Publish does not allocate. It is safe for
// concurrent use; the zero value is ready to use.
type NoopBus struct {
	closed atomic.Bool
	nextID atomic.Uint64
}

var _ Bus = (*NoopBus)(nil)

// NewNoopBus returns a ready NoopBus.
func NewNoopBus() *NoopBus { return &NoopBus{} }

// Publish discards ev. It fails only with [ErrClosed] after Close.
func (b *NoopBus) Publish(context.Context, Event) error {
	if b.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Subscribe checks pattern and options and returns a subscription that never
// delivers anything.
func (b *NoopBus) Subscribe(_ context.Context, pattern string, _ Handler, opts ...SubscribeOption) (Subscription, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if err := ValidatePattern(pattern); err != nil {
		return nil, err
	}
	if _, err := NewSubscribeConfig(opts...); err != nil {
		return nil, err
	}
	return &noopSubscription{id: "noop-" + strconv.FormatUint(b.nextID.Add(1), 10), pattern: pattern}, nil
}

// IsConnected reports true until Close.
func (b *NoopBus) IsConnected() bool { return !b.closed.Load() }

// Close marks the bus closed. It is idempotent.
func (b *NoopBus) Close() error {
	b.closed.Store(true)
	return nil
}

type noopSubscription struct{ id, pattern string }

func (s *noopSubscription) ID() string         { return s.id }
func (s *noopSubscription) Pattern() string    { return s.pattern }
func (s *noopSubscription) Unsubscribe() error { return nil }
