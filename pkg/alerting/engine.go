package alerting

import (
	"bytes"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// State is where an alert is in its lifecycle.
type State string

// Alert states: inactive → pending → firing → resolved. An alert whose
// condition clears while pending goes back to inactive and is forgotten.
const (
	StateInactive State = "inactive"
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Alert is the state of one rule for one series.
type Alert struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Labels      Labels            `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	State       State             `json:"state"`
	// Exceeding is the current condition (after hysteresis).
	Exceeding bool `json:"exceeding"`
	// Value is the last observed value; Threshold the threshold it was
	// compared with (the learned one for anomaly rules, the status severity
	// for health rules: 1 degraded, 2 failed).
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	// ActiveAt is when the condition became true; FiredAt when the alert
	// fired; ResolvedAt when it resolved.
	ActiveAt time.Time `json:"active_at,omitzero"`
	// Since is the event time of the sample that made the condition true:
	// the same on every instance, so it identifies the episode.
	Since      time.Time `json:"since,omitzero"`
	FiredAt    time.Time `json:"fired_at,omitzero"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// LastExceededAt is the last time the condition was seen true.
	LastExceededAt time.Time `json:"last_exceeded_at,omitzero"`
	// LastSeenAt is when the last sample arrived; LastEventAt that
	// sample's event time (older samples are ignored, so redelivery and
	// replay after a restart cannot move an alert backwards).
	LastSeenAt  time.Time `json:"last_seen_at,omitzero"`
	LastEventAt time.Time `json:"last_event_at,omitzero"`
	// Forecast is a predict rule's forecast with its error.
	Forecast *Forecast `json:"forecast,omitempty"`

	// rendered says for which value and state Annotations were rendered.
	rendered      bool
	renderedValue float64
	renderedState State
}

func (a *Alert) clone() *Alert {
	c := *a
	c.Labels = maps.Clone(a.Labels)
	c.Annotations = maps.Clone(a.Annotations)
	if a.Forecast != nil {
		f := *a.Forecast
		c.Forecast = &f
	}
	return &c
}

// Transition is one change of an alert's state.
type Transition struct {
	From, To State
	Alert    *Alert // a snapshot after the change
	At       time.Time
}

// ResolvedRetention is how long a resolved alert is kept (for the API and
// resolved notifications) before it is forgotten.
const ResolvedRetention = 15 * time.Minute

// IdleSeriesRetention is how long the engine keeps the state of a series of
// a rate or anomaly rule (its counts, its learned baseline) after the
// series' last sample, unless the series has an alert; a rate rule keeps it
// for its window at least. Sources come and go (instances, pods): without
// this, their state would pile up for good. A series that comes back
// after that warms up again.
const IdleSeriesRetention = time.Hour

// maxCachedFingerprints bounds the fingerprint cache; past it the cache
// starts over.
const maxCachedFingerprints = 1 << 16

// sweepEvery is how often [Engine.Tick] looks for idle series.
const sweepEvery = time.Minute

// Engine evaluates rules against events. It holds the alert state; it is
// not safe for concurrent use and does no I/O, so that a caller can drive
// it from one goroutine with any clock.
type Engine struct {
	rules     []*Rule
	byName    map[string]*Rule
	alerts    map[string]*Alert
	detectors map[string]*detector
	// predictors forecast the series of predict rules, by fingerprint.
	predictors map[string]*predictor
	// learned holds the thresholds of auto rules, by fingerprint.
	learned map[string]LearnedThreshold
	rates   map[string]*rateCounter
	// seriesLabels names the series of detectors and rate counters, and
	// lastSample says when each last had a sample.
	seriesLabels map[string]Labels
	lastSample   map[string]time.Time
	lastSweep    time.Time
	// lastPatternSweep is when idle ratio series were last dropped.
	lastPatternSweep time.Time
	// fps caches the fingerprint of the series seen, per rule.
	fps map[seriesKey]string
	// patterns holds the open keys and ratio counts of pattern rules, by
	// rule name.
	patterns map[string]*patternState
}

// NewEngine returns an engine evaluating rules.
func NewEngine(rules []*Rule) *Engine {
	e := &Engine{
		alerts: map[string]*Alert{}, detectors: map[string]*detector{}, rates: map[string]*rateCounter{}, predictors: map[string]*predictor{}, learned: map[string]LearnedThreshold{},
		seriesLabels: map[string]Labels{}, lastSample: map[string]time.Time{},
	}
	e.setRules(rules)
	return e
}

func (e *Engine) setRules(rules []*Rule) {
	e.rules = rules
	e.fps = map[seriesKey]string{} // rule labels may have changed
	e.byName = map[string]*Rule{}
	old := e.patterns
	e.patterns = map[string]*patternState{}
	for _, r := range rules {
		e.byName[r.Name] = r
		if !isPattern(r.Kind) {
			continue
		}
		if ps := old[r.Name]; ps != nil && ps.rule.Kind == r.Kind && slices.Equal(ps.rule.Inputs(), r.Inputs()) {
			ps.rule = r // same kind and inputs: the open keys carry on
			e.patterns[r.Name] = ps
		} else {
			e.patterns[r.Name] = newPatternState(r)
		}
	}
}

// Rules returns the rules being evaluated.
func (e *Engine) Rules() []*Rule { return e.rules }

// Input is the event pattern the rule reads: performance.metric.aggregated
// for threshold and anomaly rules, Match.Type otherwise.
func (r *Rule) Input() string {
	if r.Kind == KindThreshold || r.Kind == KindAnomaly || r.Kind == KindPredict {
		return string(events.MetricAggregated)
	}
	return r.Match.Type
}

// labels returns the alert labels of a series under r.
func (r *Rule) labels(series Labels) Labels {
	l := maps.Clone(series)
	maps.Copy(l, r.Labels)
	l["alertname"] = r.Name
	return l
}

// Observe evaluates every rule against ev at now and returns the
// transitions it causes.
func (e *Engine) Observe(ev events.Event, now time.Time) []Transition {
	return e.ObserveInput(ev, "", now)
}

// ObserveInput is Observe for the rules reading input pattern (see
// [Rule.Input]) only; "" means every rule. A caller subscribed to several
// overlapping patterns uses it so that no rule sees an event twice.
func (e *Engine) ObserveInput(ev events.Event, input string, now time.Time) []Transition {
	var ts []Transition
	for _, r := range e.rules {
		if isPattern(r.Kind) {
			ts = e.observePattern(r, ev, input, now, ts)
			continue
		}
		if input != "" && r.Input() != input {
			continue
		}
		s, ok := r.sampleOf(ev)
		if !ok {
			continue
		}
		k := seriesKey{rule: r.Name, series: s.series}
		fp, known := e.fps[k]
		if !known {
			if len(e.fps) >= maxCachedFingerprints {
				clear(e.fps)
			}
			fp = r.labels(s.series.labels()).Fingerprint()
			e.fps[k] = fp
		}
		a := e.alerts[fp]
		if a != nil && !a.LastEventAt.IsZero() && s.at.Before(a.LastEventAt) && r.Kind != KindRate {
			continue // older than what was applied already
		}
		exceeding := a != nil && a.Exceeding
		var cond bool
		var value, threshold float64
		switch r.Kind {
		case KindRate:
			c := e.rates[fp]
			if c == nil {
				c = newRateCounter(r.Window.D())
				e.rates[fp] = c
				e.seriesLabels[fp] = r.labels(s.series.labels())
			}
			c.add(s.at, s.value)
			e.lastSample[fp] = now
			value, threshold = c.sum(now), *r.Threshold
			cond = thresholdCondition(r, exceeding, value)
		case KindAnomaly:
			d := e.detectors[fp]
			if d == nil {
				d = newDetector(r.Anomaly)
				e.detectors[fp] = d
				e.seriesLabels[fp] = r.labels(s.series.labels())
			}
			e.lastSample[fp] = now
			value = s.value
			cond, threshold = d.observe(s.value)
		case KindPredict:
			p := e.predictors[fp]
			if p == nil {
				p = newPredictor(r.Predict)
				e.predictors[fp] = p
				e.seriesLabels[fp] = r.labels(s.series.labels())
			}
			e.lastSample[fp] = now
			p.observe(s.at, s.value)
			var f Forecast
			cond, f = p.predict(r)
			value, threshold = s.value, *r.Threshold
			if a != nil || cond {
				if a == nil {
					a = &Alert{Fingerprint: fp, Rule: r.Name, Labels: r.labels(s.series.labels()), State: StateInactive}
				}
				a.Forecast = &f
			}
		case KindHealth:
			value, threshold = s.value, severity(r.Status)
			cond = value >= threshold
		default:
			if r.Auto != nil {
				l, ok := e.learned[fp]
				value, threshold = s.value, l.Threshold
				cond = ok && !math.IsNaN(value) && compare(r.Op, value, threshold)
				break
			}
			value, threshold = s.value, *r.Threshold
			cond = thresholdCondition(r, exceeding, value)
		}
		if a == nil {
			if !cond {
				continue // an inactive series: nothing to keep
			}
			a = &Alert{Fingerprint: fp, Rule: r.Name, Labels: r.labels(s.series.labels()), State: StateInactive}
		}
		a.LastSeenAt = now
		if s.at.After(a.LastEventAt) {
			a.LastEventAt = s.at
		}
		a.Value, a.Threshold = value, threshold
		if tr, ok := e.step(r, a, cond, s.at, now); ok {
			ts = append(ts, tr)
		}
	}
	return ts
}

// seriesKey names one rule's series.
type seriesKey struct {
	rule   string
	series seriesID
}

func (e *Engine) rateCondition(r *Rule, a *Alert, v float64) bool {
	a.Value, a.Threshold = v, *r.Threshold
	return thresholdCondition(r, a.Exceeding, v)
}

// thresholdCondition applies op and, while exceeding, the recovery
// threshold.
func thresholdCondition(r *Rule, exceeding bool, v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if exceeding && r.Recover != nil {
		return !recovered(r.Op, v, *r.Recover)
	}
	return compare(r.Op, v, *r.Threshold)
}

// step moves a through the lifecycle given its condition at now (at is
// the event time of the sample, or now for a timer), stores it
// and returns the transition, if any.
func (e *Engine) step(r *Rule, a *Alert, cond bool, at, now time.Time) (Transition, bool) {
	from := a.State
	a.Exceeding = cond
	if cond {
		a.LastExceededAt = now
	}
	switch {
	case cond && (a.State == StateInactive || a.State == StateResolved):
		a.ActiveAt, a.Since, a.FiredAt, a.ResolvedAt = now, at, time.Time{}, time.Time{}
		a.State = StatePending
		if r.For <= 0 {
			a.State, a.FiredAt = StateFiring, now
		}
	case cond && a.State == StatePending && now.Sub(a.ActiveAt) >= r.For.D():
		a.State, a.FiredAt = StateFiring, now
	case !cond && a.State == StatePending:
		a.State = StateInactive
	case !cond && a.State == StateFiring && now.Sub(a.LastExceededAt) >= r.KeepFiringFor.D():
		a.State, a.ResolvedAt = StateResolved, now
	}
	if a.State == StateInactive {
		delete(e.alerts, a.Fingerprint)
	} else {
		e.alerts[a.Fingerprint] = a
	}
	if a.State != StateInactive && (!a.rendered || a.renderedValue != a.Value || a.renderedState != a.State) {
		r.render(a) // annotations follow the latest value
	}
	if a.State == from {
		return Transition{}, false
	}
	return Transition{From: from, To: a.State, Alert: a.clone(), At: now}, true
}

// Series returns how many series of rate and anomaly rules the engine
// holds state for.
func (e *Engine) Series() int { return len(e.lastSample) }

// Alerts returns snapshots of every pending, firing and recently resolved
// alert, sorted by fingerprint.
func (e *Engine) Alerts() []*Alert {
	out := make([]*Alert, 0, len(e.alerts))
	for _, fp := range slices.Sorted(maps.Keys(e.alerts)) {
		out = append(out, e.alerts[fp].clone())
	}
	return out
}

// Restore loads saved alerts (e.g. from the KV store after a restart);
// alerts of rules that no longer exist are dropped.
func (e *Engine) Restore(alerts []*Alert) {
	for _, a := range alerts {
		if e.byName[a.Rule] == nil || a.State == StateInactive || a.Fingerprint == "" {
			continue
		}
		if cur := e.alerts[a.Fingerprint]; cur != nil && !a.LastSeenAt.After(cur.LastSeenAt) {
			continue
		}
		e.alerts[a.Fingerprint] = a.clone()
	}
}

// Baselines returns what the anomaly detectors have learned, by series
// fingerprint.
func (e *Engine) Baselines() map[string]SeriesBaseline {
	out := map[string]SeriesBaseline{}
	for fp, d := range e.detectors {
		sb := SeriesBaseline{Baseline: d.baseline()}
		if a := e.alerts[fp]; a != nil {
			sb.Labels = a.Labels
		} else if l, ok := e.seriesLabels[fp]; ok {
			sb.Labels = l
		}
		out[fp] = sb
	}
	return out
}

// SeriesBaseline is the learned baseline of one series of an anomaly rule.
type SeriesBaseline struct {
	Labels Labels `json:"labels"`
	Baseline
}

// SetRules replaces the rules, keeping the state of alerts whose rule is
// still there (their labels and annotations follow the new rule). Alerts
// of removed rules resolve; their transitions are returned.
func (e *Engine) SetRules(rules []*Rule, now time.Time) []Transition {
	e.setRules(rules)
	var ts []Transition
	for _, fp := range slices.Sorted(maps.Keys(e.alerts)) {
		a := e.alerts[fp]
		r := e.byName[a.Rule]
		if r == nil {
			from := a.State
			e.forget(fp)
			if from == StateFiring {
				a.State, a.ResolvedAt = StateResolved, now
				ts = append(ts, Transition{From: from, To: StateResolved, Alert: a.clone(), At: now})
			}
			continue
		}
		series := Labels{}
		keys := []string{"source", "operation", "metric", "component", "event_type"}
		if isPattern(r.Kind) {
			keys = []string{"source", labelOfKey(r.Key)}
		}
		for _, k := range keys {
			if v, ok := a.Labels[k]; ok {
				series[k] = v
			}
		}
		labels := r.labels(series)
		if nfp := labels.Fingerprint(); nfp != fp {
			delete(e.alerts, fp)
			a.Fingerprint, a.Labels = nfp, labels
			e.alerts[nfp] = a
			if c := e.rates[fp]; c != nil {
				delete(e.rates, fp)
				e.rates[nfp] = c
			}
			if d := e.detectors[fp]; d != nil {
				delete(e.detectors, fp)
				e.detectors[nfp] = d
			}
			if p := e.predictors[fp]; p != nil {
				delete(e.predictors, fp)
				e.predictors[nfp] = p
			}
			delete(e.seriesLabels, fp)
			e.seriesLabels[nfp] = labels
			if at, ok := e.lastSample[fp]; ok {
				delete(e.lastSample, fp)
				e.lastSample[nfp] = at
			}
		}
		r.render(a)
	}
	return ts
}

// render executes the rule's annotation templates for a. Templates see
// .Labels, .Value, .Threshold, .State and .Rule.
func (r *Rule) render(a *Alert) {
	a.rendered, a.renderedValue, a.renderedState = true, a.Value, a.State
	if len(r.annotations) == 0 {
		a.Annotations = nil
		return
	}
	data := map[string]any{"Labels": map[string]string(a.Labels), "Value": a.Value, "Threshold": a.Threshold, "State": string(a.State), "Rule": r.Name}
	if f := a.Forecast; f != nil {
		data["Forecast"], data["ETA"], data["Error"] = f.Value, f.ETA.Round(time.Second).String(), f.Error
		data["ETAMinutes"] = f.ETA.Minutes()
	}
	a.Annotations = make(map[string]string, len(r.annotations))
	var b bytes.Buffer
	for k, t := range r.annotations {
		b.Reset()
		if err := t.Execute(&b, data); err != nil {
			a.Annotations[k] = "template error: " + err.Error()
			continue
		}
		a.Annotations[k] = b.String()
	}
}
