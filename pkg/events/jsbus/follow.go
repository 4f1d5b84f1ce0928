package jsbus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
)

// FollowOptions selects where [Bus.Follow] starts.
type FollowOptions struct {
	// All starts at the beginning of the streams.
	All bool
	// From, unless All is set, starts at the first message stored at or
	// after this time; zero starts with the messages stored after Follow
	// is called.
	From time.Time
	// Undecodable, if set, is called (like the handler, one call at a
	// time) for each message or batch item that does not decode, with its
	// subject, stream sequence and bytes (valid during the call only).
	Undecodable func(subject string, seq uint64, raw []byte, err error)
}

// Follow calls h for every event matching pattern as it is stored, from
// o's start on, until ctx ends (it then returns nil) or h fails (that error
// is returned). Like [Bus.Replay] it reads with ordered consumers: nothing
// is acknowledged or dead-lettered and live consumers see no difference. A
// pattern that spans several streams reads them side by side; h is called
// one event at a time, in stream order within each stream, and never after
// Follow returned.
func (b *Bus) Follow(ctx context.Context, pattern string, o FollowOptions, h events.Handler) error {
	if err := events.ValidatePattern(pattern); err != nil {
		return err
	}
	names, err := streamsFor(pattern)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex // one handler call at a time; guards herr
		herr    error
		running []jetstream.ConsumeContext
		created = map[string]jetstream.Consumer{} // by stream
	)
	defer func() {
		cancel()
		for _, cc := range running {
			cc.Stop()
		}
		// A callback that is still running finishes before Follow returns;
		// later ones see ctx ended and do not call h.
		mu.Lock()
		mu.Unlock() //nolint:staticcheck // an empty critical section on purpose: a barrier
		for stream, cons := range created {
			b.deleteOrdered(stream, cons)
		}
	}()
	// failed returns the handler's error, which cancels ctx and so may
	// surface as err while the consumers are set up; else nil if ctx
	// ended (the caller stopped following); else err.
	failed := func(err error) error {
		mu.Lock()
		defer mu.Unlock()
		if herr != nil {
			return herr
		}
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for _, name := range names {
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.FilterSubject(pattern)}}
		switch {
		case o.All:
			cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		case !o.From.IsZero():
			t := o.From
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		default:
			cfg.DeliverPolicy = jetstream.DeliverNewPolicy
		}
		cons, err := b.js.OrderedConsumer(ctx, name, cfg)
		if err != nil {
			return failed(fmt.Errorf("jsbus: follow %q: ordered consumer on %s: %w", pattern, name, err))
		}
		created[name] = cons
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			mu.Lock()
			defer mu.Unlock()
			if herr != nil || ctx.Err() != nil {
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				return
			}
			dctx := events.ContextWithDelivery(ctx, events.Delivery{
				Subject: msg.Subject(), Sequence: md.Sequence.Stream, Attempt: 1, Published: md.Timestamp,
			})
			bad := func(raw []byte, err error) {
				if o.Undecodable != nil {
					o.Undecodable(msg.Subject(), md.Sequence.Stream, raw, err)
				}
			}
			if err := b.eachEvent(msg, func(ev events.Event) error { return h.Handle(dctx, ev) }, bad); err != nil {
				herr = fmt.Errorf("jsbus: follow %q: handler at %s #%d: %w", pattern, name, md.Sequence.Stream, err)
				cancel()
			}
		})
		if err != nil {
			return failed(fmt.Errorf("jsbus: follow %q: consume %s: %w", pattern, name, err))
		}
		running = append(running, cc)
	}
	<-ctx.Done()
	return failed(nil)
}

// eachEvent decodes msg — one event or a batch — and calls fn for each
// event and bad for each message or batch item that does not decode. It
// stops at fn's first error and returns it.
func (b *Bus) eachEvent(msg jetstream.Msg, fn func(events.Event) error, bad func(raw []byte, err error)) error {
	if !isBatch(msg) {
		ev, err := b.decoder.Decode(msg.Data())
		if err != nil {
			bad(msg.Data(), err)
			return nil
		}
		return fn(ev)
	}
	var ferr error
	err := b.decoder.EachInBatch(msg.Data(), func(item events.BatchItem) {
		switch {
		case ferr != nil:
		case item.Err != nil:
			bad(item.Raw, item.Err)
		default:
			ferr = fn(item.Event)
		}
	})
	if err != nil && ferr == nil {
		bad(msg.Data(), err)
	}
	return ferr
}
