package coordinator

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/jetmon/jetmon/pkg/events"
)

// Options configures an [EventDrivenCoordinator]. Zero values mean the
// defaults.
type Options struct {
	// Source is the emitting service, the events' source (default: the
	// executable's name).
	Source string
	// Service, Version and Host enrich every event as attributes (Host
	// defaults to the host name).
	Service, Version, Host string
	// Attributes are added to every event.
	Attributes map[string]string

	// QueueSize bounds the records waiting to be published (default 8192),
	// rounded up to a power of two (at least 2).
	QueueSize int
	// BlockFor, when positive, lets a caller wait up to this long for room
	// in a full queue; by default a full queue drops the record (counted per
	// event type) and the caller never waits.
	BlockFor time.Duration
	// BatchSize is how many records the publisher goroutine takes per
	// wake-up (default 256).
	BatchSize int

	// SampleRate is the share of events kept, in (0, 1] (default 1).
	// SampleRates overrides it per event-type pattern (e.g.
	// "performance.metric.*": 0.1). Sampling is decided by trace id, so a
	// sampled trace is kept whole.
	SampleRate  float64
	SampleRates map[string]float64
	// RateLimit caps published events per second (0: no cap), with Burst.
	RateLimit float64
	Burst     int
	// DedupWindow drops an event identical to one published within the
	// window (0: off).
	DedupWindow time.Duration
	// ShouldMonitor filters events before publishing (default
	// [DefaultShouldMonitor]).
	ShouldMonitor func(events.Event) bool
	// Enrich may add to an event before it is published.
	Enrich func(events.Event)
	// PublishTimeout bounds one publish on the bus (default 5 s).
	PublishTimeout time.Duration

	// Logger receives the coordinator's own failures; nil discards them.
	Logger *zerolog.Logger
}

// DefaultShouldMonitor keeps performance.*, validation.failed and
// system.error events: the default filter of what is worth monitoring.
func DefaultShouldMonitor(ev events.Event) bool {
	t := ev.Metadata().Type
	return t.Family() == events.FamilyPerformance || t == events.ValidationFailed || t == events.SystemError
}

func (o Options) withDefaults() Options {
	if o.Source == "" {
		o.Source = "app"
		if len(os.Args) > 0 {
			o.Source = baseName(os.Args[0])
		}
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.SampleRate == 0 {
		o.SampleRate = 1
	}
	if o.ShouldMonitor == nil {
		o.ShouldMonitor = DefaultShouldMonitor
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	return o
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' || p[i] == '\\' {
			return p[i+1:]
		}
	}
	return p
}

// Validate reports the first bad option, by name.
func (o Options) Validate() error {
	if o.SampleRate < 0 || o.SampleRate > 1 {
		return fmt.Errorf("coordinator options: SampleRate %v: must be in [0, 1]", o.SampleRate)
	}
	for p, r := range o.SampleRates {
		if err := events.ValidatePattern(p); err != nil {
			return fmt.Errorf("coordinator options: SampleRates: %w", err)
		}
		if r < 0 || r > 1 || math.IsNaN(r) {
			return fmt.Errorf("coordinator options: SampleRates[%q] %v: must be in [0, 1]", p, r)
		}
	}
	if o.RateLimit < 0 {
		return fmt.Errorf("coordinator options: RateLimit %v: must not be negative", o.RateLimit)
	}
	return nil
}

// record is what a caller hands to the publisher goroutine: plain values,
// no allocation.
type record struct {
	typ                                    events.Type
	name, fieldPath, status, unit, errText string
	ctxID                                  string
	d                                      time.Duration
	value                                  float64
	trace                                  events.TraceContext
	at                                     time.Time
}

// EventDrivenStats counts what an EventDrivenCoordinator did.
type EventDrivenStats struct {
	Enqueued, Published, Dropped, SampledOut, RateLimited, Deduplicated, Filtered, PublishErrors, Panics uint64
	// DroppedByType counts queue-full drops per event type.
	DroppedByType map[events.Type]uint64
}

// EventDrivenCoordinator publishes performance.* events. A call costs the
// caller a sampling decision and a lock-free queue insert; a goroutine
// builds the events (ids, trace spans, enrichment), filters, deduplicates,
// rate-limits and publishes them. Every method is safe for concurrent use.
type EventDrivenCoordinator struct {
	bus  events.Publisher
	o    Options
	log  zerolog.Logger
	q    *queue
	done chan struct{}
	wg   sync.WaitGroup

	enabled atomic.Bool
	sampler atomic.Pointer[sampler]
	limiter *rate.Limiter
	attrs   map[string]string

	// idle is set while the publisher goroutine sleeps on wake because the
	// queue was empty; the caller that clears it sends the wake-up. Callers
	// of a busy coordinator therefore never touch the channel.
	idle atomic.Bool
	wake chan struct{}

	// Owned by the publisher goroutine.
	dedupSeed   maphash.Seed
	dedup       map[uint64]time.Time
	pubCtx      context.Context
	pubCancel   context.CancelFunc
	pubDeadline time.Time

	_                                                                     cacheLinePad // callers' counters below, the publisher's above
	sampledOut, dropped                                                   atomic.Uint64
	droppedByType                                                         [len(perfTypes)]atomic.Uint64
	closed                                                                atomic.Bool
	_                                                                     cacheLinePad
	published, rateLimited, deduplicated, filtered, publishErrors, panics atomic.Uint64
}

// cacheLinePad keeps counters written by callers and by the publisher
// goroutine off each other's cache lines.
type cacheLinePad [64]byte

var _ Coordinator = (*EventDrivenCoordinator)(nil)

// perfTypes index the per-type drop counters.
var perfTypes = [...]events.Type{
	events.PhaseStart, events.PhaseEnd, events.OperationComplete, events.OperationFailed,
	events.MetricRecorded, events.ResourceAllocated, events.ResourceReleased,
}

func typeIndex(t events.Type) int {
	for i, pt := range perfTypes {
		if pt == t {
			return i
		}
	}
	return 0
}

// NewEventDriven starts a coordinator publishing to bus. Close it to flush.
func NewEventDriven(bus events.Publisher, o Options) (*EventDrivenCoordinator, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	c := &EventDrivenCoordinator{
		bus: bus, o: o, log: zerolog.Nop(), q: newQueue(o.QueueSize), done: make(chan struct{}),
		wake: make(chan struct{}, 1), dedupSeed: maphash.MakeSeed(), dedup: map[uint64]time.Time{},
	}
	if o.Logger != nil {
		c.log = o.Logger.With().Str("component", "coordinator").Logger()
	}
	if o.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(o.RateLimit), max(o.Burst, 1))
	}
	c.attrs = maps.Clone(o.Attributes)
	if c.attrs == nil {
		c.attrs = map[string]string{}
	}
	for k, v := range map[string]string{"host": o.Host, "service": o.Service, "version": o.Version} {
		if v != "" {
			c.attrs[k] = v
		}
	}
	c.sampler.Store(newSampler(o.SampleRate, o.SampleRates))
	c.enabled.Store(true)
	c.wg.Go(c.run)
	return c, nil
}

// sampler decides per event type, from the trace id, whether to keep a
// record. It is immutable; SetSampleRate swaps in a new one.
type sampler struct {
	all      bool // every type at rate 1: no lookup, no hashing
	def      float64
	patterns []patternRate
	byType   map[events.Type]uint64 // threshold: keep if hash < threshold
}

type patternRate struct {
	pattern string
	rate    float64
}

func newSampler(def float64, rates map[string]float64) *sampler {
	s := &sampler{def: def, byType: map[events.Type]uint64{}}
	for p, r := range rates {
		s.patterns = append(s.patterns, patternRate{p, r})
	}
	for _, t := range perfTypes {
		r := def
		for _, pr := range s.patterns {
			if events.Match(pr.pattern, t) {
				r = pr.rate
			}
		}
		s.byType[t] = threshold(r)
	}
	s.all = true
	for _, th := range s.byType {
		s.all = s.all && th == math.MaxUint64
	}
	return s
}

func threshold(r float64) uint64 {
	switch {
	case r >= 1:
		return math.MaxUint64
	case r <= 0:
		return 0
	}
	return uint64(r * (1 << 64))
}

// keep reports whether a record of type t in trace tc is sampled in.
func (s *sampler) keep(t events.Type, tc events.TraceContext) bool {
	if s.all {
		return true
	}
	th := s.byType[t]
	if th == math.MaxUint64 {
		return true
	}
	var h uint64
	if tc.TraceID.IsZero() {
		h = rand.Uint64()
	} else {
		// The trace id is random: its first 8 bytes are a fair coin, the
		// same for every event of the trace.
		for _, b := range tc.TraceID[:8] {
			h = h<<8 | uint64(b)
		}
	}
	return h < th
}

// SetSampleRate changes the sample rate of the event types matching pattern
// ("" or ">" for all) at run time.
func (c *EventDrivenCoordinator) SetSampleRate(pattern string, r float64) error {
	if r < 0 || r > 1 || math.IsNaN(r) {
		return fmt.Errorf("sample rate %v: must be in [0, 1]", r)
	}
	old := c.sampler.Load()
	rates := map[string]float64{}
	for _, pr := range old.patterns {
		rates[pr.pattern] = pr.rate
	}
	def := old.def
	if pattern == "" || pattern == ">" {
		def, rates = r, map[string]float64{}
	} else {
		if err := events.ValidatePattern(pattern); err != nil {
			return err
		}
		rates[pattern] = r
	}
	c.sampler.Store(newSampler(def, rates))
	return nil
}

// SampleRate returns the sample rate in force for t.
func (c *EventDrivenCoordinator) SampleRate(t events.Type) float64 {
	th := c.sampler.Load().byType[t]
	if th == math.MaxUint64 {
		return 1
	}
	return float64(th) / (1 << 64)
}

// SetEnabled turns recording on or off at run time.
func (c *EventDrivenCoordinator) SetEnabled(on bool) { c.enabled.Store(on) }

// submit is the caller's whole cost: a sampling decision and a queue insert.
func (c *EventDrivenCoordinator) submit(ctx context.Context, r record) {
	if !c.enabled.Load() || c.closed.Load() {
		return
	}
	r.trace, _ = events.TraceFromContext(ctx)
	if !c.sampler.Load().keep(r.typ, r.trace) {
		c.sampledOut.Add(1)
		return
	}
	r.ctxID = ContextID(ctx)
	if c.q.push(&r) {
		c.wakeIfIdle()
		return
	}
	c.wakeUp() // full: make sure the publisher is not asleep on it
	if c.o.BlockFor > 0 && c.waitForRoom(ctx, &r) {
		return
	}
	c.dropped.Add(1)
	c.droppedByType[typeIndex(r.typ)].Add(1)
}

// wakeIfIdle wakes the publisher goroutine if it sleeps on an empty queue.
func (c *EventDrivenCoordinator) wakeIfIdle() {
	if c.idle.Load() && c.idle.CompareAndSwap(true, false) {
		c.wakeUp()
	}
}

func (c *EventDrivenCoordinator) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// waitForRoom retries the insert of r into a full queue, polling with a
// growing pause, until BlockFor has passed or ctx ends. It reports whether r
// was queued.
func (c *EventDrivenCoordinator) waitForRoom(ctx context.Context, r *record) bool {
	deadline := time.Now().Add(c.o.BlockFor)
	pause := 20 * time.Microsecond
	var t *time.Timer
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		d := min(pause, left)
		if t == nil {
			t = time.NewTimer(d)
			defer t.Stop()
		} else {
			t.Reset(d)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
		if c.q.push(r) {
			c.wakeIfIdle()
			return true
		}
		c.wakeUp()
		pause = min(2*pause, time.Millisecond)
	}
}

// PhaseStart queues a performance.phase.start event.
func (c *EventDrivenCoordinator) PhaseStart(ctx context.Context, phase, fieldPath string) {
	c.submit(ctx, record{typ: events.PhaseStart, name: phase, fieldPath: fieldPath})
}

// PhaseEnd queues a performance.phase.end event.
func (c *EventDrivenCoordinator) PhaseEnd(ctx context.Context, phase, fieldPath string, d time.Duration, status string) {
	c.submit(ctx, record{typ: events.PhaseEnd, name: phase, fieldPath: fieldPath, d: d, status: status})
}

// OperationComplete queues a performance.operation.complete event.
func (c *EventDrivenCoordinator) OperationComplete(ctx context.Context, op string, d time.Duration) {
	c.submit(ctx, record{typ: events.OperationComplete, name: op, d: d, status: events.StatusSuccess})
}

// OperationFailed queues a performance.operation.failed event.
func (c *EventDrivenCoordinator) OperationFailed(ctx context.Context, op string, d time.Duration, err error) {
	r := record{typ: events.OperationFailed, name: op, d: d, status: events.StatusFailure}
	if err != nil && c.enabled.Load() {
		r.errText = err.Error()
	}
	c.submit(ctx, r)
}

// RecordMetric queues a performance.metric.recorded event.
func (c *EventDrivenCoordinator) RecordMetric(ctx context.Context, name string, value float64, unit string) {
	c.submit(ctx, record{typ: events.MetricRecorded, name: name, value: value, unit: unit})
}

// ResourceAllocated queues a performance.resource.allocated event.
func (c *EventDrivenCoordinator) ResourceAllocated(ctx context.Context, resource string, amount float64) {
	c.submit(ctx, record{typ: events.ResourceAllocated, name: resource, value: amount})
}

// ResourceReleased queues a performance.resource.released event.
func (c *EventDrivenCoordinator) ResourceReleased(ctx context.Context, resource string, amount float64) {
	c.submit(ctx, record{typ: events.ResourceReleased, name: resource, value: amount})
}

// Time times op; the returned function queues it as complete.
func (c *EventDrivenCoordinator) Time(ctx context.Context, op string) func() {
	if !c.enabled.Load() {
		return noopDone
	}
	start := time.Now()
	return func() {
		c.submit(ctx, record{typ: events.OperationComplete, name: op, d: time.Since(start), status: events.StatusSuccess, at: start})
	}
}

// Enabled reports whether records are being taken.
func (c *EventDrivenCoordinator) Enabled() bool { return c.enabled.Load() }

// run is the publisher goroutine: it takes up to BatchSize records at a
// time off the queue (freeing their slots at once) and publishes them; when
// the queue is empty it sleeps until a caller wakes it.
func (c *EventDrivenCoordinator) run() {
	batch := make([]record, c.o.BatchSize)
	defer c.closePublishCtx()
	for {
		if n := c.q.popInto(batch); n > 0 {
			for i := range batch[:n] {
				c.publish(&batch[i])
				batch[i] = record{} // drop references to the caller's strings
			}
			continue
		}
		select {
		case <-c.done:
			for n := c.q.popInto(batch); n > 0; n = c.q.popInto(batch) {
				for i := range batch[:n] {
					c.publish(&batch[i])
				}
			}
			return
		default:
		}
		// Announce the sleep, then look again: a caller that queued after
		// the look above either is seen now or sees idle and wakes us.
		c.idle.Store(true)
		if c.q.ready() {
			c.idle.Store(false)
			continue
		}
		select {
		case <-c.wake:
		case <-c.done:
		}
		c.idle.Store(false)
	}
}

// publishCtx returns the context bounding one publish: shared by
// consecutive publishes (a timer per event would cost more than the rest of
// the stage), and replaced once less than half of PublishTimeout is left, so
// each publish gets between half and all of it.
func (c *EventDrivenCoordinator) publishCtx(now time.Time) context.Context {
	if c.pubCtx == nil || c.pubDeadline.Sub(now) < c.o.PublishTimeout/2 {
		c.closePublishCtx()
		c.pubDeadline = now.Add(c.o.PublishTimeout)
		c.pubCtx, c.pubCancel = context.WithDeadline(context.Background(), c.pubDeadline)
	}
	return c.pubCtx
}

func (c *EventDrivenCoordinator) closePublishCtx() {
	if c.pubCancel != nil {
		c.pubCancel()
	}
}

// publish turns r into an event and publishes it; a panic anywhere (bus,
// enricher, filter) is contained and counted.
func (c *EventDrivenCoordinator) publish(r *record) {
	defer func() {
		if p := recover(); p != nil {
			c.panics.Add(1)
			c.log.Error().Interface("panic", p).Msg("coordinator: panic while publishing; event dropped")
		}
	}()
	now := time.Now()
	ev := c.build(r, now)
	if !c.o.ShouldMonitor(ev) {
		c.filtered.Add(1)
		return
	}
	if c.o.DedupWindow > 0 && c.duplicate(r) {
		c.deduplicated.Add(1)
		return
	}
	if c.limiter != nil && !c.limiter.Allow() {
		c.rateLimited.Add(1)
		return
	}
	if c.o.Enrich != nil {
		c.o.Enrich(ev)
	}
	if err := c.bus.Publish(c.publishCtx(now), ev); err != nil {
		c.publishErrors.Add(1)
		c.log.Debug().Err(err).Str("event_type", string(r.typ)).Msg("coordinator: publish failed")
		return
	}
	c.published.Add(1)
}

// build turns r into its event, made at now. It fills the fields that
// [events.NewPerformanceEvent] does, but draws a root trace only when r has
// no trace to continue (random ids cost more than the rest of the event).
func (c *EventDrivenCoordinator) build(r *record, now time.Time) *events.PerformanceEvent {
	ev := &events.PerformanceEvent{Meta: events.Meta{ID: events.NewIDAt(now), Type: r.typ, Source: c.o.Source, Timestamp: now.UTC().Round(0)}}
	if !r.at.IsZero() {
		ev.Timestamp = r.at.UTC().Round(0)
	}
	ev.SetTrace(r.trace.Child()) // a child span, or a new root trace
	ev.ContextID = r.ctxID
	ev.FieldPath, ev.Status = r.fieldPath, r.status
	ms := float64(r.d) / float64(time.Millisecond)
	switch r.typ {
	case events.PhaseStart:
		ev.Phase = r.name
	case events.PhaseEnd:
		ev.Phase, ev.DurationMS = r.name, ms
	case events.OperationComplete, events.OperationFailed:
		ev.Operation, ev.DurationMS, ev.Error = r.name, ms, r.errText
	case events.MetricRecorded:
		ev.Metric, ev.Value, ev.Unit = r.name, r.value, r.unit
	case events.ResourceAllocated, events.ResourceReleased:
		ev.Resource, ev.Value = r.name, r.value
	}
	if len(c.attrs) > 0 {
		ev.Attributes = c.attrs // shared, read-only: buses encode, never keep
	}
	return ev
}

// duplicate reports whether an identical record was published within the
// dedup window; it forgets entries older than the window as it goes.
func (c *EventDrivenCoordinator) duplicate(r *record) bool {
	var h maphash.Hash
	h.SetSeed(c.dedupSeed)
	for _, s := range []string{string(r.typ), r.name, r.fieldPath, r.status, r.unit, r.errText, r.ctxID} {
		_, _ = h.WriteString(s)
		_ = h.WriteByte(0)
	}
	_, _ = h.WriteString(strconv.FormatInt(int64(r.d), 10))
	_, _ = h.WriteString(strconv.FormatFloat(r.value, 'g', -1, 64))
	key := h.Sum64()
	now := time.Now()
	if len(c.dedup) > 4096 {
		for k, t := range c.dedup {
			if now.Sub(t) > c.o.DedupWindow {
				delete(c.dedup, k)
			}
		}
	}
	if t, ok := c.dedup[key]; ok && now.Sub(t) <= c.o.DedupWindow {
		return true
	}
	c.dedup[key] = now
	return false
}

// Stats returns the counters.
func (c *EventDrivenCoordinator) Stats() EventDrivenStats {
	st := EventDrivenStats{
		Enqueued: c.q.pushed(), Published: c.published.Load(), Dropped: c.dropped.Load(),
		SampledOut: c.sampledOut.Load(), RateLimited: c.rateLimited.Load(), Deduplicated: c.deduplicated.Load(),
		Filtered: c.filtered.Load(), PublishErrors: c.publishErrors.Load(), Panics: c.panics.Load(),
		DroppedByType: map[events.Type]uint64{},
	}
	for i, t := range perfTypes {
		if n := c.droppedByType[i].Load(); n > 0 {
			st.DroppedByType[t] = n
		}
	}
	return st
}

// QueueLen returns the number of records waiting.
func (c *EventDrivenCoordinator) QueueLen() int { return c.q.len() }

// Close stops taking records, publishes what is queued (until ctx ends) and
// stops the goroutine. It is idempotent.
func (c *EventDrivenCoordinator) Close(ctx context.Context) error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(c.done)
	stopped := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("coordinator: close: queue not flushed"), ctx.Err())
	}
}

// queue is a bounded ring of records with many writers (the callers) and
// one reader (the publisher goroutine), after Dmitry Vyukov's bounded queue:
// a writer claims a slot with one compare-and-swap on tail and hands it over
// with one atomic store on the slot's sequence. Nobody takes a lock, and a
// writer neither waits for the reader nor wakes it (see
// [EventDrivenCoordinator.wakeIfIdle]).
type queue struct {
	_     cacheLinePad
	tail  atomic.Uint64 // next position to claim: records ever queued
	_     cacheLinePad
	head  atomic.Uint64 // next position to read; written by the reader only
	_     cacheLinePad
	mask  uint64
	slots []slot
}

// slot holds the record of position seq-1 once seq is position+1; seq is
// position+len(slots) once the reader freed it for the next lap.
type slot struct {
	seq atomic.Uint64
	rec record
}

// newQueue returns a queue of at least size slots: a power of two, and at
// least 2 (with one slot, a full slot's sequence would read as free).
func newQueue(size int) *queue {
	n := 2
	for n < size {
		n <<= 1
	}
	q := &queue{mask: uint64(n - 1), slots: make([]slot, n)}
	for i := range q.slots {
		q.slots[i].seq.Store(uint64(i))
	}
	return q
}

// push copies r into the queue; it reports false if the queue is full.
func (q *queue) push(r *record) bool {
	pos := q.tail.Load()
	for {
		s := &q.slots[pos&q.mask]
		switch lag := int64(s.seq.Load() - pos); {
		case lag == 0: // free for this lap
			if q.tail.CompareAndSwap(pos, pos+1) {
				s.rec = *r
				s.seq.Store(pos + 1)
				return true
			}
			pos = q.tail.Load()
		case lag < 0: // still holds the record of the previous lap
			return false
		default: // another writer took pos
			pos = q.tail.Load()
		}
	}
}

// popInto moves up to len(buf) records, in order, into buf and frees their
// slots; it returns how many. Only the reader may call it.
func (q *queue) popInto(buf []record) int {
	pos := q.head.Load()
	n := 0
	for n < len(buf) {
		s := &q.slots[(pos+uint64(n))&q.mask]
		if s.seq.Load() != pos+uint64(n)+1 {
			break // empty, or the writer of this position is not done
		}
		buf[n] = s.rec
		s.rec = record{}
		s.seq.Store(pos + uint64(n) + q.mask + 1)
		n++
	}
	if n > 0 {
		q.head.Store(pos + uint64(n))
	}
	return n
}

// ready reports whether the next record can be read.
func (q *queue) ready() bool {
	pos := q.head.Load()
	return q.slots[pos&q.mask].seq.Load() == pos+1
}

// pushed returns how many records were ever queued.
func (q *queue) pushed() uint64 { return q.tail.Load() }

// len returns how many records wait (claimed slots included).
func (q *queue) len() int {
	t, h := q.tail.Load(), q.head.Load()
	if t < h {
		return 0
	}
	return int(t - h)
}
