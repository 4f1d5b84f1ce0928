// Package aggregator is the aggregator daemon's embeddable runtime: a
// durable JetStream consumer on the performance events driving an
// [aggregate.Aggregator], publishing one performance.metric.aggregated event
// per series per window.
//
// Exactly-once effect: an input message is acknowledged only after every
// window it contributed to has been published and acknowledged by the
// server. A crash therefore loses nothing — the next run gets every
// unacknowledged message again and recomputes the open windows — and can
// double nothing: a window recomputed from a partial redelivery has the id
// of the window already published, and the server's deduplication drops it.
// Undecodable or invalid events are counted by reason and dead-lettered.
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"maps"
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

// Config configures a [Service].
type Config struct {
	// Bus is the connected JetStream bus; the service does not close it.
	Bus *jsbus.Bus
	// Name is the durable consumer's name (default "aggregator").
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
	return c
}

// Stats counts what the service did.
type Stats struct {
	Messages, Events, Late, NotAggregated, Emitted, Redelivered uint64
	BadInput                                                    map[string]uint64
	OpenWindows, Series, Pending                                int
}

// Service is a running aggregator. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	log zerolog.Logger
	m   *metrics

	mu       sync.Mutex
	agg      *aggregate.Aggregator
	stats    Stats
	recent   []*events.AggregateEvent
	ready    bool
	pending  []pendingMsg
	inFlight map[uint64]bool // stream sequences held unacknowledged
}

type pendingMsg struct {
	msg      jetstream.Msg
	seq      uint64
	maxStart time.Time // latest window start it contributed to
}

// New checks cfg and returns a service that Run starts.
func New(cfg Config) (*Service, error) {
	if cfg.Bus == nil {
		return nil, errors.New("aggregator: Config.Bus is required")
	}
	cfg = cfg.withDefaults()
	s := &Service{
		cfg: cfg, log: zerolog.Nop(), m: newMetrics(),
		agg:      aggregate.New(aggregate.Options{Window: cfg.Window, Lateness: cfg.Lateness, MaxSeriesPerSource: cfg.MaxSeriesPerSource}),
		inFlight: map[uint64]bool{}, stats: Stats{BadInput: map[string]uint64{}},
	}
	if cfg.Logger != nil {
		s.log = cfg.Logger.With().Str("component", "aggregator").Logger()
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

// consumer finds or creates the durable consumer. A consumer found with
// messages delivered but not acknowledged — held by a previous run that
// crashed — is rewound to its ack floor, so that those messages come back at
// once and in order, before any window they belong to can close. (Without
// the rewind they would return only after AckWait, behind newer messages,
// and count as late.) Messages acked above the floor come back too; their
// windows were published, and a recomputation is dropped by dedup.
func (s *Service) consumer(ctx context.Context) (jetstream.Consumer, error) {
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
			Durable:        s.cfg.Name,
			Description:    "jetmon aggregator",
			FilterSubjects: InputSubjects,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        max(5*time.Minute, 4*(s.cfg.Window+s.cfg.Lateness)),
			MaxAckPending:  s.cfg.MaxPending,
			MaxDeliver:     -1,
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    start,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("aggregator: consumer %s on %s: %w", s.cfg.Name, streams.Performance, err)
	}
	return cons, nil
}

// Run consumes until ctx ends. Open windows are not flushed at shutdown:
// their messages are unacknowledged and the next run recomputes them.
func (s *Service) Run(ctx context.Context) error {
	cons, err := s.consumer(ctx)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	s.setReady(true)
	defer s.setReady(false)
	s.log.Info().Str("consumer", s.cfg.Name).Dur("window", s.cfg.Window).Dur("lateness", s.cfg.Lateness).Msg("aggregating")
	lastInput, lastLag := time.Now(), time.Time{}
	for {
		msg, err := it.Next(jetstream.NextMaxWait(250 * time.Millisecond))
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
			if time.Since(lastInput) >= s.cfg.IdleAfter {
				s.mu.Lock()
				closed := s.agg.Advance(time.Now())
				s.mu.Unlock()
				if err := s.emit(ctx, closed); err != nil {
					s.log.Warn().Err(err).Msg("emitting windows failed; will retry")
				}
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn().Err(err).Msg("consume error")
			time.Sleep(100 * time.Millisecond)
			continue
		}
		lastInput = time.Now()
		if time.Since(lastLag) > 5*time.Second {
			lastLag = time.Now()
			if info, err := cons.Info(ctx); err == nil {
				s.m.lag.Set(float64(info.NumPending))
			}
		}
		s.handle(msg)
		s.mu.Lock()
		closed := s.agg.Closed()
		s.mu.Unlock()
		if len(closed) > 0 {
			if err := s.emit(ctx, closed); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("emitting windows failed; will retry")
			}
		}
	}
}

// handle aggregates one message (an event or a batch).
func (s *Service) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	s.mu.Lock()
	s.stats.Messages++
	if s.inFlight[md.Sequence.Stream] { // redelivered while we hold it: already counted
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
		out := s.agg.Add(it.Event)
		s.stats.Events++
		switch out {
		case aggregate.Added:
			added = true
			if series, v, _, ok := aggregate.SeriesOf(it.Event); ok {
				s.m.perSeries.WithLabelValues(string(series.Type), series.Source, s.agg.SeriesName(series)).Inc()
				if series.Type != events.MetricRecorded {
					s.m.durations.Observe(v)
				}
			}
			if start := it.Event.Metadata().Timestamp.Truncate(s.cfg.Window); start.After(maxStart) {
				maxStart = start
			}
			s.m.events.WithLabelValues("added").Inc()
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
	s.pending = append(s.pending, pendingMsg{msg: msg, seq: md.Sequence.Stream, maxStart: maxStart})
	s.inFlight[md.Sequence.Stream] = true
	s.m.pending.Set(float64(len(s.pending)))
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
func (s *Service) emit(ctx context.Context, closed []*events.AggregateEvent) error {
	bus := s.cfg.Bus
	// The windows have left the aggregator: publish them until the server
	// has them (or the service stops, and the next run recomputes them).
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
	cutoff := s.agg.Watermark().Add(-s.cfg.Lateness - s.cfg.Window)
	keep := s.pending[:0]
	for _, p := range s.pending {
		if !p.maxStart.After(cutoff) {
			_ = p.msg.Ack()
			delete(s.inFlight, p.seq)
			continue
		}
		keep = append(keep, p)
	}
	clear(s.pending[len(keep):])
	s.pending = keep
	st := s.agg.Stats()
	s.m.pending.Set(float64(len(s.pending)))
	s.m.open.Set(float64(st.OpenWindows))
	s.m.series.Set(float64(st.Series))
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

// Stats returns the counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.BadInput = maps.Clone(s.stats.BadInput)
	as := s.agg.Stats()
	st.OpenWindows, st.Series, st.Pending = as.OpenWindows, as.Series, len(s.pending)
	return st
}

// Recent returns the latest emitted windows, oldest first.
func (s *Service) Recent() []*events.AggregateEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*events.AggregateEvent(nil), s.recent...)
}
