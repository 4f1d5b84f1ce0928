package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
)

// AlertSink receives every alert transition, e.g. to keep a durable,
// replayable alert history in the ALERTS stream. Publishing must be
// idempotent by [TransitionID]: instances that see the same input publish
// the same transitions.
type AlertSink interface {
	PublishAlert(ctx context.Context, t Transition) error
}

// Options configure a [Service].
type Options struct {
	// Config is the parsed rules file; RulesFile, if set, is re-read by
	// [Service.ReloadFile] (SIGHUP, monitoring.config.changed).
	Config    *Config
	RulesFile string
	// Bus delivers the input (aggregated windows, health and other events)
	// and takes the health.threshold.* lifecycle events.
	Bus events.Bus
	// Alerts takes every transition (optional).
	Alerts AlertSink
	// Store keeps state shared by instances (default: a MemoryStore).
	Store Store
	// Instance names this instance among its peers (default host-pid).
	Instance string
	// Durable prefixes the names of the input consumers; empty gives
	// consumers that end with the process.
	Durable string
	// ExternalURL is where people reach this instance's API (in payloads).
	ExternalURL string
	// APIToken, when set, is required as "Authorization: Bearer <token>"
	// on the API's writes (creating and expiring silences).
	APIToken string
	// MaxSilence bounds how far from now a new or updated silence may end
	// (default [DefaultMaxSilence]; negative: no bound).
	MaxSilence time.Duration
	// RetryFor bounds the retries of one notification (default 1m);
	// ClaimTTL how long a claimed notification log entry is held (default
	// RetryFor + 30s).
	RetryFor, ClaimTTL time.Duration
	// SnapshotEvery is how often alert state is saved between transitions
	// (default 5s).
	SnapshotEvery time.Duration
	// History reads stored aggregated windows; with it, rules written
	// threshold: auto learn their thresholds at start and every
	// auto.relearn (without it they never fire).
	History HistoryFunc
	// Notify adds Go functions as targets of the named receivers (which
	// the rules file must define; it may give them no other target).
	Notify     map[string]NotifyFunc
	HTTPClient *http.Client
	Logger     *zerolog.Logger
	Registerer prometheus.Registerer
}

// DefaultMaxSilence is the default [Options.MaxSilence]: 30 days, past a
// month a silence is more likely forgotten than meant.
const DefaultMaxSilence = 30 * 24 * time.Hour

// Service runs the rules against the bus, keeps alert state, and sends
// notifications. Its state is owned by one goroutine (Run's loop); every
// other method hands work to that loop.
type Service struct {
	opts  Options
	log   zerolog.Logger
	store Store
	m     *metrics

	// owned by the loop
	cfg          *Config
	engine       *Engine
	disp         *Dispatcher
	integrations map[string][]*integration
	// saved maps the fingerprint of every alert in the store to the
	// LastSeenAt it was saved with, so snapshots write only what moved.
	saved map[string]time.Time
	// evicted is what PatternEvictions said last, per rule.
	evicted   map[string]uint64
	subs      map[string]events.Subscription
	intCancel context.CancelFunc
	workers   sync.WaitGroup
	// bg owns the goroutines that outlive a call: deferred retries,
	// unsubscribes and reloads. Run waits for them before it returns.
	bg sync.WaitGroup

	input    chan observeReq
	relearn  chan struct{} // a reload asks the learner to learn now
	calls    chan func()
	loopDone chan struct{}
	ready    atomic.Bool
	running  atomic.Bool
	runCtx   context.Context
}

type observeReq struct {
	ev    events.Event
	input string // the subscription's pattern; "" for every rule
	done  chan struct{}
}

// New returns a service; Run starts it.
func New(opts Options) (*Service, error) {
	if opts.Config == nil {
		return nil, errors.New("alerting: Options.Config is required")
	}
	if opts.Instance == "" {
		host, _ := os.Hostname()
		opts.Instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = time.Minute
	}
	if opts.ClaimTTL <= 0 {
		opts.ClaimTTL = opts.RetryFor + 30*time.Second
	}
	if opts.SnapshotEvery <= 0 {
		opts.SnapshotEvery = 5 * time.Second
	}
	if opts.MaxSilence == 0 {
		opts.MaxSilence = DefaultMaxSilence
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Store == nil {
		opts.Store = NewMemoryStore()
	}
	log := zerolog.Nop()
	if opts.Logger != nil {
		log = *opts.Logger
	}
	s := &Service{
		opts: opts, log: log.With().Str("component", "alertmanager").Logger(), store: opts.Store, m: newMetrics(),
		cfg: opts.Config, engine: NewEngine(opts.Config.Rules), disp: NewDispatcher(opts.Config),
		saved: map[string]time.Time{}, evicted: map[string]uint64{}, subs: map[string]events.Subscription{},
		input: make(chan observeReq), relearn: make(chan struct{}, 1), calls: make(chan func()), loopDone: make(chan struct{}),
	}
	if opts.Registerer != nil {
		for _, c := range s.m.collectors() {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Ready reports whether Run has restored state and subscribed.
func (s *Service) Ready() bool { return s.ready.Load() }

// Instance returns this instance's name.
func (s *Service) Instance() string { return s.opts.Instance }

// Run restores state, subscribes and evaluates until ctx ends. State is
// saved before it returns.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("alerting: Run called twice")
	}
	s.runCtx = ctx
	now := time.Now()
	stored, err := s.store.LoadAlerts(ctx)
	if err != nil {
		return fmt.Errorf("load alert state: %w", err)
	}
	s.engine.Restore(stored)
	if ps, ok := s.store.(PatternStore); ok {
		data, err := ps.LoadPatterns(ctx, s.opts.Instance)
		if err != nil {
			return fmt.Errorf("load pattern state: %w", err)
		}
		if err := s.engine.RestorePatterns(data); err != nil {
			s.log.Warn().Err(err).Msg("pattern state unreadable; starting afresh")
		}
	}
	for _, a := range s.engine.Alerts() {
		s.saved[a.Fingerprint] = a.LastSeenAt
		s.disp.Update(a, now)
	}
	s.updateGauges()
	silences := make(chan *Silence, 64)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := s.store.WatchSilences(watchCtx, func(sil *Silence) {
		select {
		case silences <- sil:
		case <-watchCtx.Done():
		}
	}); err != nil {
		return fmt.Errorf("watch silences: %w", err)
	}
	defer s.bg.Wait() // last: they give up once the loop is done
	if err := s.startIntegrations(s.cfg); err != nil {
		return err
	}
	defer s.stopIntegrations()
	defer s.unsubscribeAll()
	defer close(s.loopDone) // before unsubscribing: handlers waiting on the loop give up
	if err := s.subscribe(ctx); err != nil {
		return err // the subscriptions made so far go with the defers
	}
	s.ready.Store(true)
	defer s.ready.Store(false)
	if s.opts.History != nil {
		s.bg.Go(func() { s.learnLoop(ctx) })
	}
	s.log.Info().Int("rules", len(s.cfg.Rules)).Int("restored_alerts", len(s.saved)).Str("instance", s.opts.Instance).Msg("alert manager running")

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	snapshot := time.NewTicker(s.opts.SnapshotEvery)
	defer snapshot.Stop()
	for {
		s.dispatch(time.Now())
		wait := time.Hour
		now := time.Now()
		for _, t := range []time.Time{s.engine.Next(now), s.disp.Next()} {
			if !t.IsZero() && t.Sub(now) < wait {
				wait = max(t.Sub(now), 0)
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			s.snapshot(context.WithoutCancel(ctx))
			return nil
		case req := <-s.input:
			s.m.input.Inc()
			s.apply(ctx, s.engine.ObserveInput(req.ev, req.input, time.Now()))
			s.m.series.Set(float64(s.engine.Series())) // new series come without transitions
			s.patternGauges()
			close(req.done)
		case <-timer.C:
			s.apply(ctx, s.engine.Tick(time.Now()))
			s.m.series.Set(float64(s.engine.Series())) // idle series go without transitions
			s.patternGauges()
		case sil := <-silences:
			s.disp.SetSilence(sil.ID, sil, time.Now())
		case f := <-s.calls:
			f()
		case <-snapshot.C:
			s.snapshot(ctx)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// do runs f on the loop and waits for it.
func (s *Service) do(ctx context.Context, f func()) error {
	if !s.ready.Load() {
		return errors.New("alert manager not running")
	}
	done := make(chan struct{})
	select {
	case s.calls <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.loopDone:
		return errStopped
	}
	<-done
	return nil
}

// Observe evaluates ev and returns once its transitions are applied (state
// saved, lifecycle published, notifications queued).
func (s *Service) Observe(ctx context.Context, ev events.Event) error { return s.observe(ctx, ev, "") }

func (s *Service) observe(ctx context.Context, ev events.Event, input string) error {
	req := observeReq{ev: ev, input: input, done: make(chan struct{})}
	select {
	case s.input <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.loopDone:
		return errStopped
	}
	<-req.done
	return nil
}

var errStopped = errors.New("alert manager stopped")

// apply saves, publishes and dispatches transitions.
func (s *Service) apply(ctx context.Context, ts []Transition) {
	if len(ts) > 0 {
		defer s.updateGauges() // only transitions change the counts
	}
	for _, t := range ts {
		s.m.transitions.WithLabelValues(string(t.To)).Inc()
		a := t.Alert
		ev := s.log.Info()
		if t.To == StateFiring {
			ev = s.log.Warn()
		}
		ev.Str("alert", a.Rule).Str("labels", a.Labels.String()).Str("from", string(t.From)).Str("to", string(t.To)).
			Float64("value", a.Value).Float64("threshold", a.Threshold).Msg("alert state changed")
		if t.To == StateInactive {
			if _, ok := s.saved[a.Fingerprint]; ok {
				if err := s.store.DeleteAlert(ctx, a.Fingerprint); err != nil {
					s.log.Warn().Err(err).Msg("cannot delete alert state")
				}
				delete(s.saved, a.Fingerprint)
			}
		} else if err := s.store.SaveAlert(ctx, a); err != nil {
			s.log.Warn().Err(err).Msg("cannot save alert state")
		} else {
			s.saved[a.Fingerprint] = a.LastSeenAt
		}
		s.publish(ctx, t)
		s.disp.Update(a, t.At)
	}
}

// TransitionID is the deterministic id of a transition: the same on every
// instance that sees the same input, so the stream deduplicates it.
func TransitionID(t Transition) string {
	h := sha256.Sum256([]byte(t.Alert.Fingerprint + "\x00" + string(t.To) + "\x00" + t.Alert.Since.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(h[:16])
}

// publish sends the health.threshold.* event and the alert record of t.
func (s *Service) publish(ctx context.Context, t Transition) {
	a := t.Alert
	var typ events.Type
	switch {
	case t.To == StatePending || (t.To == StateFiring && t.From != StatePending):
		typ = events.ThresholdExceeded
	case t.To == StateResolved || (t.From == StatePending && t.To == StateInactive):
		typ = events.ThresholdRecovered
	}
	if typ != "" && s.opts.Bus != nil {
		source := a.Labels["source"]
		if source == "" {
			source = "jetmon-alertmanager"
		}
		component := a.Rule
		for _, k := range []string{"component", "operation", "metric"} {
			if v := a.Labels[k]; v != "" {
				component = v
				break
			}
		}
		ev := events.NewHealthEvent(typ, source, component)
		ev.ID = "thr-" + TransitionID(t)
		ev.Timestamp = t.At.UTC()
		ev.Metric = s.metricName(a.Rule)
		ev.Value, ev.Threshold = finite(a.Value), finite(a.Threshold)
		ev.Message = a.Annotations["summary"]
		ev.Attributes = map[string]string{"alertname": a.Rule, "fingerprint": a.Fingerprint, "state": string(t.To)}
		if err := s.opts.Bus.Publish(ctx, ev); err != nil {
			s.m.publishErrors.Inc()
			s.log.Warn().Err(err).Str("event", string(typ)).Msg("cannot publish threshold event")
		}
	}
	if s.opts.Alerts != nil {
		if err := s.opts.Alerts.PublishAlert(ctx, t); err != nil {
			s.m.publishErrors.Inc()
			s.log.Warn().Err(err).Msg("cannot publish alert record")
		}
	}
}

func finite(f float64) float64 {
	if f != f || f > 1e300 || f < -1e300 {
		return 0
	}
	return f
}

func (s *Service) metricName(rule string) string {
	if r := s.engine.byName[rule]; r != nil {
		switch r.Kind {
		case KindHealth:
			return "health_status"
		case KindRate:
			return "event_count"
		case KindAbsence:
			return "open_seconds"
		case KindSequence:
			return "sequence_count"
		case KindRatio:
			return "ratio"
		}
		return r.Field
	}
	return ""
}

// ExpiredSilenceRetention is how long an expired silence stays listed
// before it is deleted.
const ExpiredSilenceRetention = 24 * time.Hour

// snapshot saves every alert that saw samples since it was last saved, and
// deletes the alerts the engine forgot.
func (s *Service) snapshot(ctx context.Context) {
	now := time.Now()
	s.apply(ctx, s.engine.Tick(now))
	s.updateGauges() // forgotten resolved alerts leave without a transition
	live := map[string]bool{}
	for _, a := range s.engine.Alerts() {
		live[a.Fingerprint] = true
		if at, ok := s.saved[a.Fingerprint]; ok && at.Equal(a.LastSeenAt) {
			continue
		}
		if err := s.store.SaveAlert(ctx, a); err == nil {
			s.saved[a.Fingerprint] = a.LastSeenAt
		}
	}
	for _, sil := range s.disp.Silences() {
		if now.Sub(sil.EndsAt) > ExpiredSilenceRetention {
			if err := s.store.DeleteSilence(ctx, sil.ID); err == nil {
				s.disp.SetSilence(sil.ID, nil, now)
			}
		}
	}
	for fp := range s.saved {
		if !live[fp] {
			_ = s.store.DeleteAlert(ctx, fp)
			delete(s.saved, fp)
		}
	}
	s.savePatterns(ctx)
}

// savePatterns saves the pattern rules' open keys if they changed.
func (s *Service) savePatterns(ctx context.Context) {
	ps, ok := s.store.(PatternStore)
	if !ok || !s.engine.PatternsChanged() {
		return
	}
	data, err := s.engine.SnapshotPatterns()
	if err == nil {
		err = ps.SavePatterns(ctx, s.opts.Instance, data)
	}
	if err != nil {
		s.log.Warn().Err(err).Msg("cannot save pattern state")
	}
}

// dispatch hands the notifications due at now to their receivers.
func (s *Service) dispatch(now time.Time) {
	for _, n := range s.disp.Due(now) {
		ins := s.integrations[n.Receiver]
		if len(ins) == 0 {
			s.log.Warn().Str("receiver", n.Receiver).Msg("no such receiver; notification dropped")
			continue
		}
		for _, in := range ins {
			in.enqueue(n)
		}
	}
}

func (s *Service) updateGauges() {
	counts := map[State]int{StatePending: 0, StateFiring: 0, StateResolved: 0}
	for _, a := range s.engine.alerts {
		counts[a.State]++
	}
	for st, n := range counts {
		s.m.alerts.WithLabelValues(string(st)).Set(float64(n))
	}
	s.m.series.Set(float64(s.engine.Series()))
}

// patternGauges publishes the pattern rules' open keys and evictions.
func (s *Service) patternGauges() {
	if len(s.engine.patterns) == 0 {
		return
	}
	s.m.patternKeys.Set(float64(s.engine.PatternKeys()))
	for rule, ps := range s.engine.patterns {
		n, last := ps.evicted, s.evicted[rule]
		if n < last {
			last = 0 // a new state (the rule changed on reload) counts from zero
		}
		if n > last {
			s.m.evictions.WithLabelValues(rule).Add(float64(n - last))
		}
		s.evicted[rule] = n
	}
}
