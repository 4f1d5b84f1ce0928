package jsbus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
)

// Message headers set on every published message.
const (
	HeaderMsgID       = "Nats-Msg-Id"
	HeaderSpecVersion = "ce-specversion"
	HeaderID          = "ce-id"
	HeaderType        = "ce-type"
	HeaderSource      = "ce-source"
	HeaderTime        = "ce-time"
	HeaderTraceparent = "traceparent"
	HeaderContentType = "Content-Type"
	// HeaderBatch carries the number of events in a batch message.
	HeaderBatch = "Jetmon-Batch"
)

// ErrNotConnected is returned by Publish while the connection to NATS is down
// (unless Config.BufferWhileDisconnected). It is transient.
var ErrNotConnected = errors.New("not connected to NATS")

// ReportFailedEvents adapts fn to Config.OnPublishError: it decodes the
// failed message (a single event or a batch) and calls fn for each event,
// e.g. (*breaker.Publisher).Failed, which spools them for a later re-send
// with their original ids.
func ReportFailedEvents(fn func(events.Event, error)) func(*nats.Msg, error) {
	dec := events.Decoder{MaxPayload: -1}
	return func(msg *nats.Msg, err error) {
		_ = dec.EachInBatch(msg.Data, func(it events.BatchItem) {
			if it.Err == nil {
				fn(it.Event, err)
			}
		})
	}
}

// Publish validates ev and publishes it on its subject. An event whose
// message (data and headers) cannot fit the server's max payload is refused
// here, never sent: the error matches [events.ErrPayloadTooLarge] and names
// the limit. While the connection is down it fails at once with
// [ErrNotConnected] (unless Config.BufferWhileDisconnected).
//
// By default (async) it returns once the message is handed to the
// connection, without waiting for the server's ack; ctx is checked on entry
// only. It blocks only while Config.MaxPendingAcks acks are outstanding, and
// then at most 200 ms (nats.go's stall wait) before it fails. The ack is
// awaited in the background for up to Config.PublishTimeout; a message not
// acknowledged is re-sent (Config.PublishRetries) and finally passed to
// Config.OnPublishError.
//
// With Config.SyncPublish it waits for the ack, at most
// Config.PublishTimeout or until ctx ends, and a nil error means stored.
//
// With batching on (Config.BatchMaxEvents > 1), ev joins the open batch of
// its subject and Publish returns at once, except the call that fills the
// batch: it sends the batch as above and returns the send's error. A batch
// that does not fill is sent after Config.BatchMaxDelay. A batch whose send
// fails goes to Config.OnPublishError either way. To learn when events are
// stored, use [Bus.PublishStored].
func (b *Bus) Publish(ctx context.Context, ev events.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("jsbus: publish: %w", err)
	}
	if b.isClosed.Load() {
		return fmt.Errorf("jsbus: publish: %w", events.ErrClosed)
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("jsbus: publish: %w", err)
	}
	if !b.cfg.BufferWhileDisconnected && !b.nc.IsConnected() {
		return fmt.Errorf("jsbus: publish %s: %w", ev.Metadata().Type, ErrNotConnected)
	}
	if b.batcher != nil {
		return b.batcher.add(ev)
	}
	msg := newMsg(ev)
	if size := payloadSize(msg); size > b.maxPayload {
		return b.tooLarge(ev, size)
	}
	if err := b.send(ctx, msg); err != nil {
		return err
	}
	b.stats.published.Add(1)
	return nil
}

// NewMsg returns the message [Bus.Publish] sends for ev (unbatched): its
// subject, wire-form data, Nats-Msg-Id, CloudEvents and traceparent headers.
// It fails like [events.Event.Validate].
func NewMsg(ev events.Event) (*nats.Msg, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return newMsg(ev), nil
}

func newMsg(ev events.Event) *nats.Msg {
	m := ev.Metadata()
	// Encode into a pooled scratch buffer, then keep an exact-size copy: the
	// message owns its data until acknowledged (retries re-send it).
	scratch := scratchPool.Get().(*[]byte)
	enc := ev.AppendJSON((*scratch)[:0])
	data := append(make([]byte, 0, len(enc)), enc...)
	*scratch = enc
	scratchPool.Put(scratch)
	return &nats.Msg{Subject: events.Subject(m.Type, m.Source), Data: data, Header: headers(m, m.ID, 0)}
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// tooLarge is the error for ev, whose message would be size bytes (data and
// headers).
func (b *Bus) tooLarge(ev events.Event, size int) error {
	return fmt.Errorf("jsbus: publish %s: %w: the message would be %d bytes (event and headers), over the limit of %d bytes",
		ev.Metadata().Type, events.ErrPayloadTooLarge, size, b.maxPayload)
}

// payloadSize is what the server counts against its max payload: the data
// and the encoded headers.
func payloadSize(msg *nats.Msg) int {
	return msg.Size() - len(msg.Subject) - len(msg.Reply)
}

// batchIDPrefix starts the Nats-Msg-Id of every batch message.
const batchIDPrefix = "batch-"

// BatchMsgID returns the Nats-Msg-Id (and ce-id) of a batch message holding
// events with these ids, in this order: "batch-" and 32 hex digits of a
// SHA-256 over the ids. A batch re-sent with the same events therefore gets
// the same id, and the server's dedup window drops it.
func BatchMsgID(ids ...string) string {
	var buf []byte
	for _, id := range ids {
		buf = appendID(buf, id)
	}
	return sumID(buf)
}

// appendID appends an event id to the bytes a batch id is derived from.
func appendID(buf []byte, id string) []byte { return append(append(buf, id...), 0) }

func sumID(ids []byte) string {
	sum := sha256.Sum256(ids)
	return batchIDPrefix + hex.EncodeToString(sum[:16])
}

// batchIDPlaceholder has the length of every batch id; it sizes headers
// before the id is known.
var batchIDPlaceholder = BatchMsgID()

// batchBuilder collects the events of one subject into the data of a batch
// message, keeping data and headers within the server's max payload.
type batchBuilder struct {
	buf   []byte // "[" then the events, comma-separated
	n     int
	first events.Meta // headers come from the first event
	ids   []byte      // the events' ids, each followed by a zero byte
	room  int         // header bytes reserved
	limit int         // data bytes the message may carry
}

// reset starts an empty batch whose first event is m, in buf's storage.
func (bb *batchBuilder) reset(m *events.Meta, maxPayload, maxEvents int, buf []byte) {
	buf = append(buf[:0], '[')
	bb.buf = buf
	bb.n = 0
	bb.first = *m
	bb.ids = bb.ids[:0]
	bb.room = payloadSize(&nats.Msg{Header: headers(m, batchIDPlaceholder, maxEvents)})
	bb.limit = maxPayload - bb.room
}

// add appends ev if it fits; otherwise it leaves the batch as it was and
// returns false and the bytes ev alone would take in a batch message (data
// and headers).
func (bb *batchBuilder) add(ev events.Event) (bool, int) {
	mark := len(bb.buf)
	if bb.n > 0 {
		bb.buf = append(bb.buf, ',')
	}
	bb.buf = ev.AppendJSON(bb.buf)
	if len(bb.buf)+1 > bb.limit { // +1: the closing bracket
		size := len(bb.buf) - mark
		if bb.n > 0 {
			size-- // the comma
		}
		bb.buf = bb.buf[:mark]
		return false, size + 2 + bb.room
	}
	bb.n++
	bb.ids = appendID(bb.ids, ev.Metadata().ID)
	return true, 0
}

// msg returns the batch message; it owns buf from now on.
func (bb *batchBuilder) msg(subject string) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: append(bb.buf, ']'), Header: headers(&bb.first, sumID(bb.ids), bb.n)}
}

// headers builds the headers of a message whose first (or only) event is m.
// One backing array holds every value, to keep allocations down.
func headers(m *events.Meta, msgID string, batch int) nats.Header {
	n := 7
	if !m.TraceID.IsZero() {
		n++
	}
	if batch > 0 {
		n++
	}
	vals := make([]string, 0, n)
	h := make(nats.Header, n)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(HeaderMsgID, msgID)
	set(HeaderSpecVersion, "1.0")
	set(HeaderID, msgID)
	set(HeaderType, string(m.Type))
	set(HeaderSource, m.Source)
	set(HeaderTime, m.Timestamp.UTC().Format(time.RFC3339Nano)) // once per message, not per event
	set(HeaderContentType, "application/json")
	if !m.TraceID.IsZero() {
		set(HeaderTraceparent, m.Trace().Traceparent())
	}
	if batch > 0 {
		set(HeaderBatch, strconv.Itoa(batch))
	}
	return h
}

// send publishes msg: synchronously (waiting for the ack) or asynchronously.
func (b *Bus) send(ctx context.Context, msg *nats.Msg) error {
	if b.cfg.SyncPublish {
		ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
		defer cancel()
		if _, err := b.js.PublishMsg(ctx, msg); err != nil {
			return sendError(msg, err)
		}
		return nil
	}
	// No publish options: nats.go's fast path. A publisher stalled on
	// MaxPendingAcks waits at most nats.go's stall wait (200 ms).
	if _, err := b.js.PublishMsgAsync(msg); err != nil {
		return sendError(msg, err)
	}
	return nil
}

// sendError wraps a failed publish of msg; a message over a size limit
// (the server's or the stream's) matches [events.ErrPayloadTooLarge], so
// that nobody retries it.
func sendError(msg *nats.Msg, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		return fmt.Errorf("jsbus: publish %s: %w: %w", msg.Subject, events.ErrPayloadTooLarge, err)
	}
	return fmt.Errorf("jsbus: publish %s: %w", msg.Subject, err)
}

// onAsyncAck runs for every acknowledged async publish.
func (b *Bus) onAsyncAck(_ jetstream.JetStream, msg *nats.Msg, ack *jetstream.PubAck) {
	b.stats.acked.Add(1)
	if isAwaited(msg) {
		return // PublishStored counts its own duplicates
	}
	if ack != nil && ack.Duplicate {
		b.stats.duplicates.Add(1)
	}
	if b.stats.publishRetries.Load() > 0 {
		b.retryMu.Lock()
		delete(b.retryCounts, msg.Header.Get(HeaderMsgID))
		b.retryMu.Unlock()
	}
}

// onAsyncError runs (possibly under nats.go's publisher lock) for every async
// publish that failed; the retry loop re-sends it.
func (b *Bus) onAsyncError(_ jetstream.JetStream, msg *nats.Msg, err error) {
	if isAwaited(msg) {
		return // PublishStored reports it to its caller
	}
	if b.cfg.PublishRetries < 0 || b.failures.any() {
		b.fail(msg, err)
		return
	}
	select {
	case b.retries <- msg:
	default:
		b.fail(msg, fmt.Errorf("retry queue full: %w", err))
	}
}

// retryLoop re-sends failed async publishes with their original Nats-Msg-Id,
// so the server drops any that had in fact been stored.
func (b *Bus) retryLoop() {
	for {
		select {
		case <-b.done:
			for {
				select {
				case msg := <-b.retries:
					b.fail(msg, fmt.Errorf("bus closed before the publish was acknowledged: %w", events.ErrClosed))
				default:
					return
				}
			}
		case msg := <-b.retries:
			id := msg.Header.Get(HeaderMsgID)
			b.retryMu.Lock()
			b.retryCounts[id]++
			n := b.retryCounts[id]
			if n > b.cfg.PublishRetries {
				delete(b.retryCounts, id)
			}
			b.retryMu.Unlock()
			if n > b.cfg.PublishRetries {
				b.fail(msg, fmt.Errorf("no acknowledgement after %d attempts", n))
				continue
			}
			b.stats.publishRetries.Add(1)
			again := &nats.Msg{Subject: msg.Subject, Data: msg.Data, Header: msg.Header}
			if _, err := b.js.PublishMsgAsync(again); err != nil {
				b.onAsyncError(b.js, again, err)
				b.sleep(context.Background(), b.cfg.ReconnectWait)
			}
		}
	}
}

// fail gives up on an async publish: it is counted and handed to
// OnPublishError and the handlers registered with NotifyAsyncFailure.
func (b *Bus) fail(msg *nats.Msg, err error) {
	b.stats.publishFailed.Add(1)
	b.log.Warn().Err(err).Str("subject", msg.Subject).Str("msg_id", msg.Header.Get(HeaderMsgID)).Msg("publish failed")
	if b.cfg.OnPublishError != nil {
		b.cfg.OnPublishError(msg, err)
	}
	b.failures.report(msg, err)
}

// batcher collects events per subject into JSON-array messages.
// batchKey identifies a subject without building its string on every event.
type batchKey struct {
	typ    events.Type
	source string
}

type batcher struct {
	b        *Bus
	mu       sync.Mutex
	open     map[batchKey]*openBatch
	sizeHint map[batchKey]int // bytes of each subject's last batch
	timer    *time.Timer      // armed while any batch is open
	closed   bool
}

type openBatch struct {
	batchBuilder
	subject string
	started time.Time
}

func newBatcher(b *Bus) *batcher {
	return &batcher{b: b, open: map[batchKey]*openBatch{}, sizeHint: map[batchKey]int{}}
}

// add appends ev to its subject's batch and sends the batch when it is full.
// An event that cannot fit a batch message of its own is refused.
func (bt *batcher) add(ev events.Event) error {
	m := ev.Metadata()
	subject := batchKey{m.Type, m.Source}
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.closed {
		return fmt.Errorf("jsbus: publish: %w", events.ErrClosed)
	}
	ob := bt.open[subject]
	if ob == nil {
		ob = bt.start(subject, m, bt.sizeHint[subject])
	}
	ok, size := ob.add(ev)
	if !ok && ob.n > 0 {
		// It does not fit: send the batch without it (a failure is counted
		// and reported by seal), open a new one with it.
		hint := len(ob.buf)
		_ = bt.seal(subject, ob)
		ob = bt.start(subject, m, hint)
		ok, size = ob.add(ev)
	}
	if !ok {
		delete(bt.open, subject) // empty
		return bt.b.tooLarge(ev, size)
	}
	bt.b.stats.published.Add(1)
	if ob.n >= bt.b.cfg.BatchMaxEvents {
		return bt.seal(subject, ob)
	}
	return nil
}

// start opens a batch for subject whose first event is m, with room for
// sizeHint bytes (the size of the subject's last batch). Caller holds mu.
func (bt *batcher) start(subject batchKey, m *events.Meta, sizeHint int) *openBatch {
	size := min(max(sizeHint+sizeHint/8, 4<<10), bt.b.maxPayload+1)
	ob := &openBatch{subject: events.Subject(m.Type, m.Source), started: time.Now()}
	ob.reset(m, bt.b.maxPayload, bt.b.cfg.BatchMaxEvents, make([]byte, 0, size))
	bt.open[subject] = ob
	if bt.timer == nil {
		bt.timer = time.AfterFunc(bt.b.cfg.BatchMaxDelay, bt.flushDue)
	}
	return ob
}

// seal sends ob and forgets it. Caller holds mu.
func (bt *batcher) seal(subject batchKey, ob *openBatch) error {
	delete(bt.open, subject)
	bt.sizeHint[subject] = len(ob.buf) + 1
	msg := ob.msg(ob.subject)
	bt.b.stats.batches.Add(1)
	bt.b.stats.batchedEvents.Add(uint64(ob.n))
	if err := bt.b.send(context.Background(), msg); err != nil {
		bt.b.fail(msg, err)
		return err
	}
	return nil
}

// flushDue sends the batches that waited BatchMaxDelay and re-arms the timer
// for the rest.
func (bt *batcher) flushDue() {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	bt.timer = nil
	now := time.Now()
	var next time.Duration
	for subject, ob := range bt.open {
		if wait := bt.b.cfg.BatchMaxDelay - now.Sub(ob.started); wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		_ = bt.seal(subject, ob) // failures are counted and reported by seal
	}
	if next > 0 && !bt.closed {
		bt.timer = time.AfterFunc(next, bt.flushDue)
	}
}

// flushAll sends every open batch now.
func (bt *batcher) flushAll() {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	for subject, ob := range bt.open {
		_ = bt.seal(subject, ob)
	}
}

// close sends every open batch and refuses further events.
func (bt *batcher) close() {
	bt.mu.Lock()
	bt.closed = true
	if bt.timer != nil {
		bt.timer.Stop()
	}
	bt.mu.Unlock()
	bt.flushAll()
}
