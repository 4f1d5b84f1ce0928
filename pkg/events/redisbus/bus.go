// Package redisbus is the [events.Bus] on Redis Streams, so teams that run
// Redis can use jetmon in production and later move to JetStream without
// changing application code.
//
// Events of a family go to one stream, <prefix><family> (jetmon:performance,
// jetmon:health, ...), capped at about Config.MaxLen entries. Each entry holds
// the event's subject (see [events.Subject]), id and wire form. A
// subscription reads the streams its pattern can match and filters entries
// by pattern client-side, with exactly the semantics of the other buses. A
// plain subscription reads with XREAD from the stream's end (or the replay
// position); [events.Durable] and [events.Group] subscriptions are Redis
// consumer groups: entries are acknowledged (XACK) after the handler succeeds,
// retried with a growing delay when it fails, dead-lettered to
// <prefix>deadletter when undecodable or out of deliveries, and claimed
// (XAUTOCLAIM) by another member when the consumer holding them stopped for
// longer than Config.ClaimTimeout.
//
// Redis has no server-side deduplication: after a failed publish is retried
// an event may be stored twice; handlers must be idempotent (by event id),
// as with every jetmon bus. Run Redis with appendonly yes (appendfsync
// always for zero loss) so that acknowledged events survive a restart.
package redisbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
)

// Field names of a stream entry.
const (
	FieldSubject = "subject"
	FieldID      = "id"
	FieldData    = "data"
	FieldReason  = "reason"
	FieldStream  = "stream"
	FieldEntry   = "entry"
	FieldCount   = "deliveries"
)

// Bus is the Redis Streams implementation of [events.Bus]. It is safe for
// concurrent use.
type Bus struct {
	cfg     Config
	client  *redis.Client
	log     zerolog.Logger
	decoder events.Decoder
	node    string // consumer-name prefix: host and pid

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed atomic.Bool
	wg     sync.WaitGroup

	published, delivered, handlerErrors, panics, deadLettered, decodeErrors, readErrors, claimed atomic.Uint64
}

var _ events.Bus = (*Bus)(nil)

// Stats counts what a [Bus] did.
type Stats struct {
	Published, Delivered, HandlerErrors, Panics, DeadLettered, DecodeErrors, ReadErrors, Claimed uint64
}

// families are the event families, each with its stream.
var families = []events.Family{events.FamilyHealth, events.FamilyMonitoring, events.FamilyPerformance, events.FamilySystem, events.FamilyValidation}

// Connect opens a bus on the server in cfg and checks it answers. ctx
// bounds only that check; the bus does not keep it, and lives until
// [Bus.Close].
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	routeGoRedisLogs(cfg.Logger)
	host, _ := os.Hostname()
	b := &Bus{
		cfg: cfg, client: redis.NewClient(cfg.options(cfg.PoolSize)), log: zerolog.Nop(),
		decoder: events.Decoder{MaxPayload: -1}, subs: map[*subscription]struct{}{},
		node: fmt.Sprintf("%s-%d", host, os.Getpid()),
	}
	if cfg.Logger != nil {
		b.log = cfg.Logger.With().Str("component", "redisbus").Logger()
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		_ = b.client.Close()
		return nil, fmt.Errorf("redisbus: connect to %s: %w", cfg.Addr(), err)
	}
	return b, nil
}

func (b *Bus) key(f events.Family) string { return b.cfg.Prefix + string(f) }

func (b *Bus) deadLetterKey() string { return b.cfg.Prefix + "deadletter" }

// Client returns the underlying go-redis client.
func (b *Bus) Client() *redis.Client { return b.client }

// Stream returns the stream key of family f.
func (b *Bus) Stream(f events.Family) string { return b.key(f) }

// DeadLetterStream returns the dead-letter stream's key.
func (b *Bus) DeadLetterStream() string { return b.deadLetterKey() }

var scratch = sync.Pool{New: func() any { buf := make([]byte, 0, 1024); return &buf }}

// Publish validates ev and appends it to its family's stream (XADD MAXLEN ~).
// It returns once Redis has stored the entry.
func (b *Bus) Publish(ctx context.Context, ev events.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisbus: publish: %w", err)
	}
	if b.closed.Load() {
		return fmt.Errorf("redisbus: publish: %w", events.ErrClosed)
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("redisbus: publish: %w", err)
	}
	bufp := scratch.Get().(*[]byte)
	defer scratch.Put(bufp)
	data := ev.AppendJSON((*bufp)[:0])
	*bufp = data
	if len(data) > b.cfg.MaxPayload {
		return fmt.Errorf("redisbus: publish %s: %w: %d bytes exceeds the limit of %d",
			ev.Metadata().Type, events.ErrPayloadTooLarge, len(data), b.cfg.MaxPayload)
	}
	m := ev.Metadata()
	args := &redis.XAddArgs{
		Stream: b.key(m.Type.Family()),
		Values: []any{FieldSubject, events.Subject(m.Type, m.Source), FieldID, m.ID, FieldData, data},
	}
	if b.cfg.MaxLen > 0 {
		args.MaxLen, args.Approx = b.cfg.MaxLen, true
	}
	if err := b.client.XAdd(ctx, args).Err(); err != nil {
		return fmt.Errorf("redisbus: publish %s: %w", m.Type, err)
	}
	b.published.Add(1)
	return nil
}

// IsConnected pings the server (bounded to 250 ms).
func (b *Bus) IsConnected() bool {
	if b.closed.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	return b.client.Ping(ctx).Err() == nil
}

// Close stops every subscription, waits (bounded) for their handlers and
// closes the connections. It is idempotent.
func (b *Bus) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.mu.Lock()
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.stop()
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-time.After(b.cfg.CloseTimeout):
		err = errors.New("redisbus: close: handlers still running after CloseTimeout")
	}
	return errors.Join(err, b.client.Close())
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	return Stats{
		Published: b.published.Load(), Delivered: b.delivered.Load(), HandlerErrors: b.handlerErrors.Load(),
		Panics: b.panics.Load(), DeadLettered: b.deadLettered.Load(), DecodeErrors: b.decodeErrors.Load(),
		ReadErrors: b.readErrors.Load(), Claimed: b.claimed.Load(),
	}
}

// streamsFor returns the stream keys a pattern can match.
func (b *Bus) streamsFor(pattern string) ([]string, error) {
	first, _, _ := strings.Cut(pattern, ".")
	if first == "*" || first == ">" {
		keys := make([]string, len(families))
		for i, f := range families {
			keys[i] = b.key(f)
		}
		return keys, nil
	}
	for _, f := range families {
		if string(f) == first {
			return []string{b.key(f)}, nil
		}
	}
	return nil, fmt.Errorf("redisbus: subscribe %q: no stream stores events starting with %q: %w", pattern, first, events.ErrInvalidPattern)
}

// Entry ids ("ms-seq") map to sequences as ms<<20 | seq, ordered like the ids.
const seqBits = 20

func seqOf(id string) uint64 {
	msPart, seqPart, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseUint(msPart, 10, 64)
	seq, _ := strconv.ParseUint(seqPart, 10, 64)
	return ms<<seqBits | seq&(1<<seqBits-1)
}

// idBefore returns the entry id just before (ms, seq), for exclusive starts.
func idBefore(ms, seq uint64) string {
	switch {
	case seq > 0:
		return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq-1, 10)
	case ms > 0:
		return strconv.FormatUint(ms-1, 10) + "-18446744073709551615"
	}
	return "0-0"
}
