package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrTooMuch is returned when a query would read more stored messages than
// [Options].MaxScan allows: narrow the filter or the range.
var ErrTooMuch = errors.New("history: the query reads too many stored messages; narrow the filter or the time range")

// scan calls fn for each message of stream matching filter stored at or
// after from, in stream order, and stops after the first message stored at
// or after until (not passed to fn), at the last message stored when the
// scan started, after max messages ([ErrTooMuch]), at fn's first error, or
// when ctx ends. It reads with an ordered consumer (unacknowledged,
// flow-controlled, invisible to other consumers) and deletes it afterwards.
func scan(ctx context.Context, js jetstream.JetStream, stream string, filters []string, from, until time.Time, maxMsgs int, fn func(jetstream.Msg) error) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("history: stream %s: %w", stream, err)
	}
	last := st.CachedInfo().State.LastSeq
	if last == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, InactiveThreshold: 30 * time.Second}
	if from.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	} else {
		t := from
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("history: read %s: %w", stream, err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = js.DeleteConsumer(dctx, stream, info.Name)
			cancel()
		}
	}()
	ci, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("history: read %s: %w", stream, err)
	}
	if ci.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2048))
	if err != nil {
		return fmt.Errorf("history: read %s: %w", stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for n := 0; ; n++ {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("history: read %s: %w", stream, ctx.Err())
			}
			return fmt.Errorf("history: read %s: %w", stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("history: read %s: %w", stream, err)
		}
		if md.Sequence.Stream > last || (!until.IsZero() && !md.Timestamp.Before(until)) {
			return nil
		}
		if n >= maxMsgs {
			return ErrTooMuch
		}
		if err := fn(msg); err != nil {
			return err
		}
		if md.Sequence.Stream >= last || md.NumPending == 0 {
			return nil
		}
	}
}
