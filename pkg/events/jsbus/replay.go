package jsbus

import (
	"context"
	"fmt"
	"time"

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
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("jsbus: replay %q: %w", pattern, err)
	}
	defer it.Stop()
	// Next blocks while no message is pending; stop it when ctx ends.
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	if ci, err := cons.Info(ctx); err != nil {
		return fmt.Errorf("jsbus: replay %q: %w", pattern, err)
	} else if ci.NumPending == 0 {
		return nil // nothing in the range matches
	}
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("jsbus: replay %q: %w", pattern, ctx.Err())
			}
			return fmt.Errorf("jsbus: replay %q: %w", pattern, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("jsbus: replay %q: %w", pattern, err)
		}
		if md.Sequence.Stream > last || (!o.To.IsZero() && !md.Timestamp.Before(o.To)) {
			return nil // stored after the replay started, or after To
		}
		dctx := events.ContextWithDelivery(ctx, events.Delivery{
			Subject: msg.Subject(), Sequence: md.Sequence.Stream, Attempt: 1, Published: md.Timestamp,
		})
		st.Messages++
		herr := b.eachEvent(msg, func(ev events.Event) error {
			st.Events++
			return h.Handle(dctx, ev)
		}, func([]byte, error) { st.Undecodable++ })
		if herr != nil {
			return fmt.Errorf("jsbus: replay %q: handler at %s #%d: %w", pattern, name, md.Sequence.Stream, herr)
		}
		if o.Progress != nil {
			o.Progress(name, md.Sequence.Stream, last)
		}
		// NumPending counts the matching messages after this one: none
		// left, or past the end of the range, and the replay is done.
		if md.Sequence.Stream >= last || md.NumPending == 0 {
			return nil
		}
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
