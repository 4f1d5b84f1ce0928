package alerting

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jetmon/jetmon/internal/redact"
)

func (r *Rule) validateAnomaly(v *validator, p []any) {
	if r.Anomaly == nil {
		r.Anomaly = &AnomalyConfig{}
	}
	a := r.Anomaly
	at := func(k string) []any { return append(append([]any{}, p...), k) }
	if a.Method == "" {
		a.Method = "mad"
	}
	if a.Method != "mad" && a.Method != "ewma" {
		v.addf(at("method"), "%q is not mad or ewma", a.Method)
	}
	if a.K == 0 {
		a.K = 3
	}
	if a.K < 0 {
		v.addf(at("k"), "must be positive")
	}
	if a.MinSamples == 0 {
		a.MinSamples = 20
	}
	if a.MinSamples < 2 {
		v.addf(at("min_samples"), "must be at least 2")
	}
	if a.History == 0 {
		a.History = 100
	}
	if a.History < a.MinSamples && a.Method == "mad" {
		v.addf(at("history"), "%d keeps fewer values than min_samples %d", a.History, a.MinSamples)
	}
	if a.Alpha == 0 {
		a.Alpha = 0.1
	}
	if a.Alpha <= 0 || a.Alpha > 1 {
		v.addf(at("alpha"), "must be in (0, 1]")
	}
	switch a.Direction {
	case "":
		a.Direction = "up"
	case "up", "down", "both":
	default:
		v.addf(at("direction"), "%q is not up, down or both", a.Direction)
	}
	if a.MinDeviation < 0 {
		v.addf(at("min_deviation"), "must not be negative")
	}
}

func (r *Receiver) validate(v *validator, p []any) {
	at := func(k string) []any { return append(append([]any{}, p...), k) }
	if r.Name == "" {
		v.addf(at("name"), "required")
	}
	if r.Log == nil && r.Webhook == nil && r.Alertmanager == nil && !r.hasNative() && !v.allowEmptyReceivers {
		v.addf(p, "receiver %q has no target (log, webhook, alertmanager, slack, pagerduty, email or teams)", r.Name)
	}
	r.validateNative(v, p)
	if r.Webhook != nil {
		if err := checkURL(r.Webhook.URL); err != nil {
			v.addf(append(at("webhook"), "url"), "%v", err)
		}
	}
	if r.Alertmanager != nil {
		if err := checkURL(r.Alertmanager.URL); err != nil {
			v.addf(append(at("alertmanager"), "url"), "%v", err)
		}
	}
}

func checkURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return fmt.Errorf("%q is not an http(s) URL", redact.URL(s))
	}
	return nil
}

func (r *Route) validate(v *validator, p []any, receivers map[string]*Receiver, root bool) {
	at := func(k string) []any { return append(append([]any{}, p...), k) }
	if root && r.Receiver == "" {
		v.addf(at("receiver"), "the root route needs a receiver")
	}
	if r.Receiver != "" && receivers[r.Receiver] == nil {
		v.addf(at("receiver"), "no receiver is named %q", r.Receiver)
	}
	if root && len(r.Matchers) > 0 {
		v.addf(at("matchers"), "the root route matches every alert; put matchers on child routes")
	}
	for i, l := range r.GroupBy {
		if l != "..." && !labelName.MatchString(l) {
			v.addf(append(at("group_by"), i), "%q is not a label name", l)
		}
	}
	for _, d := range []struct {
		k string
		d *Duration
	}{{"group_wait", r.GroupWait}, {"group_interval", r.GroupInterval}, {"repeat_interval", r.RepeatInterval}} {
		if d.d != nil && *d.d < 0 {
			v.addf(at(d.k), "must not be negative")
		}
	}
	if r.GroupInterval != nil && *r.GroupInterval == 0 {
		v.addf(at("group_interval"), "must be positive")
	}
	if r.RepeatInterval != nil && *r.RepeatInterval == 0 {
		v.addf(at("repeat_interval"), "must be positive")
	}
	var err error
	if r.matchers, err = NewMatchers(r.Matchers); err != nil {
		v.addf(at("matchers"), "%v", err)
	}
	for i, c := range r.Routes {
		if c == nil {
			v.addf(append(at("routes"), i), "empty route")
			continue
		}
		c.validate(v, append(at("routes"), i), receivers, false)
	}
}
