package alerting

import (
	"maps"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// observePattern evaluates a pattern rule against ev.
func (e *Engine) observePattern(r *Rule, ev events.Event, input string, now time.Time, ts []Transition) []Transition {
	md := ev.Metadata()
	if !r.readsOn(input, md.Type) {
		return ts
	}
	ps := e.patterns[r.Name]
	if ps == nil {
		return ts
	}
	m, ok := ps.observe(ev, md, md.Timestamp)
	if !ok {
		return ts
	}
	if r.Kind != KindRatio {
		return e.applyMatch(r, m, float64(r.First.Count), float64(r.First.Count), now, ts)
	}
	fp := e.patternFingerprint(r, m)
	a := e.alerts[fp]
	v, enough := r.ratio(ps.ratios[m.key], now)
	m.value, m.cond = v, enough && thresholdCondition(r, a != nil && a.Exceeding, v)
	return e.applyMatch(r, m, v, *r.Threshold, now, ts)
}

// patternFingerprint returns the fingerprint of the alert of m's key.
func (e *Engine) patternFingerprint(r *Rule, m patternMatch) string {
	k := seriesKey{rule: r.Name, series: seriesID{source: m.source, patternKey: m.key}}
	fp, known := e.fps[k]
	if !known {
		if len(e.fps) >= maxCachedFingerprints {
			clear(e.fps)
		}
		fp = r.labels(r.patternLabels(m)).Fingerprint()
		e.fps[k] = fp
	}
	return fp
}

// applyMatch moves the alert of m's key: a match of an absence or
// sequence rule fires it (the condition is an instant, so it resolves
// keep_firing_for later unless it matches again); a ratio rule's
// condition holds as long as the ratio does.
func (e *Engine) applyMatch(r *Rule, m patternMatch, value, threshold float64, now time.Time, ts []Transition) []Transition {
	fp := e.patternFingerprint(r, m)
	a := e.alerts[fp]
	if a == nil {
		if !m.cond {
			return ts
		}
		a = &Alert{Fingerprint: fp, Rule: r.Name, Labels: r.labels(r.patternLabels(m)), State: StateInactive}
	}
	a.LastSeenAt = now
	if m.at.After(a.LastEventAt) {
		a.LastEventAt = m.at
	}
	a.Value, a.Threshold = value, threshold
	if r.Kind == KindAbsence {
		a.Value = now.Sub(m.at.Add(-r.Within.D())).Seconds() // how long the key has been open
	}
	tr, ok := e.step(r, a, m.cond, m.at, now)
	if r.Kind != KindRatio {
		a.Exceeding = false
	}
	if ok {
		ts = append(ts, tr)
	}
	return ts
}

// tickPatterns fires the overdue keys of absence rules, drops the expired
// keys of sequence rules and the idle series of ratio rules.
func (e *Engine) tickPatterns(now time.Time) []Transition {
	var ts []Transition
	sweep := now.Sub(e.lastPatternSweep) >= sweepEvery
	for _, name := range slices.Sorted(maps.Keys(e.patterns)) {
		ps := e.patterns[name]
		for _, m := range ps.expire(now) {
			ts = e.applyMatch(ps.rule, m, 0, ps.rule.Within.D().Seconds(), now, ts)
		}
		if sweep && ps.rule.Kind == KindRatio {
			ps.sweepRatios(now, e.alerts, e)
		}
	}
	if sweep {
		e.lastPatternSweep = now
	}
	return ts
}

// ratioSeriesOf returns the counts behind a ratio rule's alert.
func (e *Engine) ratioSeriesOf(r *Rule, a *Alert) *ratioSeries {
	ps := e.patterns[r.Name]
	if ps == nil {
		return nil
	}
	key := a.Labels["source"]
	if r.Key != "source" {
		key = a.Labels[labelOfKey(r.Key)]
	}
	return ps.ratios[key]
}

func (e *Engine) ratioCondition(r *Rule, a *Alert, now time.Time) bool {
	s := e.ratioSeriesOf(r, a)
	if s == nil {
		return false
	}
	v, enough := r.ratio(s, now)
	a.Value, a.Threshold = v, *r.Threshold
	return enough && thresholdCondition(r, a.Exceeding, v)
}

// PatternKeys returns how many keys pattern rules hold open (absence and
// sequence keys, ratio series).
func (e *Engine) PatternKeys() int {
	n := 0
	for _, ps := range e.patterns {
		n += len(ps.open) + len(ps.ratios)
	}
	return n
}

// PatternEvictions returns, per pattern rule, how many keys were evicted
// because the rule's max_keys was reached.
func (e *Engine) PatternEvictions() map[string]uint64 {
	out := map[string]uint64{}
	for name, ps := range e.patterns {
		out[name] = ps.evicted
	}
	return out
}
