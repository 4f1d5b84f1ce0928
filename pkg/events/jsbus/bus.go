// Package jsbus is the [events.Bus] on NATS JetStream: durable, replayable,
// horizontally scalable, and interchangeable with the in-memory and Redis
// buses.
//
// Events of type T from source S are published on subject T.S (see
// [events.Subject]) into the stream of their family (streams/), with
// Nats-Msg-Id set to the event (or batch) id so that a re-send is
// deduplicated by the server, CloudEvents headers (ce-specversion, ce-id,
// ce-type, ce-source, ce-time) and a W3C traceparent. Subscriptions are pull
// consumers: ephemeral for a plain subscribe, named for [events.Durable] and
// [events.Group]; a message is acked after its handler succeeds, naked with
// a growing delay when it fails, and dead-lettered (subject
// "deadletter.<original subject>", reason in headers) when it cannot be
// decoded or its deliveries run out.
package jsbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

// Bus is the JetStream implementation of [events.Bus]. It is safe for
// concurrent use.
type Bus struct {
	cfg        Config
	nc         *nats.Conn
	ownConn    bool
	js         jetstream.JetStream
	log        zerolog.Logger
	maxPayload int
	decoder    events.Decoder
	batcher    *batcher

	mu       sync.Mutex
	subs     map[*subscription]struct{}
	closed   bool
	isClosed atomic.Bool   // closed, readable without mu on the publish path
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup

	retries     chan *nats.Msg // async publishes to re-send
	retryMu     sync.Mutex
	retryCounts map[string]int
	failures    failureHandlers // NotifyAsyncFailure's registrants

	stats counters
}

var _ events.Bus = (*Bus)(nil)

// counters are the bus's statistics; see [Stats].
type counters struct {
	published, acked, duplicates, publishRetries, publishFailed atomic.Uint64
	batches, batchedEvents                                      atomic.Uint64
	delivered, handlerErrors, panics, deadLettered              atomic.Uint64
	decodeErrors, consumeErrors, consumersRecreated             atomic.Uint64
}

// Stats counts what a [Bus] did since it was connected.
type Stats struct {
	Published      uint64 // events accepted by Publish
	Acked          uint64 // messages the server acknowledged (async mode)
	Duplicates     uint64 // acks that reported a duplicate (dedup at work)
	PublishRetries uint64 // async re-sends after an ack failure
	PublishFailed  uint64 // async publishes given up on (see OnPublishError)
	Batches        uint64 // batch messages sent
	BatchedEvents  uint64 // events sent inside batches

	Delivered          uint64 // handler calls that succeeded
	HandlerErrors      uint64 // handler calls that failed (panics included)
	Panics             uint64 // handler calls that panicked
	DeadLettered       uint64 // messages or batch items sent to the dead-letter subject
	DecodeErrors       uint64 // messages or batch items that could not be decoded
	ConsumeErrors      uint64 // errors reported by the JetStream consumers
	ConsumersRecreated uint64 // consumers recreated after deletion
}

// Connect dials the servers in cfg (or uses cfg.Conn), applies the stream
// definitions unless cfg.SkipStreams, and returns a ready bus. Errors never
// include credentials.
//
// ctx bounds only the connect call, and within it only the applying of the
// stream definitions: the dial is bounded by cfg.ConnectTimeout (nats.go's
// connect takes no context). The bus does not keep ctx: it lives, and
// reconnects, until [Bus.Close], whatever becomes of ctx.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := zerolog.Nop()
	if cfg.Logger != nil {
		log = cfg.Logger.With().Str("component", "jsbus").Logger()
	}
	b := &Bus{
		cfg: cfg, log: log, subs: map[*subscription]struct{}{}, done: make(chan struct{}),
		retries: make(chan *nats.Msg, cfg.MaxPendingAcks), retryCounts: map[string]int{},
	}
	if cfg.Conn != nil {
		b.nc = cfg.Conn
	} else {
		opts, err := cfg.natsOptions(log)
		if err != nil {
			return nil, err
		}
		nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
		if err != nil {
			return nil, fmt.Errorf("jsbus: connect to %s: %w", redactAll(cfg.URLs), err)
		}
		b.nc, b.ownConn = nc, true
	}
	js, err := jetstream.New(b.nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPendingAcks),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
		jetstream.WithPublishAsyncErrHandler(b.onAsyncError),
		jetstream.WithPublishAsyncAckHandler(b.onAsyncAck),
	)
	if err != nil {
		b.closeConn()
		return nil, fmt.Errorf("jsbus: %w", err)
	}
	b.js = js
	b.maxPayload = int(b.nc.MaxPayload())
	if cfg.MaxPayload > 0 && cfg.MaxPayload < b.maxPayload {
		b.maxPayload = cfg.MaxPayload
	}
	b.decoder = events.Decoder{MaxPayload: -1}
	if !cfg.SkipStreams {
		if err := b.applyStreams(ctx); err != nil {
			b.closeConn()
			return nil, err
		}
	}
	if cfg.BatchMaxEvents > 1 {
		b.batcher = newBatcher(b)
	}
	b.wg.Go(b.retryLoop)
	log.Info().Str("server", b.nc.ConnectedServerName()).Bool("batching", b.batcher != nil).Msg("connected")
	return b, nil
}

func (b *Bus) applyStreams(ctx context.Context) error {
	defs, err := streams.Definitions()
	if err != nil {
		return fmt.Errorf("jsbus: %w", err)
	}
	results, err := streams.Apply(ctx, b.js, defs, b.cfg.Streams)
	for _, r := range results {
		if r.Outcome != streams.Unchanged {
			b.log.Info().Str("stream", r.Stream).Str("outcome", string(r.Outcome)).Msg("stream definition applied")
		}
	}
	if err != nil {
		return fmt.Errorf("jsbus: apply streams: %w", err)
	}
	return nil
}

func redactAll(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = Redact(u)
	}
	return strings.Join(out, ",")
}

// StreamReplicas returns the replica count the bus applies to streams (0:
// as in the definitions).
func (b *Bus) StreamReplicas() int { return b.cfg.Streams.Replicas }

// JetStream returns the underlying JetStream context, for administration.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Conn returns the underlying NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// IsConnected reports whether the connection to NATS is up and the bus open.
func (b *Bus) IsConnected() bool {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	return !closed && b.nc.IsConnected()
}

// Flush sends any batched events and waits until the server has acknowledged
// every async publish, or ctx ends.
func (b *Bus) Flush(ctx context.Context) error {
	if b.batcher != nil {
		b.batcher.flushAll()
	}
	select {
	case <-b.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jsbus: flush: %d publishes unacknowledged: %w", b.js.PublishAsyncPending(), ctx.Err())
	}
}

// Close stops every subscription (waiting for handlers in progress), sends
// batched events and waits for pending acks — all within CloseTimeout — then
// closes the connection if the bus opened it. It is idempotent.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.isClosed.Store(true)
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CloseTimeout)
	defer cancel()
	var errs []error
	for _, s := range subs {
		s.stop(ctx, false)
	}
	if b.batcher != nil {
		b.batcher.close()
	}
	if err := b.Flush(ctx); err != nil {
		errs = append(errs, err)
	}
	close(b.done)
	waited := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		errs = append(errs, errors.New("jsbus: close: background work still running after CloseTimeout"))
	}
	b.closeConn()
	return errors.Join(errs...)
}

func (b *Bus) closeConn() {
	if b.ownConn {
		b.nc.Close()
	}
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	c := &b.stats
	return Stats{
		Published: c.published.Load(), Acked: c.acked.Load(), Duplicates: c.duplicates.Load(),
		PublishRetries: c.publishRetries.Load(), PublishFailed: c.publishFailed.Load(),
		Batches: c.batches.Load(), BatchedEvents: c.batchedEvents.Load(),
		Delivered: c.delivered.Load(), HandlerErrors: c.handlerErrors.Load(), Panics: c.panics.Load(),
		DeadLettered: c.deadLettered.Load(), DecodeErrors: c.decodeErrors.Load(),
		ConsumeErrors: c.consumeErrors.Load(), ConsumersRecreated: c.consumersRecreated.Load(),
	}
}

// sleepCtx waits d or until ctx or the bus ends; it reports whether d passed.
func (b *Bus) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-b.done:
		return false
	}
}
