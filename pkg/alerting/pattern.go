package alerting

import (
	"container/heap"
	"slices"
	"strings"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Pattern rule kinds.
const (
	// KindAbsence fires for a key (e.g. a context_id) whose first event
	// (validation.started) is not followed by a then event
	// (validation.completed or validation.failed) within a time.
	KindAbsence = "absence"
	// KindSequence fires for a key whose first events (count of them
	// within first.within, e.g. five system.error in a minute) are
	// followed by a then event (health.component.failed) within a time.
	KindSequence = "sequence"
	// KindRatio compares numerator events per denominator events of a key
	// (failed per started) over a sliding window with a threshold.
	KindRatio = "ratio"
)

// DefaultMaxKeys is the default number of open keys a pattern rule holds.
const DefaultMaxKeys = 100_000

// DefaultPatternKeepFiring is how long an absence or sequence alert stays
// firing after its match when the rule sets no keep_firing_for: a match
// is an instant, and a notification needs the alert to last.
const DefaultPatternKeepFiring = 5 * time.Minute

// PatternStep selects the events of one step of a pattern rule.
type PatternStep struct {
	// Types are event-type patterns (NATS wildcards); an event of any of
	// them belongs to the step.
	Types []string `yaml:"types" json:"types"`
	// Source is a glob on the event's source (empty: any).
	Source string `yaml:"source" json:"source,omitempty"`
	// Count is how many events make the first step of a sequence rule
	// (default 1), all within Within.
	Count  int      `yaml:"count" json:"count,omitempty"`
	Within Duration `yaml:"within" json:"-"`
}

func (s *PatternStep) matches(md *events.Meta) bool {
	if s == nil {
		return false
	}
	for _, t := range s.Types {
		if events.Match(t, md.Type) {
			return s.Source == "" || glob(s.Source, md.Source)
		}
	}
	return false
}

// keyOf returns the value of the rule's key field in ev ("" if it has
// none): context_id, trace_id, source, component, operation or
// attributes.<name>.
func keyOf(field string, ev events.Event) string {
	md := ev.Metadata()
	switch field {
	case "context_id":
		return md.ContextID
	case "source":
		return md.Source
	case "trace_id":
		if md.TraceID.IsZero() {
			return ""
		}
		return md.TraceID.String()
	case "component":
		return componentOf(ev)
	case "operation":
		if p, ok := ev.(*events.PerformanceEvent); ok {
			return p.Operation
		}
		return ""
	}
	if name, ok := strings.CutPrefix(field, "attributes."); ok {
		return md.Attributes[name]
	}
	return ""
}

// openKey is the state of one key of an absence or sequence rule.
type openKey struct {
	key, source string
	// expires is when the key is given up: an absence rule's deadline
	// (the key fires then), a sequence rule's end of the wait for its
	// then event (the key is dropped then).
	expires time.Time
	idx     int // in the heap
	// firsts are a sequence rule's first-step event times (a ring of
	// count values), armed when they complete the step, at armedAt.
	firsts  []time.Time
	next    int
	armedAt time.Time
	// closed marks an absence rule's key whose then event came before any
	// first event; it is kept for within, then dropped without firing.
	closed bool
}

// keyHeap orders open keys by expiry.
type keyHeap []*openKey

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *keyHeap) Push(x any)        { k := x.(*openKey); k.idx = len(*h); *h = append(*h, k) }
func (h *keyHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return k
}

// ratioSeries counts the numerator and denominator events of one key.
type ratioSeries struct {
	key, source string
	num, den    *rateCounter
	last        time.Time
	idx         int // in the heap by last
}

// ratioHeap orders ratio series by their last event, oldest first.
type ratioHeap []*ratioSeries

func (h ratioHeap) Len() int           { return len(h) }
func (h ratioHeap) Less(i, j int) bool { return h[i].last.Before(h[j].last) }
func (h ratioHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *ratioHeap) Push(x any)        { s := x.(*ratioSeries); s.idx = len(*h); *h = append(*h, s) }

func (h *ratioHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

// addRatio adds a series, evicting the one idle longest at max_keys.
func (p *patternState) addRatio(s *ratioSeries) {
	if max := p.rule.MaxKeys; max > 0 && len(p.ratios) >= max {
		old := heap.Pop(&p.ratioByLast).(*ratioSeries)
		delete(p.ratios, old.key)
		p.evicted++
	}
	p.ratios[s.key] = s
	heap.Push(&p.ratioByLast, s)
	p.dirty = true
}

func (p *patternState) removeRatio(s *ratioSeries) {
	heap.Remove(&p.ratioByLast, s.idx)
	delete(p.ratios, s.key)
	p.dirty = true
}

// patternState is the state of one pattern rule.
type patternState struct {
	rule   *Rule
	open   map[string]*openKey
	byTime keyHeap
	ratios map[string]*ratioSeries
	// ratioByLast orders ratios for eviction.
	ratioByLast ratioHeap
	// evicted counts the keys dropped at max_keys.
	evicted uint64
	// dirty says the state changed since it was last saved.
	dirty bool
}

func newPatternState(r *Rule) *patternState {
	return &patternState{rule: r, open: map[string]*openKey{}, ratios: map[string]*ratioSeries{}}
}

// patternMatch is an alert-worthy outcome of a pattern rule for one key.
type patternMatch struct {
	key, source string
	value       float64
	at          time.Time // event time that identifies the episode
	cond        bool
}

// PatternKeyBytes bounds the memory an open key of an absence rule costs,
// its key string included up to 36 bytes (a UUID): the map entry, the
// key's struct and its heap slot (about 175 bytes measured). A sequence
// rule's key adds 24 bytes per first.count. A test holds 100 000 keys
// within it.
const PatternKeyBytes = 256

func (p *patternState) add(k *openKey) {
	p.dirty = true
	if max := p.rule.MaxKeys; max > 0 && len(p.open) >= max {
		old := heap.Pop(&p.byTime).(*openKey)
		delete(p.open, old.key)
		p.evicted++
	}
	p.open[k.key] = k
	heap.Push(&p.byTime, k)
}

func (p *patternState) remove(k *openKey) {
	p.dirty = true
	heap.Remove(&p.byTime, k.idx)
	delete(p.open, k.key)
}

// observe applies ev (whose metadata is md, event time at) and returns the
// matches it causes. It allocates nothing for an event no step selects.
func (p *patternState) observe(ev events.Event, md *events.Meta, at time.Time) (patternMatch, bool) {
	r := p.rule
	switch r.Kind {
	case KindAbsence:
		isFirst, isThen := r.First.matches(md), r.Then.matches(md)
		if !isFirst && !isThen {
			return patternMatch{}, false
		}
		key := keyOf(r.Key, ev)
		if key == "" {
			return patternMatch{}, false
		}
		k := p.open[key]
		switch {
		case k != nil && k.closed:
			// The then event came first (events of several subjects are
			// not ordered among themselves): a first event up to it is
			// the same unit of work, already complete.
		case k != nil && isThen:
			p.remove(k)
		case k == nil && isThen:
			p.add(&openKey{key: key, source: md.Source, expires: at.Add(r.Within.D()), closed: true})
		case k == nil && isFirst:
			p.add(&openKey{key: key, source: md.Source, expires: at.Add(r.Within.D())})
		}
	case KindSequence:
		isFirst, isThen := r.First.matches(md), r.Then.matches(md)
		if !isFirst && !isThen {
			return patternMatch{}, false
		}
		key := keyOf(r.Key, ev)
		if key == "" {
			return patternMatch{}, false
		}
		k := p.open[key]
		if isThen && k != nil && !k.armedAt.IsZero() && !at.Before(k.armedAt) && !at.After(k.armedAt.Add(r.Within.D())) {
			p.remove(k)
			return patternMatch{key: key, source: k.source, value: float64(r.First.Count), at: at, cond: true}, true
		}
		if !isFirst {
			return patternMatch{}, false
		}
		if k == nil {
			k = &openKey{key: key, source: md.Source, firsts: make([]time.Time, r.First.Count)}
			k.expires = at.Add(r.First.Within.D())
			p.add(k)
		}
		k.firsts[k.next] = at
		p.dirty = true
		k.next = (k.next + 1) % len(k.firsts)
		if oldest := k.firsts[k.next]; !oldest.IsZero() && at.Sub(oldest) <= r.First.Within.D() {
			k.armedAt = at // the ring's oldest, once full, is within the window
		}
		exp := at.Add(r.First.Within.D())
		if !k.armedAt.IsZero() {
			exp = maxTime(exp, k.armedAt.Add(r.Within.D()))
		}
		if !exp.Equal(k.expires) {
			k.expires = exp
			heap.Fix(&p.byTime, k.idx)
		}
	case KindRatio:
		isNum, isDen := r.Numerator.matches(md), r.Denominator.matches(md)
		if !isNum && !isDen {
			return patternMatch{}, false
		}
		key := keyOf(r.Key, ev)
		if key == "" {
			return patternMatch{}, false
		}
		s := p.ratios[key]
		if s == nil {
			s = &ratioSeries{key: key, source: md.Source, num: newRateCounter(r.Window.D()), den: newRateCounter(r.Window.D()), last: at}
			p.addRatio(s)
		}
		if isNum {
			s.num.add(at, 1)
		}
		if isDen {
			s.den.add(at, 1)
		}
		if at.After(s.last) {
			s.last = at
			heap.Fix(&p.ratioByLast, s.idx)
		}
		p.dirty = true
		return patternMatch{key: key, source: s.source, at: at}, true
	}
	return patternMatch{}, false
}

// ratio returns the numerator/denominator ratio of s at now, and whether
// the denominator reached min_count.
func (r *Rule) ratio(s *ratioSeries, now time.Time) (float64, bool) {
	den := s.den.sum(now)
	if den < float64(max(r.MinCount, 1)) {
		return 0, false
	}
	return s.num.sum(now) / den, true
}

// expire pops the keys whose time is up at now: an absence rule's
// overdue keys are returned as matches; a sequence rule's are dropped.
func (p *patternState) expire(now time.Time) []patternMatch {
	var out []patternMatch
	for len(p.byTime) > 0 && !p.byTime[0].expires.After(now) {
		k := heap.Pop(&p.byTime).(*openKey)
		delete(p.open, k.key)
		p.dirty = true
		if p.rule.Kind == KindAbsence && !k.closed {
			out = append(out, patternMatch{key: k.key, source: k.source, value: p.rule.Within.D().Seconds(), at: k.expires, cond: true})
		}
	}
	return out
}

// sweepRatios drops ratio series without events for the window, unless
// their alert is still there.
func (p *patternState) sweepRatios(now time.Time, alerts map[string]*Alert, e *Engine) {
	for k, s := range p.ratios {
		if now.Sub(s.last) <= p.rule.Window.D() {
			continue
		}
		if alerts[e.patternFingerprint(p.rule, patternMatch{key: k, source: s.source})] == nil {
			p.removeRatio(s)
		}
	}
}

// next returns when expire next has something to do, or the zero time.
func (p *patternState) next() time.Time {
	if len(p.byTime) == 0 {
		return time.Time{}
	}
	return p.byTime[0].expires
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// patternLabels returns the series labels of a key of r.
func (r *Rule) patternLabels(m patternMatch) Labels {
	l := Labels{"source": m.source}
	if r.Key != "source" {
		l[labelOfKey(r.Key)] = m.key
	}
	return l
}

// labelOfKey turns a key field into a label name (attributes.x → x).
func labelOfKey(field string) string {
	if name, ok := strings.CutPrefix(field, "attributes."); ok {
		return name
	}
	return field
}

// isPattern reports whether kind is a pattern kind.
func isPattern(kind string) bool {
	return kind == KindAbsence || kind == KindSequence || kind == KindRatio
}

// steps returns the steps of a pattern rule.
func (r *Rule) steps() []*PatternStep {
	return slices.DeleteFunc([]*PatternStep{r.First, r.Then, r.Numerator, r.Denominator}, func(s *PatternStep) bool { return s == nil })
}
