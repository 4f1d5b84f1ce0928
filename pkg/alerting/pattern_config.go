package alerting

import (
	"path"
	"slices"
	"strings"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Bounds of pattern rules' settings: past them a rules file is refused.
const (
	maxPatternWithin = 7 * 24 * time.Hour
	maxPatternKeys   = 10_000_000
	maxStepCount     = 10_000
	maxStepTypes     = 32
)

var keyFields = []string{"context_id", "trace_id", "source", "component", "operation"}

func (r *Rule) validatePattern(v *validator, p []any) {
	at := func(ks ...any) []any { return append(append([]any{}, p...), ks...) }
	if r.Match != (Match{}) {
		v.addf(at("match"), "not used by a %s rule (its steps select the events)", r.Kind)
	}
	if r.Field != "" {
		v.addf(at("field"), "not used by a %s rule", r.Kind)
	}
	if r.Key == "" {
		r.Key = "source"
		if r.Kind == KindAbsence {
			r.Key = "context_id"
		}
	}
	if name, ok := strings.CutPrefix(r.Key, "attributes."); ok {
		if !labelName.MatchString(name) {
			v.addf(at("key"), "%q is not a valid attribute name", name)
		}
	} else if !slices.Contains(keyFields, r.Key) {
		v.addf(at("key"), "%q is not one of context_id, trace_id, source, component, operation, attributes.<name>", r.Key)
	}
	if r.MaxKeys == 0 {
		r.MaxKeys = DefaultMaxKeys
	}
	if r.MaxKeys < 0 || r.MaxKeys > maxPatternKeys {
		v.addf(at("max_keys"), "must be between 1 and %d", maxPatternKeys)
	}
	step := func(name string, s *PatternStep, counted bool) {
		sp := at(name)
		if s == nil {
			v.addf(sp, "required for a %s rule", r.Kind)
			return
		}
		if len(s.Types) == 0 || len(s.Types) > maxStepTypes {
			v.addf(append(sp, "types"), "1 to %d event-type patterns required", maxStepTypes)
		}
		for i, t := range s.Types {
			if err := events.ValidatePattern(t); err != nil {
				v.addf(append(sp, "types", i), "%v", err)
			}
		}
		if _, err := path.Match(s.Source, ""); err != nil {
			v.addf(append(sp, "source"), "%q is not a valid glob", s.Source)
		}
		if !counted {
			if s.Count != 0 || s.Within != 0 {
				v.addf(sp, "count and within are only for a sequence rule's first step")
			}
			s.Count = 1
			return
		}
		if s.Count == 0 {
			s.Count = 1
		}
		if s.Count < 1 || s.Count > maxStepCount {
			v.addf(append(sp, "count"), "must be between 1 and %d", maxStepCount)
		}
		if s.Count > 1 && (s.Within <= 0 || s.Within.D() > maxPatternWithin) {
			v.addf(append(sp, "within"), "a positive duration up to %s is required with count", maxPatternWithin)
		}
	}
	within := func(k string, d Duration) {
		if d <= 0 || d.D() > maxPatternWithin {
			v.addf(at(k), "a positive duration up to %s is required for a %s rule", maxPatternWithin, r.Kind)
		}
	}
	switch r.Kind {
	case KindAbsence, KindSequence:
		step("first", r.First, r.Kind == KindSequence)
		step("then", r.Then, false)
		within("within", r.Within)
		if r.Numerator != nil || r.Denominator != nil {
			v.addf(at("numerator"), "numerator and denominator are for ratio rules")
		}
		if r.For != 0 {
			v.addf(at("for"), "not used by a %s rule: a match is an instant (keep_firing_for says how long it fires)", r.Kind)
		}
		if r.KeepFiringFor == 0 {
			r.KeepFiringFor = Duration(DefaultPatternKeepFiring)
		}
	case KindRatio:
		step("numerator", r.Numerator, false)
		step("denominator", r.Denominator, false)
		within("window", r.Window)
		if r.First != nil || r.Then != nil || r.Within != 0 {
			v.addf(at("first"), "first, then and within are for absence and sequence rules")
		}
		if r.MinCount < 0 {
			v.addf(at("min_count"), "must not be negative")
		}
	}
}

// Inputs returns the event patterns the rule reads, sorted (one for
// threshold, anomaly, health and rate rules; a pattern rule's step types).
func (r *Rule) Inputs() []string {
	if !isPattern(r.Kind) {
		return []string{r.Input()}
	}
	var out []string
	for _, s := range r.steps() {
		out = append(out, s.Types...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// readsOn reports whether a pattern rule takes an event of type t
// delivered for the input pattern input: only on the first of its inputs
// that matches t, so that overlapping subscriptions never feed it twice.
func (r *Rule) readsOn(input string, t events.Type) bool {
	if input == "" {
		return true
	}
	for _, in := range r.inputs {
		if events.Match(in, t) {
			return in == input
		}
	}
	return false
}
