package alerting

import (
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// KindPredict fires when a forecast of a field of aggregated windows
// crosses the threshold within a horizon ("p95 reaches 250 ms in ~12
// min"), before the value itself does.
const KindPredict = "predict"

// PredictConfig configures the forecast of a predict rule.
type PredictConfig struct {
	// Method is holt (Holt's double exponential smoothing, the default) or
	// linear (least squares over the last History windows).
	Method string `yaml:"method" json:"method,omitempty"`
	// Horizon is how far ahead the forecast looks (required).
	Horizon Duration `yaml:"horizon" json:"-"`
	// History is how many windows linear fits (default 30).
	History int `yaml:"history" json:"history,omitempty"`
	// Alpha and Beta are holt's level and trend smoothing factors in
	// (0, 1] (defaults 0.5 and 0.3).
	Alpha float64 `yaml:"alpha" json:"alpha,omitempty"`
	Beta  float64 `yaml:"beta" json:"beta,omitempty"`
	// MinSamples is the warm-up: a series with fewer windows never fires
	// (default 10).
	MinSamples int `yaml:"min_samples" json:"min_samples,omitempty"`
}

// Forecast is what a predict rule's alert carries: where the series is
// heading and how good its forecasts have been.
type Forecast struct {
	// Value is the forecast at the horizon; ETA how long until the
	// forecast crosses the threshold (0: it already has; negative: not
	// within the horizon).
	Value float64       `json:"value"`
	ETA   time.Duration `json:"eta"`
	// Error is the root mean square of the one-window-ahead forecast
	// errors so far, in the field's unit.
	Error float64 `json:"error"`
	// Slope is the trend per second.
	Slope float64 `json:"slope_per_second"`
}

// predictor forecasts one series. Windows are taken as evenly spaced; the
// step is learned from their event times.
type predictor struct {
	cfg *PredictConfig
	n   int
	// holt
	level, trend float64
	// linear: ring of the last History (t, v)
	ts, vs []float64
	next   int
	// step is the mean spacing of windows (seconds), last the previous
	// window's time, both relative to origin (the first window's time,
	// keeping the least-squares sums well-conditioned).
	step, last, origin float64
	// sse sums squared one-step errors over n-1 forecasts.
	sse float64
}

func newPredictor(cfg *PredictConfig) *predictor { return &predictor{cfg: cfg} }

// forecast returns the value h seconds after the last window, and the
// slope per second.
func (p *predictor) forecast(h float64) (float64, float64) {
	if p.cfg.Method == "linear" {
		slope, icept := p.fit()
		return icept + slope*(p.last+h), slope
	}
	if p.step <= 0 {
		return p.level, 0
	}
	perSec := p.trend / p.step
	return p.level + perSec*h, perSec
}

// fit returns the least-squares slope and intercept of the kept points.
func (p *predictor) fit() (slope, icept float64) {
	n := float64(len(p.ts))
	if n == 0 {
		return 0, 0
	}
	var st, sv, stt, stv float64
	for i, t := range p.ts {
		st, sv, stt, stv = st+t, sv+p.vs[i], stt+t*t, stv+t*p.vs[i]
	}
	den := n*stt - st*st
	if den == 0 {
		return 0, sv / n
	}
	slope = (n*stv - st*sv) / den
	return slope, (sv - slope*st) / n
}

// observe learns v at time t and returns the forecast state.
func (p *predictor) observe(t time.Time, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if p.n == 0 {
		p.origin = float64(t.UnixNano()) / 1e9
	}
	sec := float64(t.UnixNano())/1e9 - p.origin
	if p.n > 0 {
		dt := sec - p.last
		if dt <= 0 {
			return // not after the last window: a repeat
		}
		if f, _ := p.forecast(dt); p.n >= 2 {
			p.sse += (v - f) * (v - f)
		}
		if p.step == 0 {
			p.step = dt
		} else {
			p.step += (dt - p.step) / float64(min(p.n, 20))
		}
	}
	if p.cfg.Method == "linear" {
		if len(p.ts) < p.cfg.History {
			p.ts, p.vs = append(p.ts, sec), append(p.vs, v)
		} else {
			p.ts[p.next], p.vs[p.next] = sec, v
			p.next = (p.next + 1) % len(p.ts)
		}
	} else {
		switch p.n {
		case 0:
			p.level = v
		case 1:
			p.trend, p.level = v-p.level, v
		default:
			prev := p.level
			p.level = p.cfg.Alpha*v + (1-p.cfg.Alpha)*(p.level+p.trend)
			p.trend = p.cfg.Beta*(p.level-prev) + (1-p.cfg.Beta)*p.trend
		}
	}
	p.last = sec
	p.n++
}

// predict evaluates the rule's condition on what was learned: whether the
// forecast crosses the threshold within the horizon.
func (p *predictor) predict(r *Rule) (bool, Forecast) {
	h := r.Predict.Horizon.D().Seconds()
	at, slope := p.forecast(h)
	now, _ := p.forecast(0)
	f := Forecast{Value: at, Slope: slope, ETA: -1}
	if p.n > 2 {
		f.Error = math.Sqrt(p.sse / float64(p.n-2))
	}
	if p.n < r.Predict.MinSamples {
		return false, f
	}
	th := *r.Threshold
	switch {
	case compare(r.Op, now, th):
		f.ETA = 0
	case compare(r.Op, at, th) && slope != 0:
		f.ETA = time.Duration((th - now) / slope * float64(time.Second)).Round(time.Second)
	}
	return f.ETA >= 0, f
}

func (r *Rule) validatePredict(v *validator, p []any) {
	at := func(k string) []any { return append(append([]any{}, p...), k) }
	if r.Predict == nil {
		v.addf(p, "required for a predict rule (horizon at least)")
		return
	}
	c := r.Predict
	if c.Method == "" {
		c.Method = "holt"
	}
	if c.Method != "holt" && c.Method != "linear" {
		v.addf(at("method"), "%q is not holt or linear", c.Method)
	}
	if c.Horizon <= 0 || c.Horizon.D() > 7*24*time.Hour {
		v.addf(at("horizon"), "a positive duration up to 168h is required")
	}
	if c.History == 0 {
		c.History = 30
	}
	if c.History < 2 || c.History > 10_000 {
		v.addf(at("history"), "must be between 2 and 10000")
	}
	if c.Alpha == 0 {
		c.Alpha = 0.5
	}
	if c.Beta == 0 {
		c.Beta = 0.3
	}
	if c.Alpha <= 0 || c.Alpha > 1 {
		v.addf(at("alpha"), "must be in (0, 1]")
	}
	if c.Beta <= 0 || c.Beta > 1 {
		v.addf(at("beta"), "must be in (0, 1]")
	}
	if c.MinSamples == 0 {
		c.MinSamples = 10
	}
	if c.MinSamples < 3 || c.MinSamples > 10_000 {
		v.addf(at("min_samples"), "must be between 3 and 10000")
	}
}

// BacktestResult is what a predict rule would have done for one series
// over stored history, next to the plain threshold rule with the same
// match, field, op, threshold and for.
type BacktestResult struct {
	Labels Labels
	// Fired is when the predict rule first fired (zero: never), with the
	// forecast it fired on; ThresholdFired when the threshold rule did.
	Fired          time.Time
	Forecast       Forecast
	ThresholdFired time.Time
	// Lead is ThresholdFired - Fired when both fired.
	Lead time.Duration
}

// Backtest runs the predict rule r over windows (stored history, any
// order; the clock is their event time) and reports, per series, when it
// would have fired and how far ahead of the threshold rule.
func Backtest(r *Rule, windows []*events.AggregateEvent) []BacktestResult {
	plain := *r
	plain.Kind, plain.Predict = KindThreshold, nil
	pe, te := NewEngine([]*Rule{r}), NewEngine([]*Rule{&plain})
	ws := slices.Clone(windows)
	slices.SortStableFunc(ws, func(a, b *events.AggregateEvent) int { return a.WindowEnd.Compare(b.WindowEnd) })
	res := map[string]*BacktestResult{}
	get := func(a *Alert) *BacktestResult {
		br := res[a.Fingerprint]
		if br == nil {
			br = &BacktestResult{Labels: a.Labels}
			res[a.Fingerprint] = br
		}
		return br
	}
	for _, w := range ws {
		now := w.WindowEnd
		for _, t := range append(pe.Observe(w, now), pe.Tick(now)...) {
			if br := get(t.Alert); t.To == StateFiring && br.Fired.IsZero() {
				br.Fired = now
				if t.Alert.Forecast != nil {
					br.Forecast = *t.Alert.Forecast
				}
			}
		}
		for _, t := range append(te.Observe(w, now), te.Tick(now)...) {
			if br := get(t.Alert); t.To == StateFiring && br.ThresholdFired.IsZero() {
				br.ThresholdFired = now
			}
		}
	}
	out := make([]BacktestResult, 0, len(res))
	for _, fp := range slices.Sorted(maps.Keys(res)) {
		br := res[fp]
		if !br.Fired.IsZero() && !br.ThresholdFired.IsZero() {
			br.Lead = br.ThresholdFired.Sub(br.Fired)
		}
		out = append(out, *br)
	}
	return out
}
