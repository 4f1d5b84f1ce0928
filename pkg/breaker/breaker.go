// Package breaker keeps monitoring from breaking the application: a
// circuit-breaking, retrying, spooling publisher that wraps any
// [events.Publisher] or [events.Bus].
//
// Publish validates the event and hands it to the wrapped bus. A transient
// failure is retried with jittered exponential backoff within a per-publish
// budget; a permanent one (an invalid or oversized event) is returned and
// never retried. When the budget runs out, the event goes to a bounded spool
// (in memory, or on disk so that it survives a restart) and Publish returns
// nil: the application is not bothered. Enough failures open the circuit;
// while it is open every event goes straight to the spool, with no network
// wait. A background drainer probes the bus once the open timeout has passed
// (half-open) and, when it answers, sends the spooled events in order with
// their original ids — a re-send of an event the server had in fact stored
// is dropped by its deduplication — and the circuit closes. What a full spool
// drops is counted per event type, exported as a metric, and reported as a
// monitoring event once the bus is back. Breaker state, spool depth, drops
// and publish latency are Prometheus metrics; each state change is also a
// monitoring event.
//
// Nothing cycles forever. An event that no retry can publish — invalid,
// larger than [Options.MaxEventBytes], or refused by the bus with
// [events.ErrInvalid], [events.ErrPayloadTooLarge] or [events.ErrUnsupported],
// whether Publish, the asynchronous [Publisher.Failed] or the drainer hears
// it — is discarded and counted (Stats.Permanent and
// jetmon_discarded_events_total{reason}), never spooled or retried. An event
// that keeps failing asynchronously is re-sent at most
// [Options.MaxAsyncFailures] times.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/jetmon/jetmon/pkg/events"
)

// ErrDropped is returned by Publish for an event that could neither be
// published nor spooled (the spool is full). It is counted and reported; the
// application may ignore it.
var ErrDropped = errors.New("monitoring event dropped: spool full")

// Options configures a [Publisher]. Zero values mean the defaults.
type Options struct {
	// Name labels the metrics and the monitoring events (default "jetmon").
	Name string
	// Source is the source of the monitoring events the breaker emits
	// (default "jetmon-breaker").
	Source string

	// ConsecutiveFailures opens the circuit after this many failures in a
	// row (default 5).
	ConsecutiveFailures uint32
	// FailureRatio, when positive, also opens the circuit when this share of
	// at least MinRequests requests in Interval failed.
	FailureRatio float64
	MinRequests  uint32        // default 20
	Interval     time.Duration // window of the closed-state counts (default 60 s)
	// OpenTimeout is how long the circuit stays open before a probe (default 5 s).
	OpenTimeout time.Duration
	// HalfOpenProbes successful probes close the circuit (default 1).
	HalfOpenProbes uint32

	// PublishBudget bounds the time one Publish spends retrying before it
	// spools the event (default 20 ms). InitialBackoff is the first retry
	// delay (default 1 ms); delays double with ±50% jitter.
	PublishBudget  time.Duration
	InitialBackoff time.Duration

	// SpoolMaxEvents bounds the memory spool (default 10,000 events).
	SpoolMaxEvents int
	// SpoolMaxBytes bounds the spool's bytes (default 16 MiB in memory,
	// 256 MiB on disk).
	SpoolMaxBytes int64
	// SpoolDir, when set, keeps the spool on disk in this directory, where
	// it survives a restart: a new Publisher on the same directory sends
	// what an earlier process left. One process per directory.
	SpoolDir string

	// Logger receives monitoring failures — kept apart from the
	// application's logs — at most one line per kind per LogInterval
	// (default 10 s), with counts. nil discards them.
	Logger      *zerolog.Logger
	LogInterval time.Duration
	// Registerer, when set, registers the metrics (see [Publisher.Collectors]).
	Registerer prometheus.Registerer
	// LatencySampleEvery measures one Publish in this many (default 16):
	// reading the clock twice per call would cost more than the breaker.
	LatencySampleEvery int

	// MaxEventBytes is the largest encoded event the breaker spools. An
	// event it would have to spool that is larger can never cross NATS
	// (whose default max_payload is 1 MiB, headers included) and is
	// discarded as too_large instead. 0 means [DefaultMaxEventBytes]; a
	// negative value means the disk spool's own record limit (64 MiB).
	MaxEventBytes int
	// MaxAsyncFailures bounds how often one event reported through
	// [Publisher.Failed] is spooled for a re-send: its next asynchronous
	// failure discards it as retries_exhausted (default 10). The count is
	// kept per event id for the most recent SpoolMaxEvents failing ids, in
	// memory only.
	MaxAsyncFailures int
}

// DefaultMaxEventBytes is the default [Options.MaxEventBytes]: NATS' default
// max_payload of 1 MiB less 4 KiB for the message headers.
const DefaultMaxEventBytes = events.DefaultMaxPayload - 4<<10

func (o Options) withDefaults() Options {
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Name == "" {
		o.Name = "jetmon"
	}
	if o.Source == "" {
		o.Source = "jetmon-breaker"
	}
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = 5
	}
	if o.MinRequests == 0 {
		o.MinRequests = 20
	}
	if o.HalfOpenProbes == 0 {
		o.HalfOpenProbes = 1
	}
	set(&o.Interval, time.Minute)
	set(&o.OpenTimeout, 5*time.Second)
	set(&o.PublishBudget, 20*time.Millisecond)
	set(&o.InitialBackoff, time.Millisecond)
	set(&o.LogInterval, 10*time.Second)
	if o.SpoolMaxEvents <= 0 {
		o.SpoolMaxEvents = 10_000
	}
	if o.SpoolMaxBytes <= 0 {
		o.SpoolMaxBytes = 16 << 20
		if o.SpoolDir != "" {
			o.SpoolMaxBytes = 256 << 20
		}
	}
	if o.LatencySampleEvery <= 0 {
		o.LatencySampleEvery = 16
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.MaxEventBytes < 0 || o.MaxEventBytes > maxRecord {
		o.MaxEventBytes = maxRecord
	}
	if o.MaxAsyncFailures <= 0 {
		o.MaxAsyncFailures = 10
	}
	return o
}

// Validate reports the first bad option, by name. Zero means the default;
// a negative duration or count is refused rather than silently replaced by
// the default (MaxEventBytes aside, where negative has a meaning).
func (o Options) Validate() error {
	if o.FailureRatio < 0 || o.FailureRatio > 1 {
		return fmt.Errorf("breaker options: FailureRatio %v: must be between 0 and 1", o.FailureRatio)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Interval", o.Interval},
		{"OpenTimeout", o.OpenTimeout},
		{"PublishBudget", o.PublishBudget},
		{"InitialBackoff", o.InitialBackoff},
		{"LogInterval", o.LogInterval},
	} {
		if d.v < 0 {
			return fmt.Errorf("breaker options: %s %v: must not be negative", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"SpoolMaxEvents", int64(o.SpoolMaxEvents)},
		{"SpoolMaxBytes", o.SpoolMaxBytes},
		{"LatencySampleEvery", int64(o.LatencySampleEvery)},
		{"MaxAsyncFailures", int64(o.MaxAsyncFailures)},
	} {
		if n.v < 0 {
			return fmt.Errorf("breaker options: %s %d: must not be negative", n.name, n.v)
		}
	}
	return nil
}

// State is the circuit's state.
type State string

// Circuit states.
const (
	Closed   State = "closed"
	HalfOpen State = "half-open"
	Open     State = "open"
)

func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Closed
}

// Stats counts what a Publisher did.
type Stats struct {
	State      State
	Published  uint64 // events the wrapped bus accepted at once
	Spooled    uint64 // events put in the spool
	Drained    uint64 // spooled events the bus accepted later
	Dropped    uint64 // events lost to a full spool
	Permanent  uint64 // events discarded as unpublishable: invalid, oversized, unsupported, retries exhausted
	Failures   uint64 // failed attempts (each retry counts)
	SpoolDepth int
	SpoolBytes int64
}

// Publisher is the circuit-breaking publisher. It is safe for concurrent use.
type Publisher struct {
	next    events.Publisher
	o       Options
	cb      *gobreaker.CircuitBreaker[struct{}]
	m       *metrics
	flog    *rateLog
	decoder events.Decoder

	mu         sync.Mutex // guards spool, drops, asyncFails
	spool      spool
	drops      map[events.Type]uint64 // since the last drop report
	asyncFails *failCounts
	spooling   atomic.Bool // the spool holds events (or is about to)

	kick chan struct{}
	done chan struct{}
	// closing is cancelled by Close: it ends a drain's sends at once.
	closing  context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   atomic.Bool
	unnotify func() // stops next's async failure reports (a no-op if none)

	calls                                                     atomic.Uint64
	published, spooled, drained, dropped, permanent, failures atomic.Uint64
}

// ErrNoPublisher is returned by [New] and [Wrap] for a nil publisher or bus:
// a breaker with nothing behind it would spool forever.
var ErrNoPublisher = errors.New("breaker: nil publisher")

// New wraps next. With a SpoolDir it first loads what an earlier process
// spooled there, and starts sending it at once. A nil next fails with
// [ErrNoPublisher].
//
// When next reports publishes that failed after Publish returned (an
// [events.AsyncFailureNotifier], such as the JetStream bus), the breaker
// registers [Publisher.Failed] with it, so those events are spooled and
// re-sent by the breaker: no wiring is needed.
func New(next events.Publisher, o Options) (*Publisher, error) {
	if next == nil {
		return nil, ErrNoPublisher
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	log := zerolog.Nop()
	if o.Logger != nil {
		log = o.Logger.With().Str("component", "breaker").Str("publisher", o.Name).Logger()
	}
	p := &Publisher{
		next: next, o: o, flog: newRateLog(log, o.LogInterval),
		decoder: events.Decoder{MaxPayload: -1}, drops: map[events.Type]uint64{},
		asyncFails: newFailCounts(o.SpoolMaxEvents),
		kick:       make(chan struct{}, 1), done: make(chan struct{}),
		unnotify: func() {},
	}
	p.closing, p.cancel = context.WithCancel(context.Background())
	p.m = newMetrics(o.Name, p.stateValue, p.spoolDepth)
	if o.SpoolDir != "" {
		s, err := openDiskSpool(o.SpoolDir, o.SpoolMaxBytes)
		if err != nil {
			return nil, fmt.Errorf("breaker: %w", err)
		}
		p.spool = s
	} else {
		p.spool = newMemSpool(o.SpoolMaxEvents, o.SpoolMaxBytes)
	}
	p.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        o.Name,
		MaxRequests: o.HalfOpenProbes,
		Interval:    o.Interval,
		Timeout:     o.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= o.ConsecutiveFailures {
				return true
			}
			return o.FailureRatio > 0 && c.Requests >= o.MinRequests &&
				float64(c.TotalFailures)/float64(c.Requests) >= o.FailureRatio
		},
		IsSuccessful:  func(err error) bool { return err == nil || permanent(err) },
		OnStateChange: p.onStateChange,
	})
	if o.Registerer != nil {
		for _, c := range p.m.collectors() {
			if err := o.Registerer.Register(c); err != nil {
				_ = p.spool.close()
				return nil, fmt.Errorf("breaker: register metrics: %w", err)
			}
		}
	}
	if p.spool.len() > 0 {
		p.spooling.Store(true)
		p.signal()
	}
	if n, ok := next.(events.AsyncFailureNotifier); ok {
		p.unnotify = n.NotifyAsyncFailure(p.Failed)
	}
	p.wg.Go(p.drainLoop)
	return p, nil
}

// permanent reports errors that no retry can fix.
func permanent(err error) bool {
	return errors.Is(err, events.ErrInvalid) || errors.Is(err, events.ErrPayloadTooLarge) ||
		errors.Is(err, events.ErrUnsupported)
}

// Reasons an event is discarded, the values of the reason label of
// jetmon_discarded_events_total.
const (
	reasonInvalid     = "invalid"
	reasonTooLarge    = "too_large"
	reasonUnsupported = "unsupported"
	reasonExhausted   = "retries_exhausted"
	reasonCorrupt     = "corrupt"
)

// reasonOf names the kind of a permanent error.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, events.ErrPayloadTooLarge):
		return reasonTooLarge
	case errors.Is(err, events.ErrUnsupported):
		return reasonUnsupported
	}
	return reasonInvalid
}

// discard counts an event that will never be published and logs it (rate
// limited, by type and id only: an event's content stays out of the log).
func (p *Publisher) discard(typ events.Type, id, reason string, err error) {
	p.permanent.Add(1)
	p.m.failures.WithLabelValues("permanent").Inc()
	p.m.discarded.WithLabelValues(reason).Inc()
	p.flog.report("discard", fmt.Errorf("%s %s discarded (%s): %w", typ, id, reason, err))
}

// Publish validates ev and publishes it through the circuit. It returns nil
// when the event was published or spooled, [ErrDropped] when the spool was
// full, the validation error for a bad event, the context's error when ctx
// ends first, and [events.ErrClosed] after Close. While the circuit is open
// it returns without any network wait.
func (p *Publisher) Publish(ctx context.Context, ev events.Event) error {
	if p.closed.Load() {
		return fmt.Errorf("breaker: publish: %w", events.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("breaker: publish: %w", err)
	}
	if err := ev.Validate(); err != nil {
		p.discard(ev.Metadata().Type, ev.Metadata().ID, reasonOf(err), err)
		return err
	}
	if p.calls.Add(1)%uint64(p.o.LatencySampleEvery) == 0 {
		start := time.Now()
		defer func() { p.m.latency.Observe(time.Since(start).Seconds()) }()
	}
	if p.spooling.Load() { // keep order behind the spooled events
		return p.enqueue(ev, nil, false)
	}
	_, err := p.cb.Execute(func() (struct{}, error) { return struct{}{}, p.send(ctx, ev) })
	switch {
	case err == nil:
		p.published.Add(1)
		return nil
	case permanent(err):
		p.discard(ev.Metadata().Type, ev.Metadata().ID, reasonOf(err), err)
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("breaker: publish: %w", ctx.Err())
	}
	return p.enqueue(ev, err, false)
}

// send publishes once and, on a transient failure, retries with jittered
// exponential backoff until the budget is spent.
func (p *Publisher) send(ctx context.Context, ev events.Event) error {
	err := p.attempt(ctx, ev)
	if err == nil || permanent(err) || ctx.Err() != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, p.o.PublishBudget)
	defer cancel()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.Multiplier, b.RandomizationFactor = p.o.InitialBackoff, 2, 0.5
	b.MaxElapsedTime = p.o.PublishBudget
	return backoff.Retry(func() error {
		err := p.attempt(bctx, ev)
		if permanent(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, bctx))
}

// attempt calls the wrapped publisher once, containing a panic.
func (p *Publisher) attempt(ctx context.Context, ev events.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("breaker: wrapped publisher panicked: %v", r)
		}
	}()
	err = p.next.Publish(ctx, ev)
	if err != nil && !permanent(err) {
		p.failures.Add(1)
		p.m.failures.WithLabelValues("transient").Inc()
		p.flog.report("publish", err)
	}
	return err
}

// Failed reports that a publish which earlier returned nil failed
// asynchronously (e.g. its JetStream ack never came): the failure counts
// against the circuit, and ev goes to the spool with its original id. Such an
// event may in fact have been stored (only its ack was lost); re-sending it
// is harmless (server-side dedup), but if the spool is full it is counted as
// dropped although it may have arrived. Wire
// it to the transport's asynchronous error hook (jsbus.Config.OnPublishError
// through jsbus.ReportFailedEvents).
//
// A permanent err ([events.ErrInvalid], [events.ErrPayloadTooLarge],
// [events.ErrUnsupported]), an invalid or oversized ev, and an ev that has
// already failed [Options.MaxAsyncFailures] times are discarded and counted
// instead: re-sending them would only fail again, forever.
func (p *Publisher) Failed(ev events.Event, err error) {
	if p.closed.Load() || ev == nil {
		return
	}
	m := ev.Metadata()
	if permanent(err) {
		p.discard(m.Type, m.ID, reasonOf(err), err)
		return
	}
	if verr := ev.Validate(); verr != nil {
		p.discard(m.Type, m.ID, reasonOf(verr), verr)
		return
	}
	p.failures.Add(1)
	p.m.failures.WithLabelValues("async").Inc()
	p.flog.report("async publish", err)
	_, _ = p.cb.Execute(func() (struct{}, error) { return struct{}{}, err })
	p.mu.Lock()
	n := p.asyncFails.inc(m.ID)
	p.mu.Unlock()
	if n > p.o.MaxAsyncFailures {
		p.discard(m.Type, m.ID, reasonExhausted, fmt.Errorf("failed asynchronously %d times, last: %w", n, err))
		return
	}
	_ = p.enqueue(ev, err, false)
}

// enqueue puts ev in the spool, or counts it as dropped. internal marks the
// breaker's own events: they are few (one per state change) and are kept
// even in a full spool, so that the drop count is the application's alone.
func (p *Publisher) enqueue(ev events.Event, cause error, internal bool) error {
	data := ev.AppendJSON(nil)
	if len(data) > p.o.MaxEventBytes {
		m := ev.Metadata()
		err := fmt.Errorf("breaker: %s %s: %w: %d bytes encoded, the limit is %d (Options.MaxEventBytes)",
			m.Type, m.ID, events.ErrPayloadTooLarge, len(data), p.o.MaxEventBytes)
		p.discard(m.Type, m.ID, reasonTooLarge, err)
		return err
	}
	p.mu.Lock()
	ok, err := p.spool.push(data, internal)
	if ok {
		p.spooling.Store(true)
	} else {
		p.drops[ev.Metadata().Type]++
	}
	p.mu.Unlock()
	if err != nil {
		p.flog.report("spool", err)
	}
	if !ok {
		p.dropped.Add(1)
		p.m.dropped.WithLabelValues(string(ev.Metadata().Type)).Inc()
		if cause == nil {
			cause = errors.New("circuit open")
		}
		p.flog.report("drop", fmt.Errorf("%w (%s): %w", ErrDropped, ev.Metadata().Type, cause))
		return fmt.Errorf("breaker: %s %s: %w", ev.Metadata().Type, ev.Metadata().ID, ErrDropped)
	}
	p.spooled.Add(1)
	p.m.spooled.Inc()
	p.signal()
	return nil
}

func (p *Publisher) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// spoolDepth returns the spool's events and bytes, for the gauges.
func (p *Publisher) spoolDepth() (int, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spool.len(), p.spool.bytes()
}

// stateValue is the state gauge's value. Asking gobreaker for the state
// also moves an open circuit whose timeout has passed to half-open, so a
// scrape never reports a stale "open".
func (p *Publisher) stateValue() float64 {
	switch p.State() {
	case Open:
		return 2
	case HalfOpen:
		return 1
	}
	return 0
}

// drainLoop sends spooled events whenever the circuit lets it. After a
// failure it waits InitialBackoff, doubling up to a quarter of OpenTimeout;
// while the circuit is open it waits for the probe time.
func (p *Publisher) drainLoop() {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	wait := p.o.InitialBackoff
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		case <-retry.C:
		}
		if !p.drain() {
			wait = p.o.InitialBackoff
			continue
		}
		if p.cb.State() == gobreaker.StateOpen {
			retry.Reset(p.untilProbe())
			continue
		}
		retry.Reset(wait)
		wait = min(2*wait, max(p.o.OpenTimeout/4, p.o.InitialBackoff))
	}
}

// untilProbe is how long the open circuit stays open: gobreaker does not
// say, so poll at a tenth of the timeout.
func (p *Publisher) untilProbe() time.Duration { return max(p.o.OpenTimeout/10, time.Millisecond) }

// drain sends spooled events in order until the spool is empty (false) or a
// send fails (true).
func (p *Publisher) drain() bool {
	ctx := p.closing
	for {
		if p.cb.State() == gobreaker.StateOpen {
			return true
		}
		p.mu.Lock()
		data, ok, err := p.spool.peek()
		p.mu.Unlock()
		if err != nil {
			p.flog.report("spool", err)
			return true
		}
		if !ok {
			return p.finishDrain(ctx)
		}
		ev, derr := p.decoder.Decode(data)
		if derr != nil { // a damaged disk spool, or an event a newer version wrote
			p.popSpool()
			p.discard("", "", reasonCorrupt, fmt.Errorf("undecodable spooled event: %w", derr))
			continue
		}
		if len(data) > p.o.MaxEventBytes { // spooled by a process with a larger limit
			p.popSpool()
			p.discard(ev.Metadata().Type, ev.Metadata().ID, reasonTooLarge,
				fmt.Errorf("%w: %d bytes spooled, the limit is %d", events.ErrPayloadTooLarge, len(data), p.o.MaxEventBytes))
			continue
		}
		_, err = p.cb.Execute(func() (struct{}, error) { return struct{}{}, p.attempt(ctx, ev) })
		if err != nil && !permanent(err) {
			return ctx.Err() == nil
		}
		p.popSpool()
		if err == nil {
			p.drained.Add(1)
		} else {
			p.discard(ev.Metadata().Type, ev.Metadata().ID, reasonOf(err), err)
		}
	}
}

func (p *Publisher) popSpool() {
	p.mu.Lock()
	if err := p.spool.pop(); err != nil {
		p.flog.report("spool", err)
	}
	p.mu.Unlock()
}

// finishDrain marks the spool empty and reports drops since the last report.
func (p *Publisher) finishDrain(ctx context.Context) bool {
	p.mu.Lock()
	if p.spool.len() > 0 {
		p.mu.Unlock()
		return false // an event arrived meanwhile; the kick is pending
	}
	p.spooling.Store(false)
	drops := p.drops
	p.drops = map[events.Type]uint64{}
	p.mu.Unlock()
	if len(drops) == 0 {
		return false
	}
	ev := events.NewControlEvent(events.ConfigChanged, p.o.Source)
	ev.Reason = "monitoring events were dropped while the bus was unavailable"
	ev.Config = map[string]string{"component": "breaker", "publisher": p.o.Name}
	var total uint64
	for t, n := range drops {
		ev.Config["dropped."+string(t)] = strconv.FormatUint(n, 10)
		total += n
	}
	ev.Config["dropped_total"] = strconv.FormatUint(total, 10)
	if err := p.Publish(ctx, ev); err != nil {
		p.flog.report("drop report", err)
	}
	return false
}

// onStateChange runs under gobreaker's lock: it only records and enqueues.
func (p *Publisher) onStateChange(_ string, from, to gobreaker.State) {
	f, t := stateOf(from), stateOf(to)
	p.m.transitions.WithLabelValues(string(f), string(t)).Inc()
	p.flog.log.Info().Str("from", string(f)).Str("to", string(t)).Msg("circuit state changed")
	ev := events.NewControlEvent(events.ConfigChanged, p.o.Source)
	ev.Reason = "circuit breaker " + string(f) + " -> " + string(t)
	ev.Config = map[string]string{"component": "breaker", "publisher": p.o.Name, "breaker_state": string(t), "previous_state": string(f)}
	p.mu.Lock()
	ev.Config["spool_depth"] = strconv.Itoa(p.spool.len())
	p.mu.Unlock()
	// Spooled, so it travels in order once the bus is back.
	_ = p.enqueue(ev, nil, true)
}

// State returns the circuit's current state.
func (p *Publisher) State() State { return stateOf(p.cb.State()) }

// Stats returns the counters and the spool's depth.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	depth, size := p.spool.len(), p.spool.bytes()
	p.mu.Unlock()
	return Stats{
		State: p.State(), Published: p.published.Load(), Spooled: p.spooled.Load(), Drained: p.drained.Load(),
		Dropped: p.dropped.Load(), Permanent: p.permanent.Load(), Failures: p.failures.Load(),
		SpoolDepth: depth, SpoolBytes: size,
	}
}

// Collectors returns the Prometheus collectors, for a caller that registers
// them itself.
func (p *Publisher) Collectors() []prometheus.Collector { return p.m.collectors() }

// WaitDrained waits until the spool is empty, or ctx ends.
func (p *Publisher) WaitDrained(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for p.spooling.Load() {
		p.signal()
		select {
		case <-ctx.Done():
			return fmt.Errorf("breaker: %d events still spooled: %w", p.Stats().SpoolDepth, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Close stops the drainer and closes the spool; a disk spool keeps what is
// left for the next start, a memory spool's leftovers are reported in the
// error. It does not close the wrapped publisher. To lose nothing, first let
// the wrapped bus settle its acks (its Flush) and the spool drain
// ([Publisher.WaitDrained]) — pkg/monitor's Close does all of it in order.
// It is idempotent.
func (p *Publisher) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.unnotify()
	p.cancel()
	close(p.done)
	p.wg.Wait()
	p.mu.Lock()
	left := p.spool.len()
	err := p.spool.close()
	p.mu.Unlock()
	if left > 0 && p.o.SpoolDir == "" {
		err = errors.Join(err, fmt.Errorf("breaker: %d spooled events lost on close (memory spool)", left))
	}
	return err
}
