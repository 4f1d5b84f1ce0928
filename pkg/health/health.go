// Package health runs health checks and turns their results into health
// events.
//
// A [Manager] runs registered checks on an interval, with jitter, a
// per-check timeout and a concurrency limit. A check yields a [Result]:
// healthy, degraded or failed, with a message and its latency. A check that
// panics or hangs is contained (the panic recovered, the hang cut off by the
// timeout) and reported as failed; the manager keeps running. Every run
// publishes health.check.completed; a change of a component's status
// publishes health.component.healthy, degraded or failed; the system's
// status (worst-of, or weighted) is published as health.system.status; a
// check's value crossing its threshold publishes health.threshold.exceeded,
// and health.threshold.recovered once it is back past a separate recovery
// level (hysteresis, so a value hovering at the line does not flap).
// [Manager.Healthz] and [Manager.Readyz] serve the Kubernetes-style probes.
package health

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
)

// Status is a component's or the system's health.
type Status string

// The statuses, worst last.
const (
	Healthy  Status = events.StatusHealthy
	Degraded Status = events.StatusDegraded
	Failed   Status = events.StatusFailed
	// Unknown is a check that has not run yet.
	Unknown Status = "unknown"
)

func (s Status) rank() int {
	switch s {
	case Healthy:
		return 0
	case Degraded:
		return 1
	case Failed:
		return 2
	}
	return 3
}

func (s Status) score() float64 {
	switch s {
	case Healthy:
		return 1
	case Degraded:
		return 0.5
	}
	return 0
}

// Result is the outcome of one run of a check.
type Result struct {
	Status  Status        `json:"status"`
	Message string        `json:"message,omitempty"`
	Latency time.Duration `json:"-"`
	// Value is an optional measurement (consumer lag, free disk %, ...) that
	// a threshold rule watches.
	Value    float64   `json:"value,omitempty"`
	HasValue bool      `json:"-"`
	Checked  time.Time `json:"checked_at"`
}

// Checker is one health check. Check must honour ctx; one that does not is
// cut off by the manager's timeout all the same.
type Checker interface {
	Check(ctx context.Context) Result
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) Result

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context) Result { return f(ctx) }

// Threshold watches a check's Value with hysteresis: it is exceeded when the
// value goes above Limit (below it, with Low, for "too low" measurements such
// as free disk), and recovered only once the value is back below Recover
// (above it, with Low).
type Threshold struct {
	// Metric names the measurement in the events (default: the check's name).
	Metric string
	Limit  float64
	Low    bool
	// Recover is the recovery level, on the good side of Limit.
	Recover float64
}

func (t Threshold) exceeded(v float64) bool {
	if t.Low {
		return v < t.Limit
	}
	return v > t.Limit
}

func (t Threshold) recovered(v float64) bool {
	if t.Low {
		return v > t.Recover
	}
	return v < t.Recover
}

// Check registers a checker with the manager.
type Check struct {
	// Name identifies the component (required, unique).
	Name    string
	Checker Checker
	// Interval and Timeout override the manager's defaults when positive.
	Interval, Timeout time.Duration
	// Critical checks decide readiness: /readyz fails while one is failed.
	Critical bool
	// Weight counts in the weighted system status (default 1).
	Weight float64
	// Threshold, if set, watches the check's Value.
	Threshold *Threshold
}

// Manager runs checks and reports their results. Its methods are safe for
// concurrent use.
type Manager struct {
	o   Options
	log zerolog.Logger
	sem chan struct{}

	mu     sync.Mutex
	checks map[string]*entry
	order  []string
	// start begins a check's loop in the current Run; nil while the
	// manager is not running. Run sets it and clears it under mu before it
	// waits for its goroutines, so a Register that sees it non-nil adds to
	// Run's WaitGroup before Run waits.
	start   func(name string)
	started time.Time
}

type entry struct {
	Check
	last     Result
	inFlight bool // a run has not returned yet (a hung check runs once at most)
	exceeded bool
	runs     int
}

// NewManager returns a manager with no checks. Options are not checked
// here: call [Options.Validate] on options from outside the program.
func NewManager(o Options) *Manager {
	o = o.withDefaults()
	m := &Manager{o: o, log: zerolog.Nop(), sem: make(chan struct{}, o.Concurrency), checks: map[string]*entry{}}
	if o.Logger != nil {
		m.log = o.Logger.With().Str("component", "health").Logger()
	}
	return m
}

// Register adds a check. Errors name the bad field. It may be called
// before or while [Manager.Run] runs: a check registered during a Run starts
// its loop at once (first run within the jitter, as for the others).
func (m *Manager) Register(c Check) error {
	switch {
	case c.Name == "":
		return errors.New("health: check: Name is required")
	case c.Checker == nil:
		return fmt.Errorf("health: check %q: Checker is required", c.Name)
	case c.Weight < 0:
		return fmt.Errorf("health: check %q: Weight %v must not be negative", c.Name, c.Weight)
	}
	if c.Weight == 0 {
		c.Weight = 1
	}
	if c.Threshold != nil && c.Threshold.Metric == "" {
		t := *c.Threshold
		t.Metric = c.Name
		c.Threshold = &t
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.checks[c.Name]; dup {
		return fmt.Errorf("health: check %q registered twice", c.Name)
	}
	m.checks[c.Name] = &entry{Check: c, last: Result{Status: Unknown}}
	m.order = append(m.order, c.Name)
	if m.start != nil {
		m.start(c.Name)
	}
	return nil
}

// Run runs every check on its interval (a check registered while it runs
// from then on) and publishes the system status
// every StatusEvery, until ctx ends; it returns after all its goroutines
// have stopped (a check that ignores its context is left behind, reported
// failed).
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	m.mu.Lock()
	if m.start != nil {
		m.mu.Unlock()
		return errors.New("health: manager already running")
	}
	m.started = time.Now()
	m.start = func(name string) { wg.Go(func() { m.loop(ctx, name) }) }
	for _, name := range m.order {
		m.start(name)
	}
	m.mu.Unlock()
	wg.Go(func() {
		t := time.NewTicker(m.o.StatusEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.publishSystem(ctx)
			}
		}
	})
	<-ctx.Done()
	// No Register may add to wg once Wait has begun.
	m.mu.Lock()
	m.start = nil
	m.mu.Unlock()
	wg.Wait()
	return nil
}

func (m *Manager) loop(ctx context.Context, name string) {
	m.mu.Lock()
	e := m.checks[name]
	interval := m.o.Interval
	if e.Interval > 0 {
		interval = e.Interval
	}
	m.mu.Unlock()
	// The first run comes after a random share of the jitter, so that checks
	// registered together do not fire together.
	wait := m.jitter(interval)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		m.runOne(ctx, name)
		wait = interval + m.jitter(interval)
	}
}

func (m *Manager) jitter(interval time.Duration) time.Duration {
	if m.o.Jitter <= 0 {
		return 0
	}
	return time.Duration(rand.Float64() * m.o.Jitter * float64(interval))
}

// RunOnce runs every check once now, concurrently within the limit, and
// returns when all have reported.
func (m *Manager) RunOnce(ctx context.Context) {
	m.mu.Lock()
	names := append([]string(nil), m.order...)
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() { m.runOne(ctx, name) })
	}
	wg.Wait()
}

// runOne runs one check within the concurrency limit and its timeout.
func (m *Manager) runOne(ctx context.Context, name string) {
	m.mu.Lock()
	e := m.checks[name]
	if e.inFlight { // the previous run hangs: report, do not pile up
		m.mu.Unlock()
		m.record(ctx, e, Result{Status: Failed, Message: "previous run still hanging", Checked: time.Now()})
		return
	}
	e.inFlight = true
	timeout := m.o.Timeout
	if e.Timeout > 0 {
		timeout = e.Timeout
	}
	m.mu.Unlock()

	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		m.mu.Lock()
		e.inFlight = false
		m.mu.Unlock()
		return
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- Result{Status: Failed, Message: fmt.Sprintf("check panicked: %v", p)}
			}
			m.mu.Lock()
			e.inFlight = false
			m.mu.Unlock()
		}()
		done <- e.Checker.Check(cctx)
	}()
	var r Result
	select {
	case r = <-done:
	case <-cctx.Done():
		select {
		case r = <-done: // it answered as time ran out: the answer stands
		default:
			r = Result{Status: Failed, Message: "timed out after " + timeout.String()}
			if ctx.Err() != nil { // shutting down: not the check's fault
				<-m.sem
				return
			}
		}
	}
	<-m.sem
	if r.Latency == 0 {
		r.Latency = time.Since(start)
	}
	if r.Checked.IsZero() {
		r.Checked = time.Now()
	}
	switch r.Status {
	case Healthy, Degraded, Failed:
	default:
		r.Message = fmt.Sprintf("invalid status %q from the check; %s", r.Status, r.Message)
		r.Status = Failed
	}
	m.record(ctx, e, r)
}

// publishGrace bounds publishing a result the manager already has after
// its context ended: a shutdown must not lose it (Close then settles it).
const publishGrace = 5 * time.Second

// record stores r and publishes what it implies, also when ctx has ended
// meanwhile (for up to publishGrace).
func (m *Manager) record(ctx context.Context, e *entry, r Result) {
	m.mu.Lock()
	prev := e.last.Status
	e.last = r
	e.runs++
	var thresholdEvent events.Type
	if th := e.Threshold; th != nil && r.HasValue {
		switch {
		case !e.exceeded && th.exceeded(r.Value):
			e.exceeded, thresholdEvent = true, events.ThresholdExceeded
		case e.exceeded && th.recovered(r.Value):
			e.exceeded, thresholdEvent = false, events.ThresholdRecovered
		}
	}
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishGrace)
	defer cancel()
	m.publish(ctx, m.healthEvent(events.CheckCompleted, e.Name, r))
	if r.Status != prev {
		m.publish(ctx, m.healthEvent(componentType(r.Status), e.Name, r))
	}
	if thresholdEvent != "" {
		ev := m.healthEvent(thresholdEvent, e.Name, r)
		ev.Metric, ev.Value, ev.Threshold = e.Threshold.Metric, r.Value, e.Threshold.Limit
		if thresholdEvent == events.ThresholdRecovered {
			ev.Threshold = e.Threshold.Recover
		}
		m.publish(ctx, ev)
	}
}

func componentType(s Status) events.Type {
	switch s {
	case Healthy:
		return events.ComponentHealthy
	case Degraded:
		return events.ComponentDegraded
	}
	return events.ComponentFailed
}

func (m *Manager) healthEvent(t events.Type, component string, r Result) *events.HealthEvent {
	ev := events.NewHealthEvent(t, m.o.Source, component)
	ev.Status, ev.Message = string(r.Status), r.Message
	ev.LatencyMS = float64(r.Latency) / float64(time.Millisecond)
	if r.HasValue {
		ev.Metric, ev.Value = component, r.Value
	}
	return ev
}

func (m *Manager) publish(ctx context.Context, ev events.Event) {
	if m.o.Publisher == nil {
		return
	}
	if err := m.o.Publisher.Publish(ctx, ev); err != nil && ctx.Err() == nil {
		m.log.Warn().Err(err).Str("event_type", string(ev.Metadata().Type)).Msg("health event not published")
	}
}
