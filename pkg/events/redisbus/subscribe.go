package redisbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetmon/jetmon/pkg/events"
)

// subscription reads its streams on a connection of its own (a blocking
// read holds a connection), so publishing never waits for readers.
type subscription struct {
	b          *Bus
	id         string
	pattern    string
	cfg        events.SubscribeConfig
	group      string // consumer group, "" for a plain subscription
	consumer   string // this member's name within the group
	keys       []string
	cursors    []string // plain: last id read per key
	h          events.Handler
	maxDeliver int
	client     *redis.Client
	ctx        context.Context
	cancel     context.CancelFunc
	stopped    atomic.Bool
	done       chan struct{} // closed when run returns
	inHandler  atomic.Int32
}

// returnedConsumer holds group entries that a leaving member had read but
// not handled; the next member takes them first.
const returnedConsumer = "_returned"

var subSeq atomic.Uint64

// Subscribe starts reading for pattern. See [events.Subscriber].
// StartAtSequence needs a pattern within one stream.
func (b *Bus) Subscribe(ctx context.Context, pattern string, h events.Handler, opts ...events.SubscribeOption) (events.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisbus: subscribe %q: %w", pattern, err)
	}
	if b.closed.Load() {
		return nil, fmt.Errorf("redisbus: subscribe %q: %w", pattern, events.ErrClosed)
	}
	if err := events.ValidatePattern(pattern); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("redisbus: subscribe %q: %w: nil handler", pattern, events.ErrInvalidOption)
	}
	cfg, err := events.NewSubscribeConfig(opts...)
	if err != nil {
		return nil, err
	}
	keys, err := b.streamsFor(pattern)
	if err != nil {
		return nil, err
	}
	if cfg.Start == events.StartSequence && len(keys) > 1 {
		return nil, fmt.Errorf("redisbus: subscribe %q: %w: StartAtSequence needs a pattern within one stream", pattern, events.ErrInvalidOption)
	}
	n := subSeq.Add(1)
	s := &subscription{
		b: b, id: "redis-" + strconv.FormatUint(n, 10), pattern: pattern, cfg: cfg, keys: keys, h: h,
		maxDeliver: b.cfg.MaxDeliver, group: cfg.ConsumerName(),
	}
	if cfg.MaxDeliver > 0 {
		s.maxDeliver = cfg.MaxDeliver
	}
	start, err := b.startIDs(ctx, keys, cfg)
	if err != nil {
		return nil, err
	}
	if s.group != "" {
		s.consumer = b.node + "-" + strconv.FormatUint(n, 10)
		if err := b.joinGroup(ctx, s.group, pattern, keys, start); err != nil {
			return nil, err
		}
	} else {
		s.cursors = start
	}
	// The read loop retries by itself and must see every failure: a read
	// that go-redis retried silently after a connection loss may have left
	// entries in this member's pending list that only the loop re-reads.
	ro := b.cfg.options(2)
	ro.MaxRetries = -1
	s.client = redis.NewClient(ro)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.done = make(chan struct{})
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		s.cancel()
		_ = s.client.Close()
		return nil, fmt.Errorf("redisbus: subscribe %q: %w", pattern, events.ErrClosed)
	}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	go s.run()
	return s, nil
}

// startIDs resolves where a new reader starts in each stream, as the id of
// the entry before the first one to deliver. "The end" is resolved now, so
// that an event published after Subscribe returns is never missed.
func (b *Bus) startIDs(ctx context.Context, keys []string, cfg events.SubscribeConfig) ([]string, error) {
	ids := make([]string, len(keys))
	for i, key := range keys {
		switch cfg.Start {
		case events.StartAll:
			ids[i] = "0-0"
		case events.StartTime:
			ids[i] = idBefore(uint64(cfg.StartAt.UnixMilli()), 0)
		case events.StartSequence:
			ids[i] = idBefore(cfg.StartSeq>>seqBits, cfg.StartSeq&(1<<seqBits-1))
		default:
			last, err := b.client.XRevRangeN(ctx, key, "+", "-", 1).Result()
			if err != nil {
				return nil, fmt.Errorf("redisbus: subscribe: read the end of %s: %w", key, err)
			}
			ids[i] = "0-0"
			if len(last) == 1 {
				ids[i] = last[0].ID
			}
		}
	}
	return ids, nil
}

// joinGroup creates the consumer group on every stream (from start) unless
// it exists, and enforces one pattern per group name.
func (b *Bus) joinGroup(ctx context.Context, group, pattern string, keys, start []string) error {
	registry := b.cfg.Prefix + "groups"
	if ok, err := b.client.HSetNX(ctx, registry, group, pattern).Result(); err != nil {
		return fmt.Errorf("redisbus: subscribe %q as %q: %w", pattern, group, err)
	} else if !ok {
		have, err := b.client.HGet(ctx, registry, group).Result()
		if err != nil {
			return fmt.Errorf("redisbus: subscribe %q as %q: %w", pattern, group, err)
		}
		if have != pattern {
			return fmt.Errorf("redisbus: subscribe %q as %q: %w (%q)", pattern, group, events.ErrConsumerConflict, have)
		}
	}
	for i, key := range keys {
		err := b.client.XGroupCreateMkStream(ctx, key, group, start[i]).Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("redisbus: subscribe %q: create group %s on %s: %w", pattern, group, key, err)
		}
	}
	return nil
}

func (s *subscription) ID() string      { return s.id }
func (s *subscription) Pattern() string { return s.pattern }

// Unsubscribe stops reading. A group keeps its position; entries this
// member read but did not handle go to the next member to start (or, when
// the server cannot be reached, to whoever claims them after ClaimTimeout).
func (s *subscription) Unsubscribe() error {
	s.stop()
	return nil
}

func (s *subscription) stop() {
	if !s.stopped.CompareAndSwap(false, true) {
		return
	}
	s.cancel()
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	// A blocking read in flight may still receive entries: wait for the
	// loop to hand them back (unless a handler — perhaps the caller — runs).
	if s.inHandler.Load() == 0 {
		select {
		case <-s.done:
		case <-time.After(2*s.b.cfg.BlockFor + s.b.cfg.ReadTimeout):
		}
	}
}

// run is the subscription's read loop.
func (s *subscription) run() {
	b := s.b
	defer b.wg.Done()
	defer close(s.done)
	defer func() { _ = s.client.Close() }()
	if s.group != "" {
		defer s.leaveGroup()
		s.takeReturned()
	}
	backoff := 50 * time.Millisecond
	lastSweep := time.Now()
	sweepEvery := min(b.cfg.ClaimTimeout/2, 5*time.Second)
	// own: read this member's own pending entries ("0") before new ones
	// (">"). A read cut off by a connection loss or server restart may
	// have moved entries into the member's pending list without the reply
	// arriving; nobody else would claim them before ClaimTimeout. Between
	// two reads no handler of this member runs, so whatever is pending with
	// it then was lost on the way (or its ack was): it is re-read after
	// every failed read, and every sweep in case a loss went unnoticed.
	own := false
	for !s.stopped.Load() {
		var res []redis.XStream
		var err error
		if s.group == "" {
			res, err = s.client.XRead(s.ctx, &redis.XReadArgs{
				Streams: append(append([]string{}, s.keys...), s.cursors...), Count: b.cfg.ReadCount, Block: b.cfg.BlockFor,
			}).Result()
		} else {
			if time.Since(lastSweep) > sweepEvery {
				s.claimAbandoned()
				own = true
				lastSweep = time.Now()
			}
			from := ">"
			if own {
				from = "0"
			}
			streams := append([]string{}, s.keys...)
			for range s.keys {
				streams = append(streams, from)
			}
			res, err = s.client.XReadGroup(s.ctx, &redis.XReadGroupArgs{
				Group: s.group, Consumer: s.consumer, Streams: streams, Count: min(b.cfg.ReadCount, 16), Block: b.cfg.BlockFor,
			}).Result()
		}
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			if s.stopped.Load() {
				return
			}
			b.readErrors.Add(1)
			b.log.Warn().Err(err).Str("pattern", s.pattern).Msg("read failed; retrying")
			if strings.HasPrefix(err.Error(), "NOGROUP") { // the server lost the group (restart without persistence)
				from := make([]string, len(s.keys))
				for i := range from {
					from[i] = "0-0" // whatever the stream holds now was published after the loss
				}
				_ = b.joinGroup(s.ctx, s.group, s.pattern, s.keys, from)
			}
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			own = s.group != ""
			continue
		}
		backoff = 50 * time.Millisecond
		recovered := 0
		for _, st := range res {
			for _, msg := range st.Messages {
				if s.stopped.Load() {
					break // unhandled entries stay pending; leaveGroup hands them on
				}
				if s.group == "" {
					s.advance(st.Stream, msg.ID)
				}
				before := 0
				if own {
					before = s.deliveredBefore(st.Stream, msg.ID)
					recovered++
				}
				s.deliver(st.Stream, msg, before)
			}
		}
		if own && recovered == 0 {
			own = false // the pending list is empty again: back to new entries
		}
	}
}

func (s *subscription) advance(key, id string) {
	for i, k := range s.keys {
		if k == key {
			s.cursors[i] = id
		}
	}
}

// takeReturned claims the entries a stopped member handed back, and handles
// them before anything new.
func (s *subscription) takeReturned() {
	for _, key := range s.keys {
		p, err := s.client.XPendingExt(s.ctx, &redis.XPendingExtArgs{Stream: key, Group: s.group, Consumer: returnedConsumer, Start: "-", End: "+", Count: 1000}).Result()
		if err != nil || len(p) == 0 {
			continue
		}
		ids := make([]string, len(p))
		for i, e := range p {
			ids[i] = e.ID
		}
		msgs, err := s.client.XClaim(s.ctx, &redis.XClaimArgs{Stream: key, Group: s.group, Consumer: s.consumer, MinIdle: 0, Messages: ids}).Result()
		if err != nil {
			continue
		}
		for _, m := range msgs {
			s.deliver(key, m, 0)
		}
	}
}

// claimAbandoned takes over entries that other members of the group have
// held, unacknowledged, for longer than ClaimTimeout.
func (s *subscription) claimAbandoned() {
	b := s.b
	s.takeReturned() // handed back by a member that left while this one ran
	for _, key := range s.keys {
		start := "0-0"
		for {
			msgs, next, err := s.client.XAutoClaim(s.ctx, &redis.XAutoClaimArgs{
				Stream: key, Group: s.group, Consumer: s.consumer, MinIdle: b.cfg.ClaimTimeout, Start: start, Count: 64,
			}).Result()
			if err != nil {
				return
			}
			for _, msg := range msgs {
				b.claimed.Add(1)
				s.deliver(key, msg, s.deliveredBefore(key, msg.ID))
			}
			if next == "0-0" || len(msgs) == 0 {
				break
			}
			start = next
		}
	}
}

// deliveredBefore returns how often an entry was delivered before this claim.
func (s *subscription) deliveredBefore(key, id string) int {
	p, err := s.client.XPendingExt(s.ctx, &redis.XPendingExtArgs{Stream: key, Group: s.group, Start: id, End: id, Count: 1}).Result()
	if err != nil || len(p) == 0 {
		return 1
	}
	return max(int(p[0].RetryCount)-1, 1)
}

// deliver filters one entry by pattern, decodes it and calls the handler,
// retrying with a growing delay; after maxDeliver attempts (counting the
// before earlier ones) it is dead-lettered. Group entries are acknowledged
// when done with; an entry left by a stopping subscription stays pending.
func (s *subscription) deliver(key string, msg redis.XMessage, before int) {
	b := s.b
	subject, _ := msg.Values[FieldSubject].(string)
	data, _ := msg.Values[FieldData].(string)
	if !events.Match(s.pattern, events.TypeOfSubject(subject)) {
		s.ack(key, msg.ID) // another pattern's event on a shared stream
		return
	}
	ev, err := b.decoder.Decode([]byte(data))
	if err != nil {
		b.decodeErrors.Add(1)
		if s.deadLetter(key, msg, subject, data, "undecodable: "+err.Error(), before+1) == nil {
			s.ack(key, msg.ID)
		}
		return
	}
	delay := b.cfg.RedeliveryDelay
	for attempt := before + 1; ; attempt++ {
		ctx := events.ContextWithDelivery(s.ctx, events.Delivery{
			SubscriptionID: s.id, Subject: subject, Sequence: seqOf(msg.ID), Attempt: attempt,
			Published: time.UnixMilli(int64(seqOf(msg.ID) >> seqBits)),
		})
		s.inHandler.Add(1)
		herr := events.SafeHandle(ctx, s.h, ev)
		s.inHandler.Add(-1)
		if herr == nil {
			b.delivered.Add(1)
			s.ack(key, msg.ID)
			return
		}
		b.handlerErrors.Add(1)
		if _, ok := errors.AsType[*events.PanicError](herr); ok {
			b.panics.Add(1)
		}
		if attempt >= s.maxDeliver {
			if s.deadLetter(key, msg, subject, data, fmt.Sprintf("handler failed %d times: %v", attempt, herr), attempt) == nil {
				s.ack(key, msg.ID)
			}
			return
		}
		select {
		case <-time.After(delay):
		case <-s.ctx.Done():
			return // stays pending (groups); another member claims it later
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (s *subscription) ack(key, id string) {
	if s.group == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.b.cfg.WriteTimeout)
	defer cancel()
	if err := s.client.XAck(ctx, key, s.group, id).Err(); err != nil {
		s.b.log.Warn().Err(err).Str("stream", key).Str("entry", id).Msg("ack failed; the entry will be delivered again")
	}
}

// deadLetter copies an entry to the dead-letter stream with the reason.
func (s *subscription) deadLetter(key string, msg redis.XMessage, subject, data, reason string, deliveries int) error {
	b := s.b
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.WriteTimeout)
	defer cancel()
	err := b.client.XAdd(ctx, &redis.XAddArgs{
		Stream: b.deadLetterKey(),
		Values: []any{FieldSubject, subject, FieldData, data, FieldReason, reason, FieldStream, key, FieldEntry, msg.ID, FieldCount, deliveries},
	}).Err()
	if err != nil {
		b.log.Error().Err(err).Str("subject", subject).Msg("dead-lettering failed")
		return err
	}
	b.deadLettered.Add(1)
	b.log.Warn().Str("subject", subject).Str("entry", msg.ID).Str("reason", reason).Msg("dead-lettered")
	return nil
}

// leaveGroup hands the entries still pending with this member (read by a
// blocking read whose reply was cut off, or not acknowledged) to the
// returned-entries consumer, where the next member takes them at once, and
// then removes this member from the group, so groups do not collect dead
// consumers.
func (s *subscription) leaveGroup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.b.cfg.WriteTimeout)
	defer cancel()
	for _, key := range s.keys {
		for {
			p, err := s.b.client.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: s.group, Consumer: s.consumer, Start: "-", End: "+", Count: 256}).Result()
			if err != nil {
				return // the member stays; another claims its entries after ClaimTimeout
			}
			if len(p) == 0 {
				break
			}
			ids := make([]string, len(p))
			for i, e := range p {
				ids[i] = e.ID
			}
			if err := s.b.client.XClaimJustID(ctx, &redis.XClaimArgs{Stream: key, Group: s.group, Consumer: returnedConsumer, MinIdle: 0, Messages: ids}).Err(); err != nil {
				s.b.log.Warn().Err(err).Msg("handing back pending entries failed; another member claims them after ClaimTimeout")
				return
			}
		}
		_ = s.b.client.XGroupDelConsumer(ctx, key, s.group, s.consumer).Err()
	}
}
