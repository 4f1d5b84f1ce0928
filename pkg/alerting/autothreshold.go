package alerting

import (
	"bytes"
	"context"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jetmon/jetmon/pkg/events"
)

// AutoThreshold configures a threshold rule written `threshold: auto`: the
// threshold of each series is learned from its stored history and
// re-learned on a schedule.
type AutoThreshold struct {
	// Method is mad (median + k·1.4826·MAD, the default; median − … for
	// op < and <=) or quantile.
	Method   string  `yaml:"method" json:"method,omitempty"`
	K        float64 `yaml:"k" json:"k,omitempty"`               // mad: default 3
	Quantile float64 `yaml:"quantile" json:"quantile,omitempty"` // quantile: in (0, 1), default 0.99
	// History is how much stored history is learned from (default 24h);
	// Relearn how often (default 1h).
	History Duration `yaml:"history" json:"-"`
	Relearn Duration `yaml:"relearn" json:"-"`
	// Floor and Ceiling bound a learned threshold (optional).
	Floor   *float64 `yaml:"floor" json:"floor,omitempty"`
	Ceiling *float64 `yaml:"ceiling" json:"ceiling,omitempty"`
	// MinSamples is the fewest windows a series needs to get a threshold
	// (default 20); until then it does not fire.
	MinSamples int `yaml:"min_samples" json:"min_samples,omitempty"`
}

// autoSentinel is what `auto` is read as: the same length, so that columns
// and lines of errors stay right.
const autoSentinel = ".nan"

// markAuto finds every rules[i].threshold written as auto, rewrites it in
// data to a NaN the decoder accepts, and returns the indexes.
func markAuto(root *yaml.Node, data []byte) ([]byte, map[int]bool) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	var rules *yaml.Node
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "rules" {
				rules = n.Content[i+1]
			}
		}
	}
	if rules == nil || rules.Kind != yaml.SequenceNode {
		return data, nil
	}
	auto := map[int]bool{}
	data = bytes.Clone(data) // the caller's bytes stay as they were
	lines := bytes.SplitAfter(data, []byte("\n"))
	for idx, r := range rules.Content {
		if r.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(r.Content); i += 2 {
			v := r.Content[i+1]
			if r.Content[i].Value != "threshold" || v.Kind != yaml.ScalarNode || v.Value != "auto" || v.Line < 1 || v.Line > len(lines) {
				continue
			}
			l := lines[v.Line-1]
			col := v.Column - 1
			width := 4
			if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				width = 6
			}
			if col < 0 || col+width > len(l) {
				continue
			}
			if !bytes.Contains(l[col:col+width], []byte("auto")) {
				continue
			}
			copy(l[col:], autoSentinel+"      "[:width-4])
			auto[idx] = true
		}
	}
	if len(auto) == 0 {
		return data, nil
	}
	return bytes.Join(lines, nil), auto
}

func (r *Rule) validateAuto(v *validator, p []any) {
	at := func(k string) []any { return append(append([]any{}, p...), "auto", k) }
	if r.Kind != KindThreshold {
		v.addf(append(append([]any{}, p...), "threshold"), "auto is only for threshold rules")
		return
	}
	if r.Recover != nil {
		v.addf(append(append([]any{}, p...), "recover"), "not used with threshold: auto")
	}
	if r.Auto == nil {
		r.Auto = &AutoThreshold{}
	}
	a := r.Auto
	if a.Method == "" {
		a.Method = "mad"
	}
	if a.Method != "mad" && a.Method != "quantile" {
		v.addf(at("method"), "%q is not mad or quantile", a.Method)
	}
	if a.K == 0 {
		a.K = 3
	}
	if a.K < 0 || a.K > 100 {
		v.addf(at("k"), "must be between 0 and 100")
	}
	if a.Quantile == 0 {
		a.Quantile = 0.99
	}
	if a.Quantile <= 0 || a.Quantile >= 1 {
		v.addf(at("quantile"), "must be in (0, 1)")
	}
	if a.History == 0 {
		a.History = Duration(24 * time.Hour)
	}
	if a.History < 0 || a.History.D() > 90*24*time.Hour {
		v.addf(at("history"), "must be positive, up to 90 days")
	}
	if a.Relearn == 0 {
		a.Relearn = Duration(time.Hour)
	}
	if a.Relearn.D() < time.Minute {
		v.addf(at("relearn"), "must be at least 1m")
	}
	if a.MinSamples == 0 {
		a.MinSamples = 20
	}
	if a.MinSamples < 2 {
		v.addf(at("min_samples"), "must be at least 2")
	}
	for _, b := range []struct {
		k string
		f *float64
	}{{"floor", a.Floor}, {"ceiling", a.Ceiling}} {
		if b.f != nil && (math.IsNaN(*b.f) || math.IsInf(*b.f, 0)) {
			v.addf(at(b.k), "must be a finite number")
		}
	}
	if a.Floor != nil && a.Ceiling != nil && *a.Floor > *a.Ceiling {
		v.addf(at("floor"), "%s is above ceiling %s", fmtNum(*a.Floor), fmtNum(*a.Ceiling))
	}
}

// learn returns the threshold learned from values, or false with too few.
func (a *AutoThreshold) learn(values []float64, op string) (float64, bool) {
	vs := slices.DeleteFunc(slices.Clone(values), func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
	if len(vs) < a.MinSamples {
		return 0, false
	}
	var th float64
	if a.Method == "quantile" {
		slices.Sort(vs)
		q := a.Quantile
		if op[0] == '<' {
			q = 1 - q
		}
		pos := q * float64(len(vs)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(vs)-1)
		th = vs[lo] + (vs[hi]-vs[lo])*(pos-float64(lo))
	} else {
		med, scale := medianMAD(vs)
		if op[0] == '<' {
			th = med - a.K*scale
		} else {
			th = med + a.K*scale
		}
	}
	if a.Floor != nil {
		th = max(th, *a.Floor)
	}
	if a.Ceiling != nil {
		th = min(th, *a.Ceiling)
	}
	return th, true
}

// LearnedThreshold is a series' learned threshold.
type LearnedThreshold struct {
	Rule      string    `json:"rule"`
	Labels    Labels    `json:"labels"`
	Threshold float64   `json:"threshold"`
	Previous  *float64  `json:"previous,omitempty"`
	Samples   int       `json:"samples"`
	LearnedAt time.Time `json:"learned_at"`
}

// Learn computes the thresholds of r's series (a threshold rule with
// threshold: auto) from history, without applying them.
func Learn(r *Rule, history []*events.AggregateEvent, now time.Time) []LearnedThreshold {
	series := map[string][]float64{}
	labels := map[string]Labels{}
	for _, w := range history {
		s, ok := r.sampleOf(w)
		if !ok {
			continue
		}
		l := r.labels(s.series.labels())
		fp := l.Fingerprint()
		series[fp] = append(series[fp], s.value)
		labels[fp] = l
	}
	var out []LearnedThreshold
	for _, fp := range slices.Sorted(maps.Keys(series)) {
		if th, ok := r.Auto.learn(series[fp], r.Op); ok {
			out = append(out, LearnedThreshold{Rule: r.Name, Labels: labels[fp], Threshold: th, Samples: len(series[fp]), LearnedAt: now})
		}
	}
	return out
}

// SetLearned applies learned thresholds and returns those that changed
// (with Previous set when there was one).
func (e *Engine) SetLearned(ls []LearnedThreshold) []LearnedThreshold {
	var changed []LearnedThreshold
	for _, l := range ls {
		fp := l.Labels.Fingerprint()
		prev, had := e.learned[fp]
		if had && prev.Threshold == l.Threshold {
			e.learned[fp] = LearnedThreshold{Rule: l.Rule, Labels: l.Labels, Threshold: l.Threshold, Samples: l.Samples, LearnedAt: l.LearnedAt, Previous: prev.Previous}
			continue
		}
		if had {
			p := prev.Threshold
			l.Previous = &p
		}
		e.learned[fp] = l
		changed = append(changed, l)
	}
	return changed
}

// Learned returns the learned thresholds, by series fingerprint.
func (e *Engine) Learned() map[string]LearnedThreshold { return maps.Clone(e.learned) }

// HistoryFunc reads the stored aggregated windows from since on, for
// learning thresholds.
type HistoryFunc func(ctx context.Context, since time.Time) ([]*events.AggregateEvent, error)

// learnLoop re-learns the auto thresholds now and on their schedule, until
// ctx ends. It runs on s.bg.
func (s *Service) learnLoop(ctx context.Context) {
	for {
		var rules []*Rule
		if err := s.do(ctx, func() {
			for _, r := range s.cfg.Rules {
				if r.Auto != nil {
					rules = append(rules, r)
				}
			}
		}); err != nil {
			return
		}
		every := time.Hour
		for _, r := range rules {
			every = min(every, r.Auto.Relearn.D())
			hist, err := s.opts.History(ctx, time.Now().Add(-r.Auto.History.D()))
			if err != nil {
				s.log.Warn().Err(err).Str("rule", r.Name).Msg("cannot read history to learn thresholds")
				continue
			}
			ls := Learn(r, hist, time.Now())
			if err := s.do(ctx, func() {
				for _, c := range s.engine.SetLearned(ls) {
					s.publishLearned(ctx, c)
				}
			}); err != nil {
				return
			}
		}

		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.relearn: // reloaded: the rules may have changed
			t.Stop()
		}
	}
}

// ThresholdComponent is the config.component of the
// monitoring.config.changed events that announce a learned threshold.
const ThresholdComponent = "alertmanager.threshold"

// publishLearned announces a changed threshold as monitoring.config.changed.
func (s *Service) publishLearned(ctx context.Context, l LearnedThreshold) {
	s.log.Info().Str("rule", l.Rule).Str("labels", l.Labels.String()).Float64("threshold", l.Threshold).Msg("threshold learned")
	if s.opts.Bus == nil {
		return
	}
	ev := events.NewControlEvent(events.ConfigChanged, "jetmon-alertmanager")
	ev.Timestamp = l.LearnedAt.UTC()
	ev.Reason = "threshold learned from history"
	ev.Config = map[string]string{
		"component": ThresholdComponent, "rule": l.Rule, "series": l.Labels.String(),
		"threshold": strconv.FormatFloat(l.Threshold, 'g', -1, 64), "samples": strconv.Itoa(l.Samples),
	}
	if l.Previous != nil {
		ev.Config["previous"] = strconv.FormatFloat(*l.Previous, 'g', -1, 64)
	}
	if err := s.opts.Bus.Publish(ctx, ev); err != nil {
		s.m.publishErrors.Inc()
		s.log.Warn().Err(err).Msg("cannot publish threshold change")
	}
}

// Thresholds returns the learned thresholds of auto rules.
func (s *Service) Thresholds(ctx context.Context) ([]LearnedThreshold, error) {
	var out []LearnedThreshold
	err := s.do(ctx, func() {
		m := s.engine.Learned()
		for _, fp := range slices.Sorted(maps.Keys(m)) {
			out = append(out, m[fp])
		}
	})
	return out, err
}
