package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryOptions configures a [MemoryBus]. The zero value gives the defaults.
type MemoryOptions struct {
	// Retain is how many published events the bus keeps for replay, durable
	// resumption and [MemoryBus.Published]. 0 means 100,000; negative means
	// unlimited. A consumer that falls further behind loses the oldest events
	// (counted in [MemoryStats.Missed]).
	Retain int
	// MaxPayload limits an event's encoded size; 0 means [DefaultMaxPayload].
	MaxPayload int
	// MaxDeliver bounds deliveries of one event to a failing handler before it
	// is dead-lettered; 0 means 5. [MaxDeliver] overrides it per subscription.
	MaxDeliver int
	// RedeliveryDelay is the wait before the first redelivery; it doubles per
	// attempt up to one second. 0 means 10 ms.
	RedeliveryDelay time.Duration
	// CloseTimeout bounds how long Close waits for handlers in progress. 0
	// means 10 s.
	CloseTimeout time.Duration
	// OnError, if set, is called (from delivery goroutines) with every handler
	// error, panic and dead letter. It must not block.
	OnError func(error)
}

// MemoryStats counts what a [MemoryBus] did.
type MemoryStats struct {
	Published     uint64 // events accepted by Publish
	Delivered     uint64 // handler calls that succeeded
	HandlerErrors uint64 // handler calls that returned an error (panics included)
	Panics        uint64 // handler calls that panicked
	DeadLettered  uint64 // events given up after MaxDeliver attempts
	Missed        uint64 // events a slow consumer lost to the retention limit
}

// DeadLetter is an event a subscription gave up on.
type DeadLetter struct {
	Subject  string
	Sequence uint64
	Attempts int
	Reason   error
	Data     []byte // the event's wire form
}

// MemoryBus is an in-process bus with the semantics of a persistent one: it
// keeps a bounded log of encoded events, so it supports replay from a time or
// sequence, durable consumers (within the process), groups that share work,
// per-subject ordering and redelivery with dead-lettering. Each handler gets
// its own decoded copy of every event. It is the bus for tests and for the
// Direct monitoring mode, and the reference the conformance suite is written
// against. A MemoryBus is safe for concurrent use.
type MemoryBus struct {
	opts    MemoryOptions
	decoder Decoder

	mu        sync.Mutex
	wake      *sync.Cond // broadcast on publish, unsubscribe and close
	log       []memRecord
	base      uint64 // sequence of log[0]; sequences start at 1
	consumers map[string]*memConsumer
	subs      map[*memSub]struct{}
	dead      []DeadLetter
	closed    bool
	closeErr  error
	nextSub   uint64
	wg        sync.WaitGroup

	published, delivered, handlerErrors, panics, deadLettered, missed atomic.Uint64
}

var _ Bus = (*MemoryBus)(nil)

type memRecord struct {
	seq     uint64
	typ     Type
	subject string
	at      time.Time
	data    []byte
}

// memConsumer is a position in the log shared by the subscriptions of one
// durable or group name (or owned by one plain subscription).
type memConsumer struct {
	name      string
	pattern   string
	next      uint64      // next sequence to examine
	redeliver []memRecord // claimed but not handled when a member stopped
	durable   bool
	members   int
}

type memSub struct {
	id         string
	pattern    string
	consumer   *memConsumer
	h          Handler
	maxDeliver int
	ctx        context.Context
	cancel     context.CancelFunc
	stopped    bool // guarded by bus.mu
	bus        *MemoryBus
}

// NewMemoryBus returns an empty in-memory bus.
func NewMemoryBus(opts MemoryOptions) *MemoryBus {
	if opts.Retain == 0 {
		opts.Retain = 100_000
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if opts.MaxDeliver <= 0 {
		opts.MaxDeliver = 5
	}
	if opts.RedeliveryDelay <= 0 {
		opts.RedeliveryDelay = 10 * time.Millisecond
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	b := &MemoryBus{
		opts:      opts,
		decoder:   Decoder{MaxPayload: -1},
		base:      1,
		consumers: make(map[string]*memConsumer),
		subs:      make(map[*memSub]struct{}),
	}
	b.wake = sync.NewCond(&b.mu)
	return b
}

// Publish validates and encodes ev and appends it to the log. It never blocks
// on subscribers.
func (b *MemoryBus) Publish(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory bus: publish: %w", err)
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("memory bus: publish: %w", err)
	}
	data := ev.AppendJSON(make([]byte, 0, 384))
	if len(data) > b.opts.MaxPayload {
		return fmt.Errorf("memory bus: publish %s: %w", ev.Metadata().Type, &sizeError{size: len(data), limit: b.opts.MaxPayload})
	}
	m := ev.Metadata()
	rec := memRecord{typ: m.Type, subject: Subject(m.Type, m.Source), at: time.Now(), data: data}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("memory bus: publish: %w", ErrClosed)
	}
	rec.seq = b.base + uint64(len(b.log))
	b.log = append(b.log, rec)
	b.trim()
	b.mu.Unlock()
	b.published.Add(1)
	b.wake.Broadcast()
	return nil
}

// trim drops the oldest records beyond the retention limit, in chunks so that
// trimming costs O(1) per publish.
func (b *MemoryBus) trim() {
	keep := b.opts.Retain
	if keep < 0 || len(b.log) <= keep+keep/4 {
		return
	}
	drop := len(b.log) - keep
	fresh := make([]memRecord, keep, keep+keep/4+1)
	copy(fresh, b.log[drop:])
	b.log = fresh
	b.base += uint64(drop)
}

// Subscribe starts a delivery goroutine for h. See [Subscriber].
func (b *MemoryBus) Subscribe(ctx context.Context, pattern string, h Handler, opts ...SubscribeOption) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory bus: subscribe %q: %w", pattern, err)
	}
	if err := ValidatePattern(pattern); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("memory bus: subscribe %q: %w: nil handler", pattern, ErrInvalidOption)
	}
	cfg, err := NewSubscribeConfig(opts...)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("memory bus: subscribe %q: %w", pattern, ErrClosed)
	}
	name := cfg.ConsumerName()
	c := b.consumers[name]
	switch {
	case name == "" || c == nil:
		c = &memConsumer{name: name, pattern: pattern, next: b.startSeq(cfg), durable: cfg.Durable != ""}
		if name != "" {
			b.consumers[name] = c
		}
	case c.pattern != pattern:
		return nil, fmt.Errorf("memory bus: subscribe %q as %q: %w (%q)", pattern, name, ErrConsumerConflict, c.pattern)
	}
	c.members++
	b.nextSub++
	maxDeliver := cfg.MaxDeliver
	if maxDeliver == 0 {
		maxDeliver = b.opts.MaxDeliver
	}
	subCtx, cancel := context.WithCancel(context.Background())
	s := &memSub{
		id: "mem-" + strconv.FormatUint(b.nextSub, 10), pattern: pattern, consumer: c, h: h,
		maxDeliver: maxDeliver, ctx: subCtx, cancel: cancel, bus: b,
	}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	go b.run(s)
	return s, nil
}

// startSeq returns the first sequence a new consumer examines. Caller holds mu.
func (b *MemoryBus) startSeq(cfg SubscribeConfig) uint64 {
	end := b.base + uint64(len(b.log))
	switch cfg.Start {
	case StartAll:
		return b.base
	case StartSequence:
		return max(cfg.StartSeq, b.base)
	case StartTime:
		for i, r := range b.log {
			if !r.at.Before(cfg.StartAt) {
				return b.base + uint64(i)
			}
		}
	}
	return end
}

// run is a subscription's delivery loop.
func (b *MemoryBus) run(s *memSub) {
	defer b.wg.Done()
	b.mu.Lock()
	for {
		if s.stopped || b.closed {
			b.mu.Unlock()
			return
		}
		rec, ok := b.claim(s.consumer)
		if !ok {
			b.wake.Wait()
			continue
		}
		b.mu.Unlock()
		handled := b.deliver(s, rec)
		b.mu.Lock()
		if !handled {
			s.consumer.redeliver = append(s.consumer.redeliver, rec)
		}
	}
}

// claim takes the consumer's next matching record. Caller holds mu.
func (b *MemoryBus) claim(c *memConsumer) (memRecord, bool) {
	if n := len(c.redeliver); n > 0 {
		r := c.redeliver[0]
		c.redeliver = c.redeliver[1:]
		return r, true
	}
	if c.next < b.base {
		b.missed.Add(b.base - c.next)
		c.next = b.base
	}
	end := b.base + uint64(len(b.log))
	for c.next < end {
		r := b.log[c.next-b.base]
		c.next++
		if Match(c.pattern, r.typ) {
			return r, true
		}
	}
	return memRecord{}, false
}

// deliver hands rec to the subscription's handler until it succeeds, is
// dead-lettered, or the subscription stops (then it reports false so the
// record goes back to the consumer).
func (b *MemoryBus) deliver(s *memSub, rec memRecord) bool {
	delay := b.opts.RedeliveryDelay
	for attempt := 1; ; attempt++ {
		ev, err := b.decoder.Decode(rec.data)
		if err == nil {
			ctx := ContextWithDelivery(s.ctx, Delivery{
				SubscriptionID: s.id, Subject: rec.subject, Sequence: rec.seq, Attempt: attempt, Published: rec.at,
			})
			err = SafeHandle(ctx, s.h, ev)
			if err == nil {
				b.delivered.Add(1)
				return true
			}
			b.handlerErrors.Add(1)
			if _, ok := errors.AsType[*PanicError](err); ok {
				b.panics.Add(1)
			}
		}
		b.report(fmt.Errorf("memory bus: %s: handle %s #%d (attempt %d): %w", s.id, rec.typ, rec.seq, attempt, err))
		if attempt >= s.maxDeliver {
			b.deadLetter(rec, attempt, err)
			return true
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return false
		}
		delay = min(2*delay, time.Second)
	}
}

func (b *MemoryBus) deadLetter(rec memRecord, attempts int, reason error) {
	b.deadLettered.Add(1)
	b.mu.Lock()
	b.dead = append(b.dead, DeadLetter{Subject: rec.subject, Sequence: rec.seq, Attempts: attempts, Reason: reason, Data: rec.data})
	b.mu.Unlock()
	b.report(fmt.Errorf("memory bus: dead-lettered %s #%d after %d attempts: %w", rec.typ, rec.seq, attempts, reason))
}

func (b *MemoryBus) report(err error) {
	if b.opts.OnError != nil {
		b.opts.OnError(err)
	}
}

// IsConnected reports true until Close.
func (b *MemoryBus) IsConnected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed
}

// Close stops every subscription and waits up to CloseTimeout for handlers in
// progress. Handlers see their context cancelled. It is idempotent.
func (b *MemoryBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return b.closeErr
	}
	b.closed = true
	for s := range b.subs {
		s.cancel()
	}
	b.mu.Unlock()
	b.wake.Broadcast()
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(b.opts.CloseTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.mu.Lock()
		b.closeErr = fmt.Errorf("memory bus: close: handlers still running after %s", b.opts.CloseTimeout)
		b.mu.Unlock()
	}
	return b.closeErr
}

// Published returns decoded copies of the retained events in publish order,
// for tests to assert on what was published.
func (b *MemoryBus) Published() []Event {
	b.mu.Lock()
	recs := b.log
	b.mu.Unlock()
	out := make([]Event, 0, len(recs))
	for _, r := range recs {
		if ev, err := b.decoder.Decode(r.data); err == nil {
			out = append(out, ev)
		}
	}
	return out
}

// DeadLetters returns the events subscriptions gave up on, oldest first.
func (b *MemoryBus) DeadLetters() []DeadLetter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]DeadLetter(nil), b.dead...)
}

// Stats returns the bus's counters.
func (b *MemoryBus) Stats() MemoryStats {
	return MemoryStats{
		Published: b.published.Load(), Delivered: b.delivered.Load(), HandlerErrors: b.handlerErrors.Load(),
		Panics: b.panics.Load(), DeadLettered: b.deadLettered.Load(), Missed: b.missed.Load(),
	}
}

func (s *memSub) ID() string      { return s.id }
func (s *memSub) Pattern() string { return s.pattern }

// Unsubscribe stops delivery. A non-durable consumer is forgotten with its
// last member; a durable one keeps its position.
func (s *memSub) Unsubscribe() error {
	b := s.bus
	b.mu.Lock()
	if s.stopped {
		b.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.cancel()
	delete(b.subs, s)
	c := s.consumer
	c.members--
	if c.members == 0 && !c.durable && c.name != "" {
		delete(b.consumers, c.name)
	}
	b.mu.Unlock()
	b.wake.Broadcast()
	return nil
}
