// Package aggregator is the aggregator daemon's embeddable runtime: durable
// JetStream consumers on the performance events driving
// [aggregate.Aggregator]s, publishing one performance.metric.aggregated event
// per series per window.
//
// Exactly-once effect: an input message is acknowledged only after every
// window it contributed to has been published and acknowledged by the
// server. A crash therefore loses nothing — the unacknowledged messages come
// back and the open windows are recomputed — and can double nothing: a window
// recomputed from a partial redelivery has the id of the window already
// published, and the server's deduplication drops it. Undecodable or invalid
// events are counted by reason and dead-lettered.
//
// Scale-out (Config.Partitions > 0): the events to aggregate are sourced into
// the work-queue stream AGGREGATE_INPUT with a subject transform whose first
// token is partition(n, source), so every series lands in exactly one
// partition. Each partition has one durable consumer in the pinned priority
// group "aggregators": the server delivers a partition to one instance at a
// time. Instances announce themselves in the key-value bucket
// jetmon_aggregators and split the partitions by rendezvous hashing; an
// instance that leaves (or dies: its key expires) has its partitions taken
// over by the others. A partition handed over gracefully has its held
// messages negatively acknowledged so the next owner gets them at once; after
// a crash the new owner holds its windows open until the dead owner's
// messages have come back (AckWait).
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/aggregate"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

// InputSubjects are the performance events that are aggregated; the
// aggregates themselves (performance.metric.aggregated) are not among them.
var InputSubjects = []string{"performance.operation.*.*", "performance.phase.end.*", "performance.metric.recorded.*"}

// Names used in partitioned mode.
const (
	InputStream   = "AGGREGATE_INPUT"
	MembersBucket = "jetmon_aggregators"
	PriorityGroup = "aggregators"
)

// Config configures a [Service].
type Config struct {
	// Bus is the connected JetStream bus; the service does not close it.
	Bus *jsbus.Bus
	// Name is the durable consumer's name, or the prefix of the partition
	// consumers' names (default "aggregator").
	Name string
	// Window, Lateness and MaxSeriesPerSource configure the windows (see
	// aggregate.Options).
	Window, Lateness   time.Duration
	MaxSeriesPerSource int
	// FromBeginning makes a new consumer start at the oldest stored event
	// instead of the next one.
	FromBeginning bool
	// IdleAfter: with no input for this long, the watermark moves to the
	// wall clock so that windows close (default the lateness, at least 1 s).
	IdleAfter time.Duration
	// MaxPending bounds the input messages held unacknowledged while their
	// windows are open (default 200,000).
	MaxPending int
	// Recent is how many emitted windows the JSON API keeps (default 1000).
	Recent int

	// Partitions > 0 turns on scale-out over that many partitions (fixed
	// when the input stream is first created).
	Partitions int
	// Instance names this instance among its peers (default host-pid).
	Instance string
	// MemberTTL is how long an instance that stopped announcing itself still
	// counts as alive (default 6 s); PinnedTTL how long the server keeps a
	// silent instance pinned to a partition (default 10 s); AckWait how long
	// before a dead owner's held messages are redelivered (default 30 s).
	MemberTTL, PinnedTTL, AckWait time.Duration

	// Logger receives the service's logs; nil discards them.
	Logger *zerolog.Logger
	// Registerer, when set, registers the Prometheus metrics.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "aggregator"
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.Lateness <= 0 {
		c.Lateness = 5 * time.Second
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = max(c.Lateness, time.Second)
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 200_000
	}
	if c.Recent <= 0 {
		c.Recent = 1000
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.MemberTTL <= 0 {
		c.MemberTTL = 6 * time.Second
	}
	if c.PinnedTTL <= 0 {
		c.PinnedTTL = 10 * time.Second
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	return c
}

// Stats counts what the service did.
type Stats struct {
	Messages, Events, Late, NotAggregated, Emitted, Redelivered uint64
	BadInput                                                    map[string]uint64
	OpenWindows, Series, Pending                                int
	// Partitions lists the partitions this instance owns (partitioned mode).
	Partitions []int
}

// Service is a running aggregator. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	log zerolog.Logger
	m   *metrics

	mu     sync.Mutex
	stats  Stats
	recent []*events.AggregateEvent
	ready  bool
	parts  map[int]*partition // running partitions (-1: unpartitioned)
}

// New checks cfg and returns a service that Run starts.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil {
		return nil, errors.New("aggregator: Config.Bus is required")
	}
	if cfg.Partitions < 0 || cfg.Partitions > 1024 {
		return nil, fmt.Errorf("aggregator: Partitions %d: must be between 0 and 1024", cfg.Partitions)
	}
	cfg = cfg.withDefaults()
	if _, err := events.NewSubscribeConfig(events.Durable(cfg.Name)); err != nil {
		return nil, fmt.Errorf("aggregator: Name: %w", err)
	}
	s := &Service{cfg: cfg, log: zerolog.Nop(), m: newMetrics(), stats: Stats{BadInput: map[string]uint64{}}, parts: map[int]*partition{}}
	if cfg.Logger != nil {
		s.log = cfg.Logger.With().Str("component", "aggregator").Str("instance", cfg.Instance).Logger()
	}
	if cfg.Registerer != nil {
		for _, c := range s.m.collectors() {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("aggregator: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Run consumes until ctx ends. At shutdown, held messages of partitions are
// negatively acknowledged so that a peer takes them at once; open windows
// are never flushed incomplete.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Partitions == 0 {
		cons, err := s.unpartitionedConsumer(ctx)
		if err != nil {
			return err
		}
		p := s.newPartition(-1, cons, 0)
		s.setReady(true)
		defer s.setReady(false)
		return p.run(ctx)
	}
	return s.runPartitioned(ctx)
}

// unpartitionedConsumer finds or creates the durable consumer on the
// PERFORMANCE stream. A consumer found with messages delivered but not
// acknowledged — held by a previous run that crashed — is rewound to its ack
// floor, so that those messages come back at once and in order, before any
// window they belong to can close. Messages acked above the floor come back
// too; their windows were published, and a recomputation is dropped by dedup.
func (s *Service) unpartitionedConsumer(ctx context.Context) (jetstream.Consumer, error) {
	js := s.cfg.Bus.JetStream()
	cons, err := js.Consumer(ctx, streams.Performance, s.cfg.Name)
	switch {
	case err == nil:
		info := cons.CachedInfo()
		if info.NumAckPending == 0 {
			return cons, nil
		}
		start := info.AckFloor.Stream + 1
		if info.AckFloor.Stream == 0 {
			start = max(info.Config.OptStartSeq, 1)
		}
		cfg := info.Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, start, nil
		if err := js.DeleteConsumer(ctx, streams.Performance, s.cfg.Name); err != nil {
			return nil, fmt.Errorf("aggregator: rewind consumer %s: %w", s.cfg.Name, err)
		}
		s.log.Info().Uint64("from_seq", start).Int("unacked", info.NumAckPending).Msg("rewound the consumer to its ack floor")
		cons, err = js.CreateConsumer(ctx, streams.Performance, cfg)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		// Start after the last stored message (or at the first), recorded as
		// a sequence so that a rewind knows where the consumer began.
		stream, serr := js.Stream(ctx, streams.Performance)
		if serr != nil {
			return nil, fmt.Errorf("aggregator: stream %s: %w", streams.Performance, serr)
		}
		start := stream.CachedInfo().State.LastSeq + 1
		if s.cfg.FromBeginning {
			start = 1
		}
		cons, err = js.CreateConsumer(ctx, streams.Performance, jetstream.ConsumerConfig{
			Durable: s.cfg.Name, Description: "jetmon aggregator", FilterSubjects: InputSubjects,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: max(5*time.Minute, 4*(s.cfg.Window+s.cfg.Lateness)),
			MaxAckPending: s.cfg.MaxPending, MaxDeliver: -1,
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("aggregator: consumer %s on %s: %w", s.cfg.Name, streams.Performance, err)
	}
	return cons, nil
}

// ensureInput creates the partitioned input stream if it is missing, and
// checks the partition count of an existing one.
func (s *Service) ensureInput(ctx context.Context) error {
	js := s.cfg.Bus.JetStream()
	n := s.cfg.Partitions
	want := jetstream.StreamConfig{
		Name: InputStream, Description: fmt.Sprintf("performance events to aggregate, in %d partitions by source", n),
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour,
		Replicas: max(s.cfg.Bus.StreamReplicas(), 1),
		Sources: []*jetstream.StreamSource{{
			Name:         streams.Performance,
			OptStartTime: new(time.Now()),
			SubjectTransforms: []jetstream.SubjectTransformConfig{
				{Source: "performance.operation.*.*", Destination: fmt.Sprintf("{{partition(%d,2)}}.performance.operation.{{wildcard(1)}}.{{wildcard(2)}}", n)},
				{Source: "performance.phase.end.*", Destination: fmt.Sprintf("{{partition(%d,1)}}.performance.phase.end.{{wildcard(1)}}", n)},
				{Source: "performance.metric.recorded.*", Destination: fmt.Sprintf("{{partition(%d,1)}}.performance.metric.recorded.{{wildcard(1)}}", n)},
			},
		}},
	}
	st, err := js.Stream(ctx, InputStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = js.CreateStream(ctx, want); err == nil {
			return nil
		}
		// A peer may have created it meanwhile (with its own start time).
		if st, err = js.Stream(ctx, InputStream); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if have := st.CachedInfo().Config.Description; have != want.Description {
		return fmt.Errorf("aggregator: stream %s exists with another partitioning (%q); delete it to change Partitions", InputStream, have)
	}
	return nil
}

// partitionConsumer finds or creates the durable consumer of partition p.
func (s *Service) partitionConsumer(ctx context.Context, p int) (jetstream.Consumer, error) {
	js := s.cfg.Bus.JetStream()
	cons, err := js.CreateOrUpdateConsumer(ctx, InputStream, jetstream.ConsumerConfig{
		Durable: fmt.Sprintf("%s-p%d", s.cfg.Name, p), Description: "jetmon aggregator partition " + strconv.Itoa(p),
		FilterSubject: strconv.Itoa(p) + ".>", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: s.cfg.AckWait, MaxAckPending: s.cfg.MaxPending, MaxDeliver: -1,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned, PinnedTTL: s.cfg.PinnedTTL, PriorityGroups: []string{PriorityGroup},
	})
	if err != nil {
		return nil, fmt.Errorf("aggregator: partition %d consumer: %w", p, err)
	}
	return cons, nil
}

// runPartitioned announces this instance, and starts and stops partition
// runners as the membership changes, until ctx ends.
func (s *Service) runPartitioned(ctx context.Context) error {
	if err := s.ensureInput(ctx); err != nil {
		return fmt.Errorf("aggregator: input stream: %w", err)
	}
	kv, err := s.cfg.Bus.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: MembersBucket, TTL: s.cfg.MemberTTL, Storage: jetstream.MemoryStorage, Replicas: max(s.cfg.Bus.StreamReplicas(), 1),
	})
	if err != nil {
		return fmt.Errorf("aggregator: members bucket: %w", err)
	}
	type runner struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	running := map[int]runner{}
	stopRunner := func(p int) {
		r := running[p]
		r.cancel()
		<-r.done
		delete(running, p)
		s.mu.Lock()
		delete(s.parts, p)
		s.mu.Unlock()
	}
	defer func() {
		for p := range running {
			stopRunner(p)
		}
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = kv.Delete(dctx, s.cfg.Instance)
		cancel()
		s.setReady(false)
	}()
	tick := time.NewTicker(max(s.cfg.MemberTTL/3, 100*time.Millisecond))
	defer tick.Stop()
	for {
		if _, err := kv.Put(ctx, s.cfg.Instance, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("announcing this instance failed")
		}
		members, err := kv.Keys(ctx)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			members, err = []string{s.cfg.Instance}, nil
		}
		if err == nil {
			owned := Assign(s.cfg.Partitions, members, s.cfg.Instance)
			for p := range running {
				if !owned[p] {
					s.log.Info().Int("partition", p).Msg("handing the partition over")
					stopRunner(p)
				}
			}
			for p := range owned {
				if _, ok := running[p]; ok {
					continue
				}
				cons, err := s.partitionConsumer(ctx, p)
				if err != nil {
					s.log.Warn().Err(err).Int("partition", p).Msg("cannot take the partition; retrying")
					continue
				}
				// Keep windows open a while after taking a partition: a
				// previous owner's handed-back messages arrive once the pin
				// moves (PinnedTTL), mixed with new ones; one that vanished
				// holding messages gets them redelivered within AckWait.
				// The hold counts from the first message: the pin of a
				// vanished owner may take longer than its membership to go.
				holdFor := s.cfg.PinnedTTL + 2*time.Second
				if info, err := cons.Info(ctx); err == nil && info.NumAckPending > 0 {
					holdFor = s.cfg.AckWait + 2*time.Second
				}
				pctx, cancel := context.WithCancel(ctx)
				r := runner{cancel: cancel, done: make(chan struct{})}
				part := s.newPartition(p, cons, holdFor)
				go func() {
					defer close(r.done)
					if err := part.run(pctx); err != nil {
						s.log.Warn().Err(err).Int("partition", p).Msg("partition stopped")
					}
				}()
				running[p] = r
				s.log.Info().Int("partition", p).Dur("hold", holdFor).Msg("took the partition")
			}
			s.setReady(true)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Assign returns the partitions that instance owns among members, by
// rendezvous hashing: every instance computes the same split, and a change of
// membership moves only the partitions of the instance that came or went.
func Assign(partitions int, members []string, instance string) map[int]bool {
	owned := map[int]bool{}
	for p := range partitions {
		best, bestScore := "", uint64(0)
		for _, m := range members {
			h := fnv.New64a()
			_, _ = h.Write([]byte(m))
			// FNV alone keeps the order of similar names across partitions;
			// the splitmix64 finaliser makes every (member, partition) pair
			// an independent draw.
			x := h.Sum64() ^ (uint64(p)+1)*0x9e3779b97f4a7c15
			x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
			x = (x ^ x>>27) * 0x94d049bb133111eb
			if score := x ^ x>>31; best == "" || score > bestScore || (score == bestScore && m < best) {
				best, bestScore = m, score
			}
		}
		if best == instance {
			owned[p] = true
		}
	}
	return owned
}

// partition consumes one consumer into one aggregator.
type partition struct {
	s        *Service
	id       int
	cons     jetstream.Consumer
	agg      *aggregate.Aggregator
	holdFor  time.Duration // from the first message on, no window closes for this long
	hold     time.Time     // the end of the hold, set by the first message
	pending  []pendingMsg
	inFlight map[uint64]bool // stream sequences held unacknowledged
}

type pendingMsg struct {
	msg      jetstream.Msg
	seq      uint64
	maxStart time.Time // latest window start it contributed to
}

func (s *Service) newPartition(id int, cons jetstream.Consumer, holdFor time.Duration) *partition {
	p := &partition{
		s: s, id: id, cons: cons, holdFor: holdFor, inFlight: map[uint64]bool{},
		agg: aggregate.New(aggregate.Options{Window: s.cfg.Window, Lateness: s.cfg.Lateness, MaxSeriesPerSource: s.cfg.MaxSeriesPerSource}),
	}
	s.mu.Lock()
	s.parts[id] = p
	s.mu.Unlock()
	return p
}

// holding reports whether windows must stay open at now: a taken-over
// partition holds them until holdFor after its first message.
func (p *partition) holding(now time.Time) bool {
	return p.holdFor > 0 && (p.hold.IsZero() || now.Before(p.hold))
}

// run consumes until ctx ends; then it hands back what it holds.
func (p *partition) run(ctx context.Context) error {
	s := p.s
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(512)}
	if p.id >= 0 {
		opts = append(opts, jetstream.PullPriorityGroup(PriorityGroup))
	}
	it, err := p.cons.Messages(opts...)
	if err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer p.release()
	s.log.Info().Int("partition", p.id).Dur("window", s.cfg.Window).Dur("lateness", s.cfg.Lateness).Msg("aggregating")
	started := time.Now()
	lastInput, lastLag, lastKeep := started, time.Time{}, started
	for {
		msg, err := it.Next(jetstream.NextMaxWait(250 * time.Millisecond))
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
			// Idle with windows open: move the watermark to the wall clock so
			// that they close. With nothing open the watermark stays, so
			// history arriving later is aggregated, not counted late.
			if time.Since(lastInput) >= s.cfg.IdleAfter && !p.holding(time.Now()) {
				s.mu.Lock()
				var closed []*events.AggregateEvent
				if p.agg.Stats().OpenWindows > 0 {
					closed = p.agg.Advance(time.Now())
				}
				s.mu.Unlock()
				if err := p.emit(ctx, closed); err != nil && ctx.Err() == nil {
					s.log.Warn().Err(err).Msg("emitting windows failed")
				}
			}
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn().Err(err).Int("partition", p.id).Msg("consume error")
			time.Sleep(100 * time.Millisecond)
			continue
		default:
			lastInput = time.Now()
			if p.holdFor > 0 && p.hold.IsZero() {
				p.hold = lastInput.Add(p.holdFor)
				s.log.Info().Int("partition", p.id).Dur("after", time.Since(started)).Msg("first message of the partition; holding windows open")
			}
			if time.Since(lastLag) > 5*time.Second {
				lastLag = time.Now()
				if info, err := p.cons.Info(ctx); err == nil {
					s.m.lag.Set(float64(info.NumPending))
				}
			}
			p.handle(msg)
			if !p.holding(time.Now()) {
				s.mu.Lock()
				closed := p.agg.Closed()
				s.mu.Unlock()
				if len(closed) > 0 {
					if err := p.emit(ctx, closed); err != nil && ctx.Err() == nil {
						s.log.Warn().Err(err).Msg("emitting windows failed")
					}
				}
			}
		}
		if p.id >= 0 && time.Since(lastKeep) > s.cfg.AckWait/3 {
			lastKeep = time.Now()
			p.keepAlive()
		}
	}
}

// keepAlive tells the server the held messages are still being worked on,
// so they are not redelivered while their windows are open.
func (p *partition) keepAlive() {
	p.s.mu.Lock()
	held := append([]pendingMsg(nil), p.pending...)
	p.s.mu.Unlock()
	for _, m := range held {
		_ = m.msg.InProgress()
	}
}

// release hands held messages back (negative acknowledgement) so that the
// next owner of the partition gets them at once. Unpartitioned, the consumer
// is rewound at the next start instead.
func (p *partition) release() {
	s := p.s
	s.mu.Lock()
	held := p.pending
	p.pending, p.inFlight = nil, map[uint64]bool{}
	s.mu.Unlock()
	if p.id < 0 {
		return
	}
	for _, m := range held {
		_ = m.msg.Nak()
	}
}

// handle aggregates one message (an event or a batch).
func (p *partition) handle(msg jetstream.Msg) {
	s := p.s
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	s.mu.Lock()
	s.stats.Messages++
	if p.inFlight[md.Sequence.Stream] { // redelivered while we hold it: already counted
		s.stats.Redelivered++
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	var maxStart time.Time
	added := false
	dec := events.Decoder{MaxPayload: -1}
	each := func(it events.BatchItem) {
		if it.Err != nil {
			s.bad(msg, md, it.Raw, it.Index, it.Err)
			return
		}
		s.mu.Lock()
		out := p.agg.Add(it.Event)
		s.stats.Events++
		switch out {
		case aggregate.Added:
			added = true
			if start := it.Event.Metadata().Timestamp.Truncate(s.cfg.Window); start.After(maxStart) {
				maxStart = start
			}
			s.m.events.WithLabelValues("added").Inc()
			if series, v, _, ok := aggregate.SeriesOf(it.Event); ok {
				s.m.perSeries.WithLabelValues(string(series.Type), series.Source, p.agg.SeriesName(series)).Inc()
				if series.Type != events.MetricRecorded {
					s.m.durations.Observe(v / 1000) // ms on the wire, seconds in Prometheus
				}
			}
		case aggregate.Late:
			s.stats.Late++
			s.m.events.WithLabelValues("late").Inc()
		default:
			s.stats.NotAggregated++
			s.m.events.WithLabelValues("not_aggregated").Inc()
		}
		s.mu.Unlock()
	}
	if err := dec.EachInBatch(msg.Data(), each); err != nil {
		s.bad(msg, md, msg.Data(), -1, err)
	}
	if !added {
		_ = msg.Ack() // nothing waits on a window
		return
	}
	s.mu.Lock()
	p.pending = append(p.pending, pendingMsg{msg: msg, seq: md.Sequence.Stream, maxStart: maxStart})
	p.inFlight[md.Sequence.Stream] = true
	s.mu.Unlock()
}

// bad counts and dead-letters an event that cannot be aggregated.
func (s *Service) bad(msg jetstream.Msg, md *jetstream.MsgMetadata, raw []byte, idx int, err error) {
	reason := "undecodable"
	var ve *events.ValidationError
	switch {
	case errors.As(err, &ve) && strings.HasPrefix(ve.Reason, "unknown event type"):
		reason = "unknown_type"
	case errors.As(err, &ve):
		reason = "invalid_" + ve.Field
	}
	s.mu.Lock()
	s.stats.BadInput[reason]++
	s.mu.Unlock()
	s.m.bad.WithLabelValues(reason).Inc()
	if dlErr := s.cfg.Bus.DeadLetter(msg, md, raw, idx, err.Error()); dlErr != nil {
		s.log.Error().Err(dlErr).Msg("dead-lettering bad input failed")
	}
}

// emit publishes closed windows, waits for the server to store them, then
// acknowledges the input messages whose windows are all published.
func (p *partition) emit(ctx context.Context, closed []*events.AggregateEvent) error {
	s := p.s
	bus := s.cfg.Bus
	// The windows have left the aggregator: publish them until the server
	// has them (or the service stops, and they are recomputed).
	for wait := 100 * time.Millisecond; len(closed) > 0; wait = min(2*wait, 5*time.Second) {
		err := func() error {
			for _, w := range closed {
				if err := bus.Publish(ctx, w); err != nil {
					return err
				}
			}
			return bus.Flush(ctx)
		}()
		if err == nil {
			break
		}
		s.log.Warn().Err(err).Int("windows", len(closed)).Msg("publishing windows failed; retrying")
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Emitted += uint64(len(closed))
	s.m.emitted.Add(float64(len(closed)))
	s.recent = append(s.recent, closed...)
	if over := len(s.recent) - s.cfg.Recent; over > 0 {
		s.recent = append(s.recent[:0], s.recent[over:]...)
	}
	// Windows starting at or before the cutoff are closed; so are the
	// messages whose latest window starts there.
	cutoff := p.agg.Watermark().Add(-s.cfg.Lateness - s.cfg.Window)
	keep := p.pending[:0]
	for _, m := range p.pending {
		if !m.maxStart.After(cutoff) {
			_ = m.msg.Ack()
			delete(p.inFlight, m.seq)
			continue
		}
		keep = append(keep, m)
	}
	clear(p.pending[len(keep):])
	p.pending = keep
	return nil
}

func (s *Service) setReady(r bool) {
	s.mu.Lock()
	s.ready = r
	s.mu.Unlock()
}

// Ready reports whether the service is consuming.
func (s *Service) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// Stats returns the counters, summed over the partitions this instance runs.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.BadInput = maps.Clone(s.stats.BadInput)
	st.Partitions = []int{}
	for id, p := range s.parts {
		as := p.agg.Stats()
		st.OpenWindows += as.OpenWindows
		st.Series += as.Series
		st.Pending += len(p.pending)
		if id >= 0 {
			st.Partitions = append(st.Partitions, id)
		}
	}
	slices.Sort(st.Partitions)
	s.m.open.Set(float64(st.OpenWindows))
	s.m.series.Set(float64(st.Series))
	s.m.pending.Set(float64(st.Pending))
	return st
}

// Recent returns the latest emitted windows, oldest first.
func (s *Service) Recent() []*events.AggregateEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*events.AggregateEvent(nil), s.recent...)
}
