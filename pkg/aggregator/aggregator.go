// Package aggregator is the aggregator daemon's embeddable runtime: durable
// JetStream consumers on the performance events driving
// [windowing.Aggregator]s, publishing one performance.metric.aggregated event
// per series per window.
//
// Exactly-once effect: an input message is acknowledged only after every
// window it contributed to has been published and acknowledged by the
// server (or, for a window the server can never take, dead-lettered). A
// crash therefore loses nothing — the unacknowledged messages come back and
// the open windows are recomputed — and can double nothing: a window
// recomputed from a partial redelivery has the id of the window already
// published, and the server's deduplication drops it. A message that comes
// back after its window was published at this instance (a delivery lost in
// flight, a redelivery after AckWait) is not dropped as late: its events go
// out in an amendment window ([events.AggregateEvent.Amendment]) whose id
// adds the message's stream sequence ([events.WindowID]), which readers add
// to the first. An event sent again with the same id (in another message)
// within DedupWindow is counted once.
//
// No input stops the pipeline. Undecodable or invalid events, values that
// are not finite or out of range, and timestamps more than MaxFutureSkew
// ahead of the clock are counted by reason and dead-lettered. Event time is
// kept per source, so one source's clock cannot make another's events late.
// A window the server refuses for good (invalid, or too large) is
// dead-lettered on deadletter.performance.metric.aggregated.<source> with
// its reason and its inputs are acknowledged; transient failures are retried
// with backoff. Series are bounded per source (MaxSeriesPerSource) and per
// instance (MaxSeries), idle ones are forgotten after SeriesTTL. [Service.Ready]
// turns false while a consumer is lost or makes no progress for StallAfter;
// a deleted stream or consumer is re-created and consumption resumes.
//
// Scale-out (Options.Partitions > 0): the events to aggregate are sourced into
// the work-queue stream AGGREGATE_INPUT with a subject transform whose first
// token is partition(n, source), so every series lands in exactly one
// partition. Each partition has one durable consumer in the pinned priority
// group "aggregators": the server delivers a partition to one instance at a
// time. Instances announce themselves in the key-value bucket
// jetmon_aggregators and split the partitions by rendezvous hashing; an
// instance that leaves (or dies: its key expires) has its partitions taken
// over by the others. Membership says who should own a partition; a lease
// in the bucket [OwnersBucket] says who does: an instance runs a partition
// only under its lease and emits nothing once it cannot be sure it still
// holds it, so two instances never compute one partition's windows at once.
// A partition let go gracefully is handed off (see [Service.Run]) before its
// lease is released; after a crash the lease expires and the new owner holds
// its windows open until the dead owner's messages have come back (AckWait).
package aggregator

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/windowing"
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

// Options configures a [Service]. Zero values mean the defaults; negative
// ones are refused by [New] (Lateness aside, where negative means none).
type Options struct {
	// Bus is the connected JetStream bus; the service does not close it.
	Bus *jsbus.Bus
	// Name is the durable consumer's name, or the prefix of the partition
	// consumers' names (default "aggregator").
	Name string
	// Window, Lateness and MaxSeriesPerSource configure the windows (see
	// windowing.Options).
	Window, Lateness   time.Duration
	MaxSeriesPerSource int
	// MaxSeries bounds the series of this instance, over all the partitions
	// it runs (default 10,000); further series go to the overflow series of
	// source "__overflow__" ("__overflow__-p<N>" for partition N).
	MaxSeries int
	// SeriesTTL: series without an open window and without events for this
	// long are forgotten, with their per-series metrics (default 5 min).
	SeriesTTL time.Duration
	// MaxFutureSkew: events more than this ahead of the clock are
	// dead-lettered (reason invalid_timestamp) instead of moving their
	// source's event time (default 5 min).
	MaxFutureSkew time.Duration
	// DedupWindow is how long an event's (source, id) is remembered so that
	// the event sent again counts once (default 2 min; negative: off);
	// MaxDedupIDs bounds the ids each partition remembers (default 200,000,
	// about 40 bytes each).
	DedupWindow time.Duration
	MaxDedupIDs int
	// FromBeginning makes a new consumer start at the oldest stored event
	// instead of the next one.
	FromBeginning bool
	// IdleAfter: a source without events for this long, once the consumer
	// has caught up, has its watermark moved to the wall clock so that its
	// windows close (default the lateness, at least 1 s).
	IdleAfter time.Duration
	// StallAfter: a consumer that holds or has messages waiting but has
	// neither received nor published nor acknowledged anything for this long
	// makes Ready false (default 2 × (Window + Lateness + IdleAfter), at
	// least 1 min).
	StallAfter time.Duration
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
	// counts as alive (default 15 s: longer than a NATS server's restart or
	// a leader election, during which announcements fail — a live instance
	// taken for dead has its partitions moved under it); PinnedTTL how long the server keeps a
	// silent instance pinned to a partition (default 10 s); AckWait how long
	// before a dead owner's held messages are redelivered (default 30 s).
	MemberTTL, PinnedTTL, AckWait time.Duration

	// Logger receives the service's logs; nil discards them.
	Logger *zerolog.Logger
	// Registerer, when set, registers the Prometheus metrics.
	Registerer prometheus.Registerer
}

// DefaultOptions returns the options with the defaults filled in
// (Bus, Instance, Logger and Registerer aside).
func DefaultOptions() Options {
	c := Options{}.withDefaults()
	c.Instance = ""
	return c
}

// Validate reports the first field out of range, naming it; zero values are
// fine (they mean the defaults). It does not look at Bus.
func (c Options) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Window", int64(c.Window)},
		{"MaxSeriesPerSource", int64(c.MaxSeriesPerSource)},
		{"MaxSeries", int64(c.MaxSeries)},
		{"SeriesTTL", int64(c.SeriesTTL)},
		{"MaxFutureSkew", int64(c.MaxFutureSkew)},
		{"MaxDedupIDs", int64(c.MaxDedupIDs)},
		{"IdleAfter", int64(c.IdleAfter)},
		{"StallAfter", int64(c.StallAfter)},
		{"MaxPending", int64(c.MaxPending)},
		{"Recent", int64(c.Recent)},
		{"MemberTTL", int64(c.MemberTTL)},
		{"PinnedTTL", int64(c.PinnedTTL)},
		{"AckWait", int64(c.AckWait)},
	} {
		if f.v < 0 {
			return fmt.Errorf("aggregator: Options.%s: must not be negative", f.name)
		}
	}
	if c.Partitions < 0 || c.Partitions > 1024 {
		return fmt.Errorf("aggregator: Options.Partitions %d: must be between 0 and 1024", c.Partitions)
	}
	if err := c.aggOptions("").Validate(); err != nil {
		return fmt.Errorf("aggregator: Options: %w", err)
	}
	return nil
}

func (c Options) withDefaults() Options {
	d := windowing.DefaultOptions()
	if c.Name == "" {
		c.Name = "aggregator"
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.Lateness <= 0 {
		c.Lateness = d.Lateness
	}
	if c.MaxSeriesPerSource <= 0 {
		c.MaxSeriesPerSource = d.MaxSeriesPerSource
	}
	if c.MaxSeries <= 0 {
		c.MaxSeries = d.MaxSeries
	}
	if c.SeriesTTL <= 0 {
		c.SeriesTTL = max(d.SeriesTTL, c.Window+c.Lateness)
	}
	if c.MaxFutureSkew <= 0 {
		c.MaxFutureSkew = d.MaxFutureSkew
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = d.DedupWindow
	}
	if c.MaxDedupIDs <= 0 {
		c.MaxDedupIDs = d.MaxDedupIDs
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = max(c.Lateness, time.Second)
	}
	if c.StallAfter <= 0 {
		c.StallAfter = max(time.Minute, 2*(c.Window+c.Lateness+c.IdleAfter))
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
		c.MemberTTL = 15 * time.Second
	}
	if c.PinnedTTL <= 0 {
		c.PinnedTTL = 10 * time.Second
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	return c
}

// aggOptions returns the options of one partition's aggregator.
func (c Options) aggOptions(overflowSource string) windowing.Options {
	return windowing.Options{
		Window: c.Window, Lateness: c.Lateness, MaxSeriesPerSource: c.MaxSeriesPerSource, MaxSeries: c.MaxSeries,
		OverflowSource: overflowSource, MaxFutureSkew: c.MaxFutureSkew, SeriesTTL: c.SeriesTTL,
		DedupWindow: c.DedupWindow, MaxDedupIDs: c.MaxDedupIDs,
		// An event whose window was emitted goes out in an amendment
		// window: a message redelivered after its window closed (a lost
		// delivery, a takeover) is still counted, once.
		AmendLate: true,
	}
}

// Stats counts what the service did.
type Stats struct {
	// Late counts events that arrived after their window was emitted; each
	// went out in an amendment window (events.AggregateEvent.Amendment).
	Messages, Events, Late, NotAggregated, Emitted, Redelivered uint64
	// Duplicates counts events sent again within DedupWindow (counted once).
	Duplicates uint64
	// Overflowed counts events aggregated into an overflow series.
	Overflowed uint64
	// WindowsDeadLettered counts windows the server refused for good.
	WindowsDeadLettered uint64
	// ConsumersRecreated counts consumers (and streams) re-created after
	// the server lost them.
	ConsumersRecreated uint64
	// SeriesEvicted and DedupEvicted count idle series forgotten and event
	// ids forgotten early for room, in the running partitions.
	SeriesEvicted, DedupEvicted  uint64
	BadInput                     map[string]uint64
	OpenWindows, Series, Pending int
	// Partitions lists the partitions this instance runs and holds the lease
	// of (partitioned mode).
	Partitions []int
}

// Service is a running aggregator. Its methods are safe for concurrent use.
type Service struct {
	cfg   Options
	log   zerolog.Logger
	m     *metrics
	limit *windowing.SeriesLimit
	js    jetstream.JetStream // publishes windows, with futures: no bus-wide async handlers
	// copies queues the WINDOWS copies of stored windows (see
	// copyToHistory); set by Run before the partitions start.
	copies chan<- *nats.Msg
	// handoffKV is HandoffBucket (partitioned mode; set before the
	// partitions start).
	handoffKV jetstream.KeyValue
	// ownersKV is OwnersBucket, the partition leases (partitioned mode).
	ownersKV jetstream.KeyValue
	// handoffWatchFault, when set (tests), is asked before each watch of a
	// handoff record; an error stands for the watch failing.
	handoffWatchFault func() error
	// publishFault, when set (tests), is asked before each window is
	// published; an error stands for the publish failing.
	publishFault func(*events.AggregateEvent) error
	// membersView, when set (tests), replaces the members bucket as this
	// instance's view of who is alive.
	membersView   func() []string
	droppedCopies atomic.Uint64

	mu     sync.Mutex
	stats  Stats
	recent []*events.AggregateEvent
	ready  bool
	parts  map[int]*partition // running partitions (-1: unpartitioned)
	// overflowSources are the sources the overflow metric names; past
	// maxOverflowSources it says otherSource.
	overflowSources map[string]bool
}

// New checks cfg and returns a service that Run starts.
func New(cfg Options) (*Service, error) {
	if cfg.Bus == nil {
		return nil, errors.New("aggregator: Options.Bus is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if _, err := events.NewSubscribeConfig(events.Durable(cfg.Name)); err != nil {
		return nil, fmt.Errorf("aggregator: Name: %w", err)
	}
	js, err := jetstream.New(cfg.Bus.Conn(), jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	s := &Service{
		cfg: cfg, log: zerolog.Nop(), limit: windowing.NewSeriesLimit(cfg.MaxSeries), js: js,
		stats: Stats{BadInput: map[string]uint64{}}, parts: map[int]*partition{}, overflowSources: map[string]bool{},
	}
	s.m = newMetrics(s)
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

func (s *Service) setReady(r bool) {
	s.mu.Lock()
	s.ready = r
	s.mu.Unlock()
}

// Ready reports whether the service is consuming: every consumer it runs
// exists and, when it has work (messages held or waiting, windows being
// published), has made progress within StallAfter.
func (s *Service) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready {
		return false
	}
	now := time.Now()
	for _, p := range s.parts {
		if p.unhealthy(now) != "" {
			return false
		}
	}
	return true
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
		st.SeriesEvicted += as.SeriesEvicted
		st.DedupEvicted += as.DedupEvicted
		st.Pending += len(p.inFlight)
		if id >= 0 {
			st.Partitions = append(st.Partitions, id)
		}
	}
	slices.Sort(st.Partitions)
	return st
}

// Recent returns the latest emitted windows, oldest first.
func (s *Service) Recent() []*events.AggregateEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*events.AggregateEvent(nil), s.recent...)
}
