package alerting

import (
	"maps"
	"slices"
	"time"
)

// Tick advances time-driven transitions to now: pending alerts whose for
// has elapsed fire, firing alerts whose keep_firing_for has elapsed
// resolve, series without samples for stale_after clear, rate windows
// slide, resolved alerts older than [ResolvedRetention] are forgotten, and
// so is the state of series idle for [IdleSeriesRetention].
func (e *Engine) Tick(now time.Time) []Transition {
	if now.Sub(e.lastSweep) >= sweepEvery {
		e.sweep(now)
		e.lastSweep = now
	}
	ts := e.tickPatterns(now)
	for _, fp := range slices.Sorted(maps.Keys(e.alerts)) {
		a := e.alerts[fp]
		r := e.byName[a.Rule]
		if r == nil {
			continue
		}
		if a.State == StateResolved {
			if now.Sub(a.ResolvedAt) >= ResolvedRetention {
				delete(e.alerts, fp) // the series' counts and baseline stay
			}
			continue
		}
		cond := a.Exceeding
		switch {
		case r.Kind == KindRate && e.rates[fp] != nil:
			cond = e.rateCondition(r, a, e.rates[fp].sum(now))
		case r.Kind == KindRatio:
			cond = e.ratioCondition(r, a, now)
		case (r.Kind == KindThreshold || r.Kind == KindAnomaly || r.Kind == KindPredict) && r.StaleAfter > 0 && now.Sub(a.LastSeenAt) >= r.StaleAfter.D():
			cond = false
		}
		if tr, ok := e.step(r, a, cond, now, now); ok {
			ts = append(ts, tr)
		}
	}
	return ts
}

// Next returns when [Engine.Tick] next has something to do after now, or
// the zero time if nothing is scheduled.
func (e *Engine) Next(now time.Time) time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, ps := range e.patterns {
		if t := ps.next(); !t.IsZero() {
			earlier(t)
		}
	}
	for fp, a := range e.alerts {
		r := e.byName[a.Rule]
		if r == nil {
			continue
		}
		switch a.State {
		case StateResolved:
			earlier(a.ResolvedAt.Add(ResolvedRetention))
			continue
		case StatePending:
			if a.Exceeding {
				earlier(a.ActiveAt.Add(r.For.D()))
			}
		case StateFiring:
			if !a.Exceeding {
				earlier(a.LastExceededAt.Add(r.KeepFiringFor.D()))
			}
		}
		if r.Kind == KindRatio {
			if s := e.ratioSeriesOf(r, a); s != nil {
				for _, c := range []*rateCounter{s.num, s.den} {
					if t := c.nextExpiry(now); !t.IsZero() {
						earlier(t)
					}
				}
			}
		}
		if c := e.rates[fp]; r.Kind == KindRate && c != nil {
			if t := c.nextExpiry(now); !t.IsZero() {
				earlier(t) // the window slides past a bucket
			}
		}
		if (r.Kind == KindThreshold || r.Kind == KindAnomaly || r.Kind == KindPredict) && r.StaleAfter > 0 && a.Exceeding {
			earlier(a.LastSeenAt.Add(r.StaleAfter.D()))
		}
	}
	return next
}

// forget drops an alert and the state of its series.
func (e *Engine) forget(fp string) {
	delete(e.alerts, fp)
	e.dropSeries(fp)
}

func (e *Engine) dropSeries(fp string) {
	delete(e.rates, fp)
	delete(e.detectors, fp)
	delete(e.predictors, fp)
	delete(e.seriesLabels, fp)
	delete(e.lastSample, fp)
}

// sweep drops the state of series without an alert whose rule is gone or
// that had no sample for [IdleSeriesRetention] (a rate rule's window, if
// longer).
func (e *Engine) sweep(now time.Time) {
	for fp, at := range e.lastSample {
		if e.alerts[fp] != nil {
			continue
		}
		r := e.byName[e.seriesLabels[fp]["alertname"]]
		keep := IdleSeriesRetention
		if r != nil && r.Kind == KindRate {
			keep = max(keep, r.Window.D())
		}
		if r == nil || now.Sub(at) >= keep {
			e.dropSeries(fp)
		}
	}
}
