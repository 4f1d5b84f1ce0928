package jsbus

import (
	"context"
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

// Publish validates ev and publishes it on its subject. By default it returns
// once the message is handed to the connection (see Config.SyncPublish); it
// blocks at most PublishTimeout when too many acks are pending. With batching
// on, ev joins the open batch of its subject.
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
	if len(msg.Data) > b.maxPayload {
		return b.tooLarge(ev, len(msg.Data))
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

func (b *Bus) tooLarge(ev events.Event, size int) error {
	return fmt.Errorf("jsbus: publish %s: %w: %d bytes exceeds the limit of %d",
		ev.Metadata().Type, events.ErrPayloadTooLarge, size, b.maxPayload)
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
			return fmt.Errorf("jsbus: publish %s: %w", msg.Subject, err)
		}
		return nil
	}
	// No publish options: nats.go's fast path. A publisher stalled on
	// MaxPendingAcks waits at most nats.go's stall wait (200 ms).
	if _, err := b.js.PublishMsgAsync(msg); err != nil {
		return fmt.Errorf("jsbus: publish %s: %w", msg.Subject, err)
	}
	return nil
}

// onAsyncAck runs for every acknowledged async publish.
func (b *Bus) onAsyncAck(_ jetstream.JetStream, msg *nats.Msg, ack *jetstream.PubAck) {
	b.stats.acked.Add(1)
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
	if b.cfg.PublishRetries < 0 {
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
// OnPublishError.
func (b *Bus) fail(msg *nats.Msg, err error) {
	b.stats.publishFailed.Add(1)
	b.log.Warn().Err(err).Str("subject", msg.Subject).Str("msg_id", msg.Header.Get(HeaderMsgID)).Msg("publish failed")
	if b.cfg.OnPublishError != nil {
		b.cfg.OnPublishError(msg, err)
	}
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
	subject string
	buf     []byte // "[" then the events, comma-separated; sized for a full batch
	n       int
	first   events.Meta // headers come from the first event
	started time.Time
}

func newBatcher(b *Bus) *batcher {
	return &batcher{b: b, open: map[batchKey]*openBatch{}, sizeHint: map[batchKey]int{}}
}

// add appends ev to its subject's batch and sends the batch when it is full.
func (bt *batcher) add(ev events.Event) error {
	m := ev.Metadata()
	subject := batchKey{m.Type, m.Source}
	limit := bt.b.maxPayload
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.closed {
		return fmt.Errorf("jsbus: publish: %w", events.ErrClosed)
	}
	ob := bt.open[subject]
	if ob == nil {
		ob = bt.start(subject, m, bt.sizeHint[subject])
	}
	mark := len(ob.buf)
	if ob.n > 0 {
		ob.buf = append(ob.buf, ',')
	}
	ob.buf = ev.AppendJSON(ob.buf)
	if len(ob.buf)+1 > limit {
		size := len(ob.buf) - mark
		if ob.n == 0 || size+2 > limit {
			ob.buf = ob.buf[:mark]
			if ob.n == 0 {
				delete(bt.open, subject)
			}
			return bt.b.tooLarge(ev, size)
		}
		// It does not fit: send the batch without it, open a new one with it.
		item := append([]byte(nil), ob.buf[mark+1:]...)
		ob.buf = ob.buf[:mark]
		err := bt.seal(subject, ob)
		ob = bt.start(subject, m, len(ob.buf))
		ob.buf = append(ob.buf, item...)
		if err != nil {
			return err
		}
	}
	ob.n++
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
	ob := &openBatch{subject: events.Subject(m.Type, m.Source), buf: append(make([]byte, 0, size), '['), first: *m, started: time.Now()}
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
	id := events.NewID()
	msg := &nats.Msg{Subject: ob.subject, Data: append(ob.buf, ']'), Header: headers(&ob.first, id, ob.n)}
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
