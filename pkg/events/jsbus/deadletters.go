package jsbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

// DeadLetter is a message a consumer gave up on, as the DEADLETTER stream
// holds it.
type DeadLetter struct {
	// Seq is its sequence in the DEADLETTER stream, which
	// [Bus.RetryDeadLetter] and [Bus.DropDeadLetter] take.
	Seq uint64
	// Stored is when it was dead-lettered.
	Stored time.Time
	// Subject, Stream and OriginalSeq say where the message was.
	Subject     string
	Stream      string
	OriginalSeq uint64
	// Deliveries counts its deliveries before the consumer gave up.
	Deliveries uint64
	// BatchIndex is the item's index when one item of a batch was
	// dead-lettered, else -1.
	BatchIndex int
	// Reason says why it was given up.
	Reason string
	// Data is the message's payload, or the batch item alone.
	Data []byte
	// Header holds the message's headers and the dead-letter ones.
	Header nats.Header
}

func deadLetterOf(seq uint64, stored time.Time, h nats.Header, data []byte) DeadLetter {
	d := DeadLetter{
		Seq: seq, Stored: stored, Header: h, Data: data, BatchIndex: -1,
		Subject: h.Get(HeaderOriginalSubject), Stream: h.Get(HeaderOriginalStream), Reason: h.Get(HeaderDeadReason),
	}
	d.OriginalSeq, _ = strconv.ParseUint(h.Get(HeaderOriginalSeq), 10, 64)
	d.Deliveries, _ = strconv.ParseUint(h.Get(HeaderDeliveries), 10, 64)
	if i, err := strconv.Atoi(h.Get(HeaderBatchIndex)); err == nil {
		d.BatchIndex = i
	}
	return d
}

// DeadLetters returns the dead letters whose event type matches pattern (an
// event pattern such as "performance.>"; ">" for all), oldest first, at most
// limit of them (0: all). The type is read from the original subject, less
// the partition token a partitioned aggregator's input puts in front. It
// only reads.
func (b *Bus) DeadLetters(ctx context.Context, pattern string, limit int) ([]DeadLetter, error) {
	if err := events.ValidatePattern(pattern); err != nil {
		return nil, err
	}
	cons, err := b.js.OrderedConsumer(ctx, streams.DeadLetter, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("jsbus: dead letters %q: %w", pattern, err)
	}
	defer b.deleteOrdered(streams.DeadLetter, cons)
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("jsbus: dead letters %q: %w", pattern, err)
	}
	var out []DeadLetter
	for left := info.NumPending; left > 0 && (limit <= 0 || len(out) < limit); {
		batch, err := cons.Fetch(int(min(left, 256)), jetstream.FetchMaxWait(b.cfg.PublishTimeout))
		if err != nil {
			return out, fmt.Errorf("jsbus: dead letters %q: %w", pattern, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return out, fmt.Errorf("jsbus: dead letters %q: %w", pattern, err)
			}
			left = md.NumPending
			if (limit <= 0 || len(out) < limit) && events.Match(pattern, eventTypeOfDeadLetter(msg.Subject())) {
				out = append(out, deadLetterOf(md.Sequence.Stream, md.Timestamp, msg.Headers(), msg.Data()))
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, fmt.Errorf("jsbus: dead letters %q: %w", pattern, err)
		}
		if n == 0 {
			break // removed meanwhile
		}
	}
	return out, nil
}

// eventTypeOfDeadLetter returns the event type of a dead letter's subject:
// "deadletter.<subject>", where subject is "<type>.<source>", or
// "<partition>.<type>.<source>" for a partitioned aggregator's input.
func eventTypeOfDeadLetter(subject string) events.Type {
	orig := strings.TrimPrefix(subject, streams.DeadLetterPrefix)
	if first, rest, ok := strings.Cut(orig, "."); ok && first != "" && strings.Trim(first, "0123456789") == "" {
		orig = rest
	}
	return events.TypeOfSubject(orig)
}

// ErrNotRetryable is returned by [Bus.RetryDeadLetter] for a dead letter
// whose payload does not decode: published again, it would only be
// dead-lettered again.
var ErrNotRetryable = errors.New("payload does not decode")

// RetryDeadLetter publishes dead letter seq again to its event subject
// ("<type>.<source>", where it was published in the first place), where
// every consumer of that subject receives it as a new message, and
// then removes it from the DEADLETTER stream. It refuses (with
// [ErrNotRetryable]) a payload that does not decode. Should the removal
// fail after the publish, a second retry within the stream's duplicate
// window does not store the message twice.
func (b *Bus) RetryDeadLetter(ctx context.Context, seq uint64) error {
	st, err := b.js.Stream(ctx, streams.DeadLetter)
	if err != nil {
		return fmt.Errorf("jsbus: retry dead letter %d: %w", seq, err)
	}
	raw, err := st.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("jsbus: retry dead letter %d: %w", seq, err)
	}
	d := deadLetterOf(raw.Sequence, raw.Time, raw.Header, raw.Data)
	msg, err := b.retryMsg(d)
	if err != nil {
		return fmt.Errorf("jsbus: retry dead letter %d (%s): %w", seq, d.Subject, err)
	}
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("jsbus: retry dead letter %d: publish to %s: %w", seq, msg.Subject, err)
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("jsbus: retry dead letter %d: published to %s again, but not removed: %w", seq, msg.Subject, err)
	}
	return nil
}

// retryMsg builds the message that publishes d again: an event gets the
// headers Publish would give it, a batch keeps its own; the message id is
// the dead letter's, so that a repeated retry is deduplicated.
func (b *Bus) retryMsg(d DeadLetter) (*nats.Msg, error) {
	id := "dl-retry-" + strconv.FormatUint(d.Seq, 10)
	msg := &nats.Msg{Data: d.Data}
	if (d.Header.Get(HeaderBatch) != "" && d.BatchIndex < 0) || strings.HasPrefix(strings.TrimSpace(string(d.Data)), "[") {
		var bad error
		err := b.decoder.EachInBatch(d.Data, func(item events.BatchItem) {
			switch {
			case item.Err != nil && bad == nil:
				bad = fmt.Errorf("%w: item %d: %w", ErrNotRetryable, item.Index, item.Err)
			case item.Err == nil && msg.Subject == "":
				msg.Subject = events.SubjectOf(item.Event) // a batch holds one subject's events
			}
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotRetryable, err)
		}
		if bad != nil {
			return nil, bad
		}
		if msg.Subject == "" {
			return nil, fmt.Errorf("%w: an empty batch", ErrNotRetryable)
		}
		msg.Header = nats.Header{}
		for k, v := range d.Header {
			if !strings.HasPrefix(k, "Jetmon-") || k == HeaderBatch {
				msg.Header[k] = v
			}
		}
	} else {
		ev, err := b.decoder.Decode(d.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotRetryable, err)
		}
		msg.Subject = events.SubjectOf(ev)
		msg.Header = headers(ev.Metadata(), ev.Metadata().ID, 0)
	}
	msg.Header.Set(HeaderMsgID, id)
	return msg, nil
}

// DropDeadLetter removes dead letter seq for good.
func (b *Bus) DropDeadLetter(ctx context.Context, seq uint64) error {
	st, err := b.js.Stream(ctx, streams.DeadLetter)
	if err != nil {
		return fmt.Errorf("jsbus: drop dead letter %d: %w", seq, err)
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("jsbus: drop dead letter %d: %w", seq, err)
	}
	return nil
}
