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
