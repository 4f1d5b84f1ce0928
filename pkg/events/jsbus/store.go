package jsbus

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
)

var _ events.StoringPublisher = (*Bus)(nil)

// awaited holds the messages of PublishStored calls whose PubAck is still
// outstanding. Their callers wait for the ack futures themselves, so the
// bus's async error path (retries, Config.OnPublishError) leaves them alone:
// a caller that was told "not stored" re-sends them itself. Keys are
// *nats.Msg, unique across buses.
var awaited sync.Map

// isAwaited reports whether a PublishStored call waits for msg, and forgets
// msg: nats.go reports each message's outcome once.
func isAwaited(msg *nats.Msg) bool {
	_, ok := awaited.LoadAndDelete(msg)
	return ok
}

// storedMsg is one message of a PublishStored call and the indexes of the
// events it carries.
type storedMsg struct {
	msg *nats.Msg
	idx []int
	ack jetstream.PubAckFuture
}

// PublishStored publishes evs and waits until JetStream has acknowledged
// (stored) each of them, implementing [events.StoringPublisher]. The result
// has one error per event: nil exactly when the event is stored (a
// duplicate within the stream's dedup window counts as stored).
//
// With batching on (Config.BatchMaxEvents > 1) the events of one subject go
// in batch messages of at most BatchMaxEvents events, each within the
// server's max payload counting its headers, with a Nats-Msg-Id derived from
// the events' ids ([BatchMsgID]): the same events sent again in the same
// order make the same messages, which the server drops as duplicates. These
// batches are sealed at once; they never wait for BatchMaxDelay or mix with
// events given to [Bus.Publish]. Without batching each event is its own
// message, with its id as the Nats-Msg-Id.
//
// An invalid event fails with [events.ErrInvalid], one whose message cannot
// fit with [events.ErrPayloadTooLarge] naming the limit — both before
// anything is sent. Other errors are transient: not connected
// ([ErrNotConnected]), no ack within Config.PublishTimeout or before ctx
// ends, the bus closed ([events.ErrClosed]); the event may then be stored
// or not, and sending it again with the same id is safe. Failed messages are
// neither retried by the bus nor passed to Config.OnPublishError: the
// caller has the errors. PublishStored is safe for concurrent use and keeps
// no reference to evs after it returns.
func (b *Bus) PublishStored(ctx context.Context, evs []events.Event) []error {
	errs := make([]error, len(evs))
	failAll := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	if len(evs) == 0 {
		return errs
	}
	if err := ctx.Err(); err != nil {
		return failAll(fmt.Errorf("jsbus: publish: %w", err))
	}
	if b.isClosed.Load() {
		return failAll(fmt.Errorf("jsbus: publish: %w", events.ErrClosed))
	}
	if !b.cfg.BufferWhileDisconnected && !b.nc.IsConnected() {
		return failAll(fmt.Errorf("jsbus: publish: %w", ErrNotConnected))
	}
	msgs := b.storedMsgs(evs, errs)
	for i := range msgs {
		sm := &msgs[i]
		awaited.Store(sm.msg, struct{}{})
		ack, err := b.js.PublishMsgAsync(sm.msg)
		if err != nil {
			awaited.Delete(sm.msg)
			sm.fail(errs, sendError(sm.msg, err))
			continue
		}
		sm.ack = ack
		b.stats.published.Add(uint64(len(sm.idx)))
	}
	for i := range msgs {
		sm := &msgs[i]
		if sm.ack == nil {
			continue
		}
		select {
		case ack := <-sm.ack.Ok():
			b.acked(ack)
		case err := <-sm.ack.Err():
			sm.fail(errs, sendError(sm.msg, err))
		case <-ctx.Done():
			return b.unacked(msgs[i:], errs, fmt.Errorf("jsbus: publish: no acknowledgement yet: %w", ctx.Err()))
		case <-b.done:
			return b.unacked(msgs[i:], errs, fmt.Errorf("jsbus: publish: no acknowledgement before the bus closed: %w", events.ErrClosed))
		}
	}
	return errs
}

// unacked sets err for the events of msgs whose ack has not come; it
// returns errs.
func (b *Bus) unacked(msgs []storedMsg, errs []error, err error) []error {
	for i := range msgs {
		sm := &msgs[i]
		if sm.ack == nil {
			continue
		}
		select {
		case ack := <-sm.ack.Ok():
			b.acked(ack)
		case aerr := <-sm.ack.Err():
			sm.fail(errs, sendError(sm.msg, aerr))
		default:
			sm.fail(errs, err)
		}
	}
	return errs
}

// acked counts a stored message the server had already (a duplicate).
func (b *Bus) acked(ack *jetstream.PubAck) {
	if ack != nil && ack.Duplicate {
		b.stats.duplicates.Add(1)
	}
}

func (sm *storedMsg) fail(errs []error, err error) {
	for _, i := range sm.idx {
		errs[i] = err
	}
}

// storedMsgs builds the messages of a PublishStored call; it sets errs for
// the events that cannot be sent.
func (b *Bus) storedMsgs(evs []events.Event, errs []error) []storedMsg {
	var msgs []storedMsg
	ok := func(i int, ev events.Event) bool {
		if err := ev.Validate(); err != nil {
			errs[i] = fmt.Errorf("jsbus: publish: %w", err)
			return false
		}
		return true
	}
	if b.batcher == nil {
		msgs = make([]storedMsg, 0, len(evs))
		for i, ev := range evs {
			if !ok(i, ev) {
				continue
			}
			msg := newMsg(ev)
			if size := payloadSize(msg); size > b.maxPayload {
				errs[i] = b.tooLarge(ev, size)
				continue
			}
			msgs = append(msgs, storedMsg{msg: msg, idx: []int{i}})
		}
		return msgs
	}
	// Group by subject, in order of first appearance.
	var keys []batchKey
	groups := map[batchKey][]int{}
	for i, ev := range evs {
		if !ok(i, ev) {
			continue
		}
		m := ev.Metadata()
		k := batchKey{m.Type, m.Source}
		if _, seen := groups[k]; !seen {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	maxEvents := b.cfg.BatchMaxEvents
	var bb batchBuilder
	for _, k := range keys {
		subject := events.Subject(k.typ, k.source)
		var idx []int
		seal := func() {
			if bb.n > 0 {
				msgs = append(msgs, storedMsg{msg: bb.msg(subject), idx: idx})
				idx, bb.n = nil, 0
			}
		}
		for _, i := range groups[k] {
			ev := evs[i]
			if bb.n == 0 {
				bb.reset(ev.Metadata(), b.maxPayload, maxEvents, make([]byte, 0, 4<<10))
			}
			added, size := bb.add(ev)
			if !added && bb.n > 0 {
				seal()
				bb.reset(ev.Metadata(), b.maxPayload, maxEvents, make([]byte, 0, 4<<10))
				added, size = bb.add(ev)
			}
			if !added {
				errs[i] = b.tooLarge(ev, size)
				continue
			}
			idx = append(idx, i)
			if bb.n >= maxEvents {
				seal()
			}
		}
		seal()
	}
	b.stats.batches.Add(uint64(len(msgs)))
	for _, sm := range msgs {
		b.stats.batchedEvents.Add(uint64(len(sm.idx)))
	}
	return msgs
}
