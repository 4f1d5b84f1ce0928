package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors shared by every bus. Buses wrap them with the operation, so match
// them with [errors.Is].
var (
	// ErrClosed is returned by a bus or subscription used after Close.
	ErrClosed = errors.New("bus closed")
	// ErrUnsupported is returned by Subscribe for an option the bus cannot
	// honour (e.g. a durable consumer on a bus without persistence). The bus
	// never silently ignores an option.
	ErrUnsupported = errors.New("not supported by this bus")
	// ErrInvalidOption reports a subscribe option with a bad value.
	ErrInvalidOption = errors.New("invalid subscribe option")
	// ErrConsumerConflict is returned when a durable or group name is reused
	// with a different pattern.
	ErrConsumerConflict = errors.New("consumer exists with a different pattern")
)

// Publisher publishes events: the producer side of a bus.
//
// What a nil error from Publish promises depends on the implementation:
//   - [MemoryBus]: the event is in the bus's log (handlers run later);
//   - redisbus: Redis has stored the entry (XADD answered);
//   - jsbus, by default: the message is handed to the NATS connection; the
//     server's acknowledgement arrives later, and a message never
//     acknowledged is retried and finally reported to the bus's
//     OnPublishError. With jsbus's SyncPublish, or with
//     [StoringPublisher.PublishStored], it means stored;
//   - pkg/breaker: published through the wrapped publisher or spooled for
//     a later re-send.
//
// A caller that must not answer before its events are stored (an HTTP door
// replying 2xx) uses [StoringPublisher].
type Publisher interface {
	// Publish validates ev, encodes it and hands it to the transport; it
	// returns when the transport has taken the event (see above for what
	// that means per bus) or failed to. Invalid events fail with
	// [ErrInvalid], oversized ones with [ErrPayloadTooLarge], a closed bus
	// with [ErrClosed]; none of these is worth retrying.
	Publish(ctx context.Context, ev Event) error
}

// StoringPublisher is a [Publisher] that can say when events are stored:
// a door that answers its client "stored" (HTTP 2xx) uses it, so that the
// answer never comes before the transport has the events. The JetStream bus
// implements it; a circuit breaker, which spools instead of waiting, does not.
type StoringPublisher interface {
	Publisher
	// PublishStored publishes evs and returns once the transport has stored
	// every one of them (for JetStream: its PubAck arrived, a duplicate
	// included) or could not, or ctx ends. It returns one error per event,
	// in order: nil exactly when that event is stored. Errors match
	// [ErrInvalid] or [ErrPayloadTooLarge] (resending cannot help) or are
	// transient (not connected, no ack in time, ctx ended: the event may or
	// may not be stored, and resending it with the same id is safe — the
	// transport deduplicates by id). The events are not retained after the
	// call returns. It is safe for concurrent use.
	PublishStored(ctx context.Context, evs []Event) []error
}

// AsyncFailureNotifier is a [Publisher] whose Publish may return nil before
// the event is stored (jsbus by default) and that can say which events then
// failed for good. pkg/breaker registers itself through it, so that such
// events go to its spool without any wiring by the caller.
type AsyncFailureNotifier interface {
	Publisher
	// NotifyAsyncFailure calls fn, from a bus goroutine, for every event
	// whose publish returned nil but was never stored; fn must not block.
	// While at least one fn is registered the bus hands failures over at
	// once instead of re-sending them itself: the registrant owns the retry.
	// stop unregisters fn; it is idempotent.
	NotifyAsyncFailure(fn func(ev Event, err error)) (stop func())
}

// Flusher is a [Publisher] that can wait until what it accepted is stored
// or reported failed.
type Flusher interface {
	// Flush sends what is batched and waits until every accepted publish
	// is acknowledged or reported failed, or ctx ends.
	Flush(ctx context.Context) error
}

// Subscriber delivers published events to handlers: the consumer side of a
// bus.
type Subscriber interface {
	// Subscribe delivers every event whose type matches pattern (see
	// [ValidatePattern]) to h, until the subscription is unsubscribed or the
	// bus is closed. ctx bounds the subscribe call itself, not the
	// subscription's life. Options the bus cannot honour fail with
	// [ErrUnsupported].
	Subscribe(ctx context.Context, pattern string, h Handler, opts ...SubscribeOption) (Subscription, error)
}

// Bus is a transport for events: the in-memory, no-op, JetStream and Redis
// buses all implement it, so application code does not change with the
// transport.
type Bus interface {
	Publisher
	Subscriber
	// IsConnected reports whether the bus can currently reach its transport.
	IsConnected() bool
	// Close stops every subscription, waits (bounded) for handlers in progress
	// and releases the transport. It is idempotent.
	Close() error
}

// Subscription is one active subscription.
type Subscription interface {
	// ID identifies the subscription within its bus.
	ID() string
	// Pattern is the pattern the subscription was made with.
	Pattern() string
	// Unsubscribe stops delivery: no handler call starts after it returns (a
	// call in progress may finish). A durable consumer keeps its position for a
	// later Subscribe with the same name. It is idempotent.
	Unsubscribe() error
}

// Handler handles delivered events. A handler that returns an error (or
// panics) has the event redelivered, where the bus supports redelivery, up to
// the subscription's maximum deliveries; then the event is dead-lettered. A
// handler must be safe for concurrent use when the subscription is in a group.
type Handler interface {
	Handle(ctx context.Context, ev Event) error
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, ev Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, ev Event) error { return f(ctx, ev) }

// Middleware wraps a handler with behaviour of its own (logging, metrics,
// filtering, ...).
type Middleware func(Handler) Handler

// Chain wraps h in mws; the first middleware is the outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for _, mw := range slices.Backward(mws) {
		h = mw(h)
	}
	return h
}

// PanicError is the error a contained handler panic turns into.
type PanicError struct {
	Value any
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// SafeHandle calls h and turns a panic into a [*PanicError]. Buses call
// handlers through it, so a panicking handler never kills a bus.
func SafeHandle(ctx context.Context, h Handler, ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r}
		}
	}()
	return h.Handle(ctx, ev)
}

// Delivery describes one delivery of an event to a handler.
type Delivery struct {
	// SubscriptionID is the receiving subscription's ID.
	SubscriptionID string
	// Subject is the subject the event travelled on.
	Subject string
	// Sequence is the event's position in its bus or stream (0 where the bus
	// has none). Together with the event ID it makes handlers idempotent.
	Sequence uint64
	// Attempt counts deliveries of this event to this consumer, from 1.
	Attempt int
	// Published is when the bus stored the event.
	Published time.Time
}

type deliveryKey struct{}

// ContextWithDelivery returns a copy of ctx carrying d; buses use it before
// calling a handler.
func ContextWithDelivery(ctx context.Context, d Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

// DeliveryFromContext returns the delivery a handler is being called for.
func DeliveryFromContext(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}
