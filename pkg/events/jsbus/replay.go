package jsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
)

// ReplayOptions selects the part of history [Bus.Replay] reads.
type ReplayOptions struct {
	// From starts at the first message stored at or after this time; zero
	// starts at FromSeq, or at the beginning.
	From time.Time
	// FromSeq starts at this stream sequence (patterns within one stream).
	FromSeq uint64
	// To stops after the last message stored before this time; zero stops at
	// the last message stored when the replay started.
	To time.Time
	// Progress, if set, is called after each message with the stream, the
	// message's sequence and the stream's last sequence at the start.
	Progress func(stream string, seq, last uint64)
}

// ReplayStats says what a replay read.
type ReplayStats struct {
	Messages uint64
	Events   uint64
	// Undecodable counts messages and batch items skipped because they could
	// not be decoded (a live consumer would have dead-lettered them).
	Undecodable uint64
}

// Replay reads stored history matching pattern with ordered consumers —
// flow-controlled, unacknowledged, invisible to live consumers — and calls h
// for every event in stream order, stream by stream. It stops at the end of
// the selected range, at the first handler error (returned), or when ctx ends.
func (b *Bus) Replay(ctx context.Context, pattern string, o ReplayOptions, h events.Handler) (ReplayStats, error) {
	var st ReplayStats
	if err := events.ValidatePattern(pattern); err != nil {
		return st, err
	}
	names, err := streamsFor(pattern)
	if err != nil {
		return st, err
	}
	if o.FromSeq > 0 && len(names) > 1 {
		return st, fmt.Errorf("jsbus: replay %q: FromSeq needs a pattern within one stream: %w", pattern, events.ErrInvalidOption)
	}
	for _, name := range names {
		if err := b.replayStream(ctx, name, pattern, o, h, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func (b *Bus) replayStream(ctx context.Context, name, pattern string, o ReplayOptions, h events.Handler, st *ReplayStats) error {
	stream, err := b.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("jsbus: replay %q: stream %s: %w", pattern, name, err)
	}
	last := stream.CachedInfo().State.LastSeq
	if last == 0 || (o.FromSeq > last) {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.FilterSubject(pattern)}}
	switch {
	case !o.From.IsZero():
		t := o.From
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case o.FromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.FromSeq
	default:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := b.js.OrderedConsumer(ctx, name, cfg)
	if err != nil {
		return fmt.Errorf("jsbus: replay %q: ordered consumer on %s: %w", pattern, name, err)
	}
	defer b.deleteOrdered(name, cons)
	if ci, err := cons.Info(ctx); err != nil {
		return fmt.Errorf("jsbus: replay %q: %w", pattern, err)
	} else if ci.NumPending == 0 {
		return nil // nothing in the range matches
	}
	r := &replayer{ctx: ctx, b: b, stream: name, pattern: pattern, last: last, o: o, h: h, st: st, done: make(chan error, 1)}
	// Consume's callback, as a raw client reads an ordered consumer: the
	// Messages iterator hands each message over a channel and costs the
	// replay about half its rate.
	cc, err := cons.Consume(r.handle, jetstream.PullMaxMessages(1024),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// The ordered consumer recreates itself after a missed heartbeat
			// or a deleted consumer; a closed connection is the end.
			if errors.Is(err, nats.ErrConnectionClosed) {
				r.mu.Lock()
				defer r.mu.Unlock()
				if !r.stopped {
					r.finish(fmt.Errorf("jsbus: replay %q: %w", pattern, err))
				}
			}
		}))
	if err != nil {
		return fmt.Errorf("jsbus: replay %q: %w", pattern, err)
	}
	var result error
	select {
	case result = <-r.done:
	case <-ctx.Done():
		result = fmt.Errorf("jsbus: replay %q: %w", pattern, ctx.Err())
	}
	r.stop() // waits for a callback in progress; later ones return at once
	cc.Stop()
	return result
}

// replayer is one stream's replay, driven by the ordered consumer's
// callback (one message at a time, in stream order).
type replayer struct {
	ctx     context.Context
	b       *Bus
	stream  string
	pattern string
	last    uint64
	o       ReplayOptions
	h       events.Handler
	st      *ReplayStats
	done    chan error // the outcome, sent once

	mu      sync.Mutex // held by the callback; stop takes it
	stopped bool
}

func (r *replayer) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

func (r *replayer) finish(err error) {
	r.stopped = true
	r.done <- err
}

func (r *replayer) handle(msg jetstream.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		r.finish(fmt.Errorf("jsbus: replay %q: %w", r.pattern, err))
		return
	}
	if md.Sequence.Stream > r.last || (!r.o.To.IsZero() && !md.Timestamp.Before(r.o.To)) {
		r.finish(nil) // stored after the replay started, or after To
		return
	}
	dctx := events.ContextWithDelivery(r.ctx, events.Delivery{
		Subject: msg.Subject(), Sequence: md.Sequence.Stream, Attempt: 1, Published: md.Timestamp,
	})
	r.st.Messages++
	herr := r.b.eachEvent(msg, func(ev events.Event) error {
		r.st.Events++
		return r.h.Handle(dctx, ev)
	}, func([]byte, error) { r.st.Undecodable++ })
	if herr != nil {
		r.finish(fmt.Errorf("jsbus: replay %q: handler at %s #%d: %w", r.pattern, r.stream, md.Sequence.Stream, herr))
		return
	}
	if r.o.Progress != nil {
		r.o.Progress(r.stream, md.Sequence.Stream, r.last)
	}
	// NumPending counts the matching messages after this one: none left,
	// or past the end of the range, and the replay is done.
	if md.Sequence.Stream >= r.last || md.NumPending == 0 {
		r.finish(nil)
	}
}

// deleteOrdered deletes an ordered consumer once it is done with: they are
// ephemeral, but the server would keep them until its inactivity timer.
func (b *Bus) deleteOrdered(stream string, cons jetstream.Consumer) {
	if info := cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
		defer cancel()
		_ = b.js.DeleteConsumer(ctx, stream, info.Name)
	}
}
