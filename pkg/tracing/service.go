// Package tracing is the trace assembly runtime: it consumes every event
// family from JetStream with a durable consumer, groups events into traces
// with [trace.Assembler], and stores each finished trace as one message on
// traces.assembled.<trace id> in the TRACES stream (one message per subject:
// fetching a trace is a direct get of its subject's last message, and a late
// span republishes the merged trace). It feeds the dependency map and the
// bottlenecks ([trace.Analyzer]) and serves the trace API (see [Service.Mount]
// and docs/traces.md).
//
// # Partitions
//
// Several instances split the traces by trace id: instance i of n takes the
// traces whose id hashes to i (Options.Partitions, Options.Partition), each
// with its own durable consumer. Subjects carry no trace id, so each
// instance reads every event and skips the others' (acknowledging them):
// assembly and storage scale out, reading does not.
//
// # Delivery
//
// An event is acknowledged once the assembler holds it. Every second the
// runtime writes a recovery point to the jetmon_traces bucket: the time the
// oldest event not yet safely stored arrived. A restarted runtime first
// replays the streams from there (ordered consumers, at most MaxRecovery
// back), so the traces open when a process died are rebuilt; spans already
// stored merge without duplicates (by event id), as late spans do.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/trace"
)

// Stream is the stream of assembled traces; SubjectPrefix starts its
// subjects (then the trace id in hex).
const (
	Stream        = "TRACES"
	SubjectPrefix = "traces.assembled."
)

// Options configure a [Service].
type Options struct {
	// Bus is the JetStream bus to consume from and store to. Required.
	Bus *jsbus.Bus
	// Name names the durable consumers (Name, or Name-p<i> with
	// partitions). Default "traces".
	Name string
	// Assembly bounds the assembler; Analysis the dependency map and
	// bottleneck windows.
	Assembly trace.Options
	Analysis trace.AnalyzerOptions
	// Partitions, when above 1, splits traces between instances by trace
	// id; this one takes Partition (0 ≤ Partition < Partitions).
	Partitions, Partition int
	// FromBeginning makes a new durable consumer start at the oldest stored
	// event (assembling the history) instead of with new events. An
	// existing consumer resumes where it stopped either way.
	FromBeginning bool
	// MaxRecovery bounds how far back a restart replays the streams to
	// rebuild the traces open when the previous run stopped (default 1 h).
	MaxRecovery time.Duration
	// Retention is how long stored traces are kept (TRACES max age).
	Retention time.Duration
	// MaxStoredBytes bounds the TRACES stream (old traces go first).
	MaxStoredBytes int64
	Logger         *zerolog.Logger
	Registerer     prometheus.Registerer
}

// DefaultOptions returns the defaults: the assembler's and analyzer's, one
// partition, 72 h retention, 1 GiB.
func DefaultOptions() Options {
	return Options{
		Name: "traces", Assembly: trace.DefaultOptions(), Analysis: trace.DefaultAnalyzerOptions(),
		Retention: 72 * time.Hour, MaxStoredBytes: 1 << 30, MaxRecovery: time.Hour,
	}
}

// maxPending bounds the stored traces awaiting their acknowledgement.
const maxPending = 4096

// ErrOptions is matched by the error of an invalid option.
var ErrOptions = errors.New("invalid tracing options")

// Validate names the first bad option.
func (o Options) Validate() error {
	switch {
	case o.Bus == nil:
		return fmt.Errorf("%w: Bus is required", ErrOptions)
	case o.Name == "":
		return fmt.Errorf("%w: Name is required", ErrOptions)
	case o.Partitions < 0 || (o.Partitions > 1 && (o.Partition < 0 || o.Partition >= o.Partitions)):
		return fmt.Errorf("%w: Partition %d of %d: must be in [0, Partitions)", ErrOptions, o.Partition, o.Partitions)
	case o.MaxRecovery < 0:
		return fmt.Errorf("%w: MaxRecovery %s: must not be negative", ErrOptions, o.MaxRecovery)
	case o.Retention <= 0:
		return fmt.Errorf("%w: Retention %s: must be positive", ErrOptions, o.Retention)
	case o.MaxStoredBytes < 1<<20:
		return fmt.Errorf("%w: MaxStoredBytes %d: must be at least 1 MiB", ErrOptions, o.MaxStoredBytes)
	}
	if err := o.Assembly.Validate(); err != nil {
		return err
	}
	return o.Analysis.Validate()
}

// Service is the trace runtime. Its query methods are safe for concurrent
// use with Run.
type Service struct {
	o        Options
	log      zerolog.Logger
	js       jetstream.JetStream
	ajs      jetstream.JetStream // its own async publisher, for stored traces
	streamH  atomic.Value        // jetstream.Stream
	pending  []pendingStore      // owned by Run's goroutine
	asm      *trace.Assembler
	analyzer *trace.Analyzer
	in       chan arrival
	kv       jetstream.KeyValue
	lastSeen time.Time // arrival of the last event taken (Run's goroutine)
	lwm      time.Time // the recovery point last written
	ready    atomic.Bool
	m        metrics
	statsMu  sync.Mutex
	stats    trace.Stats
	now      func() time.Time
}

// New checks o and returns a Service; Run starts it.
func New(o Options) (*Service, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	asm, err := trace.NewAssembler(o.Assembly)
	if err != nil {
		return nil, err
	}
	an, err := trace.NewAnalyzer(o.Analysis)
	if err != nil {
		return nil, err
	}
	ajs, err := jetstream.New(o.Bus.Conn(), jetstream.WithPublishAsyncMaxPending(maxPending))
	if err != nil {
		return nil, fmt.Errorf("traces: %w", err)
	}
	s := &Service{o: o, js: o.Bus.JetStream(), ajs: ajs, asm: asm, analyzer: an, in: make(chan arrival, 1024), now: time.Now}
	if o.Logger != nil {
		s.log = o.Logger.With().Str("component", "traces").Logger()
	} else {
		s.log = zerolog.Nop()
	}
	s.m = newMetrics(o.Registerer, s)
	return s, nil
}

// Ready reports whether the service consumes.
func (s *Service) Ready() bool { return s.ready.Load() }

// Stats returns the assembler's counters as of the last event.
func (s *Service) Stats() trace.Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Analyzer returns the dependency map and bottleneck aggregates.
func (s *Service) Analyzer() *trace.Analyzer { return s.analyzer }

func (s *Service) durable() string {
	if s.o.Partitions > 1 {
		return fmt.Sprintf("%s-p%d", s.o.Name, s.o.Partition)
	}
	return s.o.Name
}

// owns reports whether this instance's partition takes trace id.
func (s *Service) owns(ev events.Event) bool {
	if s.o.Partitions <= 1 {
		return true
	}
	id, _, ok := trace.FromEvent(ev)
	if !ok {
		return false
	}
	return Partition(id, s.o.Partitions) == s.o.Partition
}

// Partition returns the partition of trace id among n.
func Partition(id events.TraceID, n int) int {
	h := fnv.New32a()
	_, _ = h.Write(id[:])
	return int(h.Sum32() % uint32(n))
}

// ensureStream creates or updates the TRACES stream.
func (s *Service) ensureStream(ctx context.Context) error {
	cfg := jetstream.StreamConfig{
		Name: Stream, Description: "assembled traces, one message per trace id",
		Subjects: []string{SubjectPrefix + ">"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
		MaxMsgsPerSubject: 1, MaxAge: s.o.Retention, MaxBytes: s.o.MaxStoredBytes, Discard: jetstream.DiscardOld,
		AllowDirect: true, Replicas: max(s.o.Bus.StreamReplicas(), 1), Duplicates: 2 * time.Minute,
	}
	st, err := s.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("traces: stream %s: %w", Stream, err)
	}
	s.streamH.Store(st)
	return nil
}

// Run consumes until ctx ends, then stores every open trace and returns.
func (s *Service) Run(ctx context.Context) error {
	// A cluster that is forming may time these out: retry for a while
	// rather than exit and be restarted.
	var sub events.Subscription
	recovered := false
	setup := func() error {
		if err := s.ensureStream(ctx); err != nil {
			return err
		}
		var err error
		if s.kv == nil {
			s.kv, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: RecoveryBucket, Description: "where each trace consumer resumes assembling after a crash",
				Replicas: max(s.o.Bus.StreamReplicas(), 1), Storage: jetstream.FileStorage,
			})
			if err != nil {
				return fmt.Errorf("traces: bucket %s: %w", RecoveryBucket, err)
			}
		}
		if !recovered {
			s.rebuildAnalysis(ctx)
			if err := s.recover(ctx); err != nil {
				return err
			}
			recovered = true
		}
		sub, err = s.subscribe(ctx)
		return err
	}
	notify := func(err error, wait time.Duration) {
		s.log.Warn().Err(err).Dur("retry_in", wait).Msg("setting up the trace consumer failed; retrying")
	}
	if err := backoff.RetryNotify(setup, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(2*time.Minute)), ctx), notify); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.ready.Store(true)
	defer s.ready.Store(false)
	return s.loop(ctx, sub)
}

// subscribe starts the durable consumer of every event stream.
func (s *Service) subscribe(ctx context.Context) (events.Subscription, error) {
	start := events.DeliverNew()
	if s.o.FromBeginning {
		start = events.DeliverAll()
	}
	sub, err := s.o.Bus.Subscribe(ctx, ">", events.HandlerFunc(func(hctx context.Context, ev events.Event) error {
		if !s.owns(ev) {
			return nil
		}
		select {
		case s.in <- arrival{ev, published(hctx)}:
			return nil
		case <-hctx.Done():
			return hctx.Err()
		}
	}), events.Durable(s.durable()), start)
	if err != nil {
		return nil, fmt.Errorf("traces: subscribe: %w", err)
	}
	return sub, nil
}

// loop owns the assembler until ctx ends.
func (s *Service) loop(ctx context.Context, sub events.Subscription) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	checkpoint := time.NewTicker(CheckpointEvery)
	defer checkpoint.Stop()
	store := func(f *trace.Finished) { s.store(ctx, f) }
	for {
		wait := time.Hour
		if next, ok := s.asm.Next(); ok {
			wait = max(time.Until(next), time.Millisecond)
		}
		if len(s.pending) > 0 {
			wait = min(wait, 5*time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			_ = sub.Unsubscribe()
			// Store what is open, within a bounded time.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			sstore := func(f *trace.Finished) { s.store(sctx, f) }
			for drained := false; !drained; { // events handed over (and acknowledged) but not yet taken
				select {
				case a := <-s.in:
					s.take(a, sstore)
				default:
					drained = true
				}
			}
			s.asm.Drain(sstore)
			s.reap(sctx, true)
			s.checkpoint(sctx)
			cancel()
			return nil
		case a := <-s.in:
			s.take(a, store)
		case <-timer.C:
		case <-checkpoint.C:
			s.checkpoint(ctx)
		}
		s.asm.Expire(s.now(), store)
		s.reap(ctx, false)
		s.statsMu.Lock()
		s.stats = s.asm.Stats()
		s.statsMu.Unlock()
	}
}

// arrival is an event and when the bus stored it.
type arrival struct {
	ev events.Event
	at time.Time
}

func published(ctx context.Context) time.Time {
	if d, ok := events.DeliveryFromContext(ctx); ok && !d.Published.IsZero() {
		return d.Published
	}
	return time.Now()
}

// take gives one event to the assembler.
func (s *Service) take(a arrival, store func(*trace.Finished)) {
	if !s.asm.AddArrived(s.now(), a.at, a.ev, store) {
		s.m.ignored.Inc()
	}
	if a.at.After(s.lastSeen) {
		s.lastSeen = a.at
	}
}

// CheckpointEvery is how often the recovery point is written.
const CheckpointEvery = time.Second

// RecoveryBucket is the key-value bucket of the recovery points, one key
// per durable consumer name.
const RecoveryBucket = "jetmon_traces"

// checkpoint writes the recovery point: the arrival of the oldest event not
// yet safely stored (the oldest open trace's, or a trace's awaiting its
// acknowledgement), or, with none, of the last event taken. A restart
// replays the streams from there (see [Service.recover]).
func (s *Service) checkpoint(ctx context.Context) {
	lwm, ok := s.asm.Oldest()
	for _, p := range s.pending {
		if !ok || p.f.FirstArrival.Before(lwm) {
			lwm, ok = p.f.FirstArrival, true
		}
	}
	if !ok {
		lwm = s.lastSeen
	}
	if lwm.IsZero() || lwm.Equal(s.lwm) {
		return
	}
	if _, err := s.kv.Put(ctx, s.durable(), []byte(lwm.UTC().Format(time.RFC3339Nano))); err != nil {
		s.m.storeErrors.Inc()
		s.log.Warn().Err(err).Msg("writing the recovery point failed")
		return
	}
	s.lwm = lwm
}

// recover replays what arrived since the recovery point a previous run of
// this consumer left (at most MaxRecovery ago) into the assembler: the
// traces it held open when it died. Spans already stored merge without
// duplicates (by event id).
func (s *Service) recover(ctx context.Context) error {
	e, err := s.kv.Get(ctx, s.durable())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("traces: recovery point: %w", err)
	}
	from, ok := parsePoint(e.Value())
	if !ok {
		s.log.Warn().Str("value", fmt.Sprintf("%.64q", e.Value())).Msg("ignoring a malformed recovery point")
		return nil
	}
	from = from.Add(-CheckpointEvery) // the point may be one interval stale
	if floor := s.now().Add(-s.o.MaxRecovery); from.Before(floor) {
		from = floor
	}
	store := func(f *trace.Finished) { s.store(ctx, f) }
	st, err := s.o.Bus.Replay(ctx, ">", jsbus.ReplayOptions{From: from, To: s.now()}, events.HandlerFunc(func(hctx context.Context, ev events.Event) error {
		if s.owns(ev) {
			s.take(arrival{ev, published(hctx)}, store)
		}
		return nil
	}))
	if err != nil {
		return fmt.Errorf("traces: recovery replay: %w", err)
	}
	s.log.Info().Time("from", from).Uint64("events", st.Events).Int("open", s.asm.Stats().Open).Msg("recovered the traces open at the last stop")
	return nil
}

// MaxRebuild bounds the stored traces read at start to rebuild the analysis.
const MaxRebuild = 200_000

// rebuildAnalysis feeds the analyzer with the traces of this partition
// stored within its kept windows, so that the dependency map and the
// bottlenecks survive a restart. Failures are logged: the analysis then
// starts empty.
func (s *Service) rebuildAnalysis(ctx context.Context) {
	from := s.now().Add(-time.Duration(s.o.Analysis.Windows) * s.o.Analysis.Window)
	cons, err := s.js.OrderedConsumer(ctx, Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{SubjectPrefix + ">"}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
	})
	if err != nil {
		s.log.Warn().Err(err).Msg("cannot read the stored traces; the analysis starts empty")
		return
	}
	n := 0
	for n < MaxRebuild {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			break
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			n++
			id, spans, _, err := trace.Decode(msg.Data())
			if err != nil || (s.o.Partitions > 1 && Partition(id, s.o.Partitions) != s.o.Partition) {
				continue
			}
			s.analyzer.Observe(trace.Build(id, spans))
		}
		if got == 0 {
			break
		}
	}
	if n > 0 {
		s.log.Info().Int("traces", n).Msg("analysis rebuilt from the stored traces")
	}
}

// parsePoint reads a recovery point (RFC 3339).
func parsePoint(b []byte) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, string(b))
	return t, err == nil
}

// store hands f to JetStream without waiting, expecting no stored trace of
// its id (one round trip, acknowledged later by reap); a trace already
// stored — a late part — is merged by [Service.merge] instead.
func (s *Service) store(ctx context.Context, f *trace.Finished) {
	s.reap(ctx, false)
	data, kept, _ := s.encode(f.ID, f.Spans, f.Dropped)
	fut, err := s.ajs.PublishAsync(SubjectPrefix+f.ID.String(), data, jetstream.WithExpectLastSequencePerSubject(0))
	if err != nil {
		s.merge(ctx, f)
		return
	}
	// f stays whole: a conflict merges all its spans with the stored ones.
	s.pending = append(s.pending, pendingStore{f: f, kept: kept, fut: fut})
}

type pendingStore struct {
	f    *trace.Finished
	kept []trace.Span // the spans the message holds
	fut  jetstream.PubAckFuture
}

// reap handles the acknowledgements of stored traces in order; all waits for
// every one (bounded by ctx), otherwise it stops at the first not yet in.
func (s *Service) reap(ctx context.Context, all bool) {
	for len(s.pending) > 0 {
		p := s.pending[0]
		var err error
		if all {
			select {
			case <-p.fut.Ok():
			case err = <-p.fut.Err():
			case <-ctx.Done():
				return
			}
		} else {
			select {
			case <-p.fut.Ok():
			case err = <-p.fut.Err():
			default:
				return
			}
		}
		s.pending[0] = pendingStore{}
		s.pending = s.pending[1:]
		switch {
		case err == nil:
			s.stored(p.f, p.kept, false)
		case isConflict(err):
			s.merge(ctx, p.f)
		default:
			s.m.storeErrors.Inc()
			s.log.Warn().Err(err).Str("trace_id", p.f.ID.String()).Msg("storing a trace failed")
		}
	}
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// merge stores f merged with the stored trace of its id, compare-and-set on
// the subject's last sequence (a few attempts).
func (s *Service) merge(ctx context.Context, f *trace.Finished) {
	var err error
	for range 3 {
		spans, dropped := f.Spans, f.Dropped
		var old []trace.Span
		var seq uint64
		var oldDropped int
		old, oldDropped, seq, err = s.load(ctx, f.ID)
		switch {
		case err == nil:
			spans = trace.Merge(old, spans)
			dropped += oldDropped
		case errors.Is(err, trace.ErrNotFound):
		default:
			continue
		}
		if len(old) > 0 && len(spans) == len(old) {
			return // nothing new (a recovery replay of what was stored)
		}
		data, kept, _ := s.encode(f.ID, spans, dropped)
		_, err = s.js.Publish(ctx, SubjectPrefix+f.ID.String(), data, jetstream.WithExpectLastSequencePerSubject(seq))
		if err == nil {
			if len(old) > 0 {
				s.m.merged.Inc()
			}
			s.stored(f, kept, len(old) > 0)
			return
		}
		if !isConflict(err) {
			break
		}
	}
	s.m.storeErrors.Inc()
	s.log.Warn().Err(err).Str("trace_id", f.ID.String()).Msg("storing a trace failed")
}

// encode returns the stored form of a trace, with as many spans as fit the
// server's max payload (the rest counted as dropped).
func (s *Service) encode(id events.TraceID, spans []trace.Span, dropped int) ([]byte, []trace.Span, int) {
	limit := int(s.o.Bus.Conn().MaxPayload()) - 1024
	if len(spans) > trace.MaxStoredSpans {
		dropped += len(spans) - trace.MaxStoredSpans
		spans = spans[:trace.MaxStoredSpans]
	}
	for {
		data, _ := trace.Encode(id, spans, dropped) // plain data: cannot fail
		if len(data) <= limit || len(spans) == 0 {
			return data, spans, dropped
		}
		keep := len(spans) * limit / len(data) * 9 / 10
		dropped += len(spans) - keep
		spans = spans[:keep]
	}
}

// stored counts a stored trace and feeds the analysis with its first part
// (a late part is not counted again).
func (s *Service) stored(f *trace.Finished, spans []trace.Span, merged bool) {
	s.m.stored.Inc()
	if f.Evicted {
		s.m.evicted.Inc()
	}
	if merged {
		return
	}
	tree := trace.Build(f.ID, spans)
	s.analyzer.Observe(tree)
	s.m.observe(tree)
}

// load reads the stored trace id and its stream sequence;
// [trace.ErrNotFound] when there is none.
func (s *Service) load(ctx context.Context, id events.TraceID) ([]trace.Span, int, uint64, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	msg, err := st.GetLastMsgForSubject(ctx, SubjectPrefix+id.String())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, 0, trace.ErrNotFound
	}
	if err != nil {
		return nil, 0, 0, err
	}
	_, spans, dropped, err := trace.Decode(msg.Data)
	return spans, dropped, msg.Sequence, err
}

// stream returns the TRACES stream's handle, looked up once.
func (s *Service) stream(ctx context.Context) (jetstream.Stream, error) {
	if st, ok := s.streamH.Load().(jetstream.Stream); ok {
		return st, nil
	}
	st, err := s.js.Stream(ctx, Stream)
	if err != nil {
		return nil, err
	}
	s.streamH.Store(st)
	return st, nil
}

// Get returns the stored trace id, assembled; [trace.ErrNotFound] when
// there is none (yet: a trace is stored once it has been quiet for the
// horizon).
func (s *Service) Get(ctx context.Context, id events.TraceID) (*trace.Tree, error) {
	spans, dropped, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	t := trace.Build(id, spans)
	t.Dropped = dropped
	return t, nil
}
