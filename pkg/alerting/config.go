// Package alerting is jetmon's alert manager as a library: a rules file
// (threshold — fixed or learned from history with threshold: auto —,
// health, rate, anomaly and predict rules over aggregated windows and
// health events, and absence, sequence and ratio pattern rules over raw
// events keyed by a field; with for, keep_firing_for and hysteresis), an
// [Engine] that moves alerts through inactive → pending → firing →
// resolved, a [Dispatcher] that groups, inhibits and silences them,
// receivers (log, Alertmanager webhook v4 or a custom JSON body, Prometheus
// Alertmanager API v2, Slack, PagerDuty Events v2, e-mail over SMTP,
// Microsoft Teams) with Alertmanager-style templates, retries that honour
// Retry-After and a circuit breaker each, and a [Store] (JetStream KV and
// object store) that lets several instances share state and notify each
// alert exactly once. [Service] runs it all on an event bus; [Backtest]
// replays history through a predict rule.
package alerting

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jetmon/jetmon/pkg/events"
)

// Config is a rules file: the alerting rules, the notification route tree,
// the receivers and the inhibition rules.
type Config struct {
	Rules        []*Rule        `yaml:"rules"`
	Route        *Route         `yaml:"route"`
	Receivers    []*Receiver    `yaml:"receivers"`
	InhibitRules []*InhibitRule `yaml:"inhibit_rules"`

	receivers map[string]*Receiver
}

// Rule kinds.
const (
	// KindThreshold compares a field of aggregated windows
	// (performance.metric.aggregated) with a fixed threshold.
	KindThreshold = "threshold"
	// KindHealth fires while a component's health is at or worse than a
	// status (health.component.* events).
	KindHealth = "health"
	// KindRate counts matching events (e.g. system.error) over a sliding
	// window and compares the count with a threshold.
	KindRate = "rate"
	// KindAnomaly compares a field of aggregated windows with a threshold
	// learned from the series' own history.
	KindAnomaly = "anomaly"
)

// Rule is one alerting rule. Every series the rule's Match selects is a
// separate alert, identified by its labels.
type Rule struct {
	// Name is the alert name (label alertname).
	Name string `yaml:"alert" json:"alert,omitempty"`
	// Kind is one of the Kind constants; default threshold.
	Kind  string `yaml:"kind" json:"kind,omitempty"`
	Match Match  `yaml:"match" json:"match"`
	// Field selects the value of an aggregated window: count, error_count,
	// error_rate, late_count, rate (events per second), sum, avg, min, max,
	// p50, p90, p95, p99.
	Field string `yaml:"field" json:"field,omitempty"`
	// Op compares value with threshold: >, >=, <, <= (default >).
	Op        string   `yaml:"op" json:"op,omitempty"`
	Threshold *float64 `yaml:"threshold" json:"threshold,omitempty"`
	// Recover is the recovery threshold (hysteresis): a firing condition
	// clears only once the value is back across it. Default: Threshold.
	Recover *float64 `yaml:"recover" json:"recover,omitempty"`
	// Status is the health status at or beyond which a health rule fires:
	// degraded or failed (default failed).
	Status string `yaml:"status" json:"status,omitempty"`
	// Window is the sliding window of a rate rule.
	Window Duration `yaml:"window" json:"-"`
	// For is how long the condition must hold before the alert fires.
	For Duration `yaml:"for" json:"-"`
	// KeepFiringFor keeps a firing alert firing this long after its
	// condition cleared.
	KeepFiringFor Duration `yaml:"keep_firing_for" json:"-"`
	// StaleAfter clears the condition of a series without new windows for
	// this long (threshold and anomaly rules; default 5m, negative: never).
	StaleAfter Duration       `yaml:"stale_after" json:"-"`
	Anomaly    *AnomalyConfig `yaml:"anomaly" json:"anomaly,omitempty"`
	Predict    *PredictConfig `yaml:"predict" json:"predict,omitempty"`
	// Auto configures the learning of a threshold rule written
	// `threshold: auto` (see [AutoThreshold]).
	Auto *AutoThreshold `yaml:"auto" json:"auto,omitempty"`
	// Key names the field that ties a pattern rule's events together:
	// context_id (default for absence), source (default for sequence and
	// ratio), trace_id, component, operation or attributes.<name>.
	Key string `yaml:"key" json:"key,omitempty"`
	// First and Then are the steps of absence and sequence rules;
	// Numerator and Denominator those of ratio rules.
	First       *PatternStep `yaml:"first" json:"first,omitempty"`
	Then        *PatternStep `yaml:"then" json:"then,omitempty"`
	Numerator   *PatternStep `yaml:"numerator" json:"numerator,omitempty"`
	Denominator *PatternStep `yaml:"denominator" json:"denominator,omitempty"`
	// Within is how long after the first step the then step may come
	// (absence: must come; sequence: the first step's completion).
	Within Duration `yaml:"within" json:"-"`
	// MaxKeys bounds the open keys of a pattern rule (default
	// [DefaultMaxKeys]); past it the oldest key is evicted and counted.
	MaxKeys int `yaml:"max_keys" json:"max_keys,omitempty"`
	// MinCount is the fewest denominator events in the window for a ratio
	// rule to judge (default 1).
	MinCount    int               `yaml:"min_count" json:"min_count,omitempty"`
	Labels      map[string]string `yaml:"labels" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations" json:"annotations,omitempty"`

	annotations map[string]*template.Template
	inputs      []string // Inputs(), for the hot path
	// autoThreshold: the file says threshold: auto.
	autoThreshold bool
}

// Match selects the input of a rule. Every field is a glob (path.Match
// syntax); empty matches anything. Type is an event-type pattern with NATS
// wildcards: for threshold and anomaly rules the aggregated type (e.g.
// performance.operation.complete), for health rules default
// health.component.*, required for rate rules.
type Match struct {
	Type      string `yaml:"type" json:"type,omitempty"`
	Source    string `yaml:"source" json:"source,omitempty"`
	Operation string `yaml:"operation" json:"operation,omitempty"`
	Metric    string `yaml:"metric" json:"metric,omitempty"`
	Component string `yaml:"component" json:"component,omitempty"`
}

// AnomalyConfig configures the learned threshold of an anomaly rule.
type AnomalyConfig struct {
	// Method is mad (median ± k·MAD over the last History values, the
	// default) or ewma (exponentially weighted mean and deviation).
	Method string `yaml:"method" json:"method,omitempty"`
	// K is how many deviations from the center count as anomalous (default 3).
	K float64 `yaml:"k" json:"k,omitempty"`
	// MinSamples is the warm-up: a series with fewer values never fires
	// (default 20).
	MinSamples int `yaml:"min_samples" json:"min_samples,omitempty"`
	// History is how many values mad keeps (default 100).
	History int `yaml:"history" json:"history,omitempty"`
	// Alpha is the ewma smoothing factor in (0, 1] (default 0.1).
	Alpha float64 `yaml:"alpha" json:"alpha,omitempty"`
	// Direction is up (default), down or both.
	Direction string `yaml:"direction" json:"direction,omitempty"`
	// MinDeviation is the smallest deviation, in the field's unit, that may
	// fire, so that a perfectly steady series does not page on noise
	// (default 0: 1% of the center).
	MinDeviation float64 `yaml:"min_deviation" json:"min_deviation,omitempty"`
}

// Route is a node of the notification routing tree. A child route inherits
// every setting it does not set itself.
type Route struct {
	Receiver string `yaml:"receiver"`
	// GroupBy lists the labels alerts are grouped by; ["..."] groups by
	// every label (one notification per alert).
	GroupBy        []string          `yaml:"group_by"`
	GroupWait      *Duration         `yaml:"group_wait"`
	GroupInterval  *Duration         `yaml:"group_interval"`
	RepeatInterval *Duration         `yaml:"repeat_interval"`
	Matchers       map[string]string `yaml:"matchers"`
	Continue       bool              `yaml:"continue"`
	Routes         []*Route          `yaml:"routes"`

	matchers Matchers
}

// Receiver is a named set of notification targets.
type Receiver struct {
	Name         string              `yaml:"name"`
	Log          *LogConfig          `yaml:"log"`
	Webhook      *WebhookConfig      `yaml:"webhook"`
	Alertmanager *AlertmanagerConfig `yaml:"alertmanager"`
	Slack        *SlackConfig        `yaml:"slack"`
	PagerDuty    *PagerDutyConfig    `yaml:"pagerduty"`
	Email        *EmailConfig        `yaml:"email"`
	Teams        *TeamsConfig        `yaml:"teams"`
}

// LogConfig sends notifications to the process log.
type LogConfig struct {
	// SendResolved also logs resolved alerts (default true).
	SendResolved *bool `yaml:"send_resolved"`
}

// WebhookConfig posts the Prometheus Alertmanager webhook payload
// (version 4), or with Body a JSON document of the user's own.
type WebhookConfig struct {
	URL string `yaml:"url"`
	// BearerTokenFile holds a token sent as "Authorization: Bearer".
	BearerTokenFile string   `yaml:"bearer_token_file"`
	Timeout         Duration `yaml:"timeout"`
	SendResolved    *bool    `yaml:"send_resolved"`
	MaxAlerts       int      `yaml:"max_alerts"`
	// Body, if set, is a template over [TemplateData] whose output is
	// posted instead of the version 4 payload; it must be valid JSON
	// (use the json function for values: {"text": {{ .Status | json }}}),
	// else the notification fails without being sent.
	Body string `yaml:"body"`

	body *textTemplate
}

// AlertmanagerConfig forwards alerts to a Prometheus Alertmanager through
// its API v2 (POST /api/v2/alerts), so teams keep their own routing.
type AlertmanagerConfig struct {
	// URL is the Alertmanager's base URL, e.g. http://127.0.0.1:9093.
	URL          string   `yaml:"url"`
	Timeout      Duration `yaml:"timeout"`
	SendResolved *bool    `yaml:"send_resolved"`
}

// InhibitRule mutes alerts matching Target while an alert matching Source
// fires with the same values of the Equal labels.
type InhibitRule struct {
	SourceMatchers map[string]string `yaml:"source_matchers"`
	TargetMatchers map[string]string `yaml:"target_matchers"`
	Equal          []string          `yaml:"equal"`

	source, target Matchers
}

// Duration is a time.Duration written as "30s", "5m" or "1h30m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 30s, 5m, 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func durOr(d *Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.D()
}

// Defaults of the route settings, as in Prometheus Alertmanager.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
	DefaultStaleAfter     = 5 * time.Minute
)

// Load reads and validates a rules file; one larger than
// [MaxRulesFileSize] is refused without being read whole.
func Load(file string) (*Config, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, MaxRulesFileSize+1))
	if err != nil {
		return nil, err
	}
	return Parse(file, data)
}

// Parse parses and validates a rules file's contents; file names it in
// errors. Every problem found is reported, each as "file:line: path: reason".
func Parse(file string, data []byte) (*Config, error) { return parse(file, data, false) }

// ParseEmbedded is Parse for programs that add receiver targets in Go
// ([Options].Notify): receivers may have no target in the file.
func ParseEmbedded(file string, data []byte) (*Config, error) { return parse(file, data, true) }

// MaxRulesFileSize bounds a rules file: a larger one is refused unread.
const MaxRulesFileSize = 4 << 20

func parse(file string, data []byte, allowEmptyReceivers bool) (*Config, error) {
	if len(data) > MaxRulesFileSize {
		return nil, fmt.Errorf("%s: %d bytes, larger than the limit of %d", file, len(data), MaxRulesFileSize)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, lineErr(file, err))
	}
	data, auto := markAuto(&root, data)
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty rules file", file)
		}
		return nil, lineErr(file, err)
	}
	v := &validator{file: file, root: &root, allowEmptyReceivers: allowEmptyReceivers}
	for i := range auto {
		if i < len(cfg.Rules) && cfg.Rules[i] != nil {
			cfg.Rules[i].autoThreshold = true
		}
	}
	cfg.validate(v)
	if len(v.errs) > 0 {
		return nil, &ConfigError{Problems: v.errs}
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// lineErr rewrites the YAML library's "line N: ..." into "file:N: ...".
func lineErr(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var probs []string
	for l := range strings.SplitSeq(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if m := yamlLine.FindStringSubmatchIndex(l); m != nil && m[0] == 0 {
			probs = append(probs, file+":"+l[m[2]:m[3]]+": "+l[m[1]:])
		} else {
			probs = append(probs, file+": "+l)
		}
	}
	return &ConfigError{Problems: probs}
}

// ConfigError lists every problem found in a rules file.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

// validator collects problems with the line of the offending field.
type validator struct {
	allowEmptyReceivers bool
	file                string
	root                *yaml.Node
	errs                []string
}

// addf records a problem at the field path p (keys and indexes).
func (v *validator) addf(p []any, format string, args ...any) {
	line := lineOf(v.root, p)
	var b strings.Builder
	for i, k := range p {
		switch k := k.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		case string:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		}
	}
	v.errs = append(v.errs, fmt.Sprintf("%s:%d: %s: %s", v.file, line, b.String(), fmt.Sprintf(format, args...)))
}

// lineOf returns the line of the deepest node of path p that exists.
func lineOf(root *yaml.Node, p []any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, k := range p {
		var next *yaml.Node
		switch k := k.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						line = n.Content[i].Line
						next = n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

var (
	labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	fields    = map[string]bool{
		"count": true, "error_count": true, "error_rate": true, "late_count": true, "rate": true,
		"sum": true, "avg": true, "min": true, "max": true, "p50": true, "p90": true, "p95": true, "p99": true,
	}
	ops = map[string]bool{">": true, ">=": true, "<": true, "<=": true}
)

func (c *Config) validate(v *validator) {
	if len(c.Rules) == 0 {
		v.addf([]any{"rules"}, "no rules")
	}
	names := map[string]int{}
	for i, r := range c.Rules {
		p := []any{"rules", i}
		if r == nil {
			v.addf(p, "empty rule")
			continue
		}
		if prev, ok := names[r.Name]; ok && r.Name != "" {
			v.addf(append(p, "alert"), "alert %q is already defined by rules[%d]", r.Name, prev)
		}
		names[r.Name] = i
		r.validate(v, p)
	}
	c.receivers = map[string]*Receiver{}
	for i, r := range c.Receivers {
		p := []any{"receivers", i}
		if r == nil {
			v.addf(p, "empty receiver")
			continue
		}
		r.validate(v, p)
		if _, dup := c.receivers[r.Name]; dup {
			v.addf(append(p, "name"), "receiver %q is already defined", r.Name)
		}
		c.receivers[r.Name] = r
	}
	if c.Route == nil {
		if len(c.Receivers) > 1 {
			v.addf([]any{"route"}, "required when there is more than one receiver")
			return
		}
		c.Route = &Route{}
		if len(c.Receivers) == 1 {
			c.Route.Receiver = c.Receivers[0].Name
		} else {
			c.Route.Receiver = "log"
			c.receivers["log"] = &Receiver{Name: "log", Log: &LogConfig{}}
			c.Receivers = append(c.Receivers, c.receivers["log"])
		}
	}
	c.Route.validate(v, []any{"route"}, c.receivers, true)
	for i, ir := range c.InhibitRules {
		p := []any{"inhibit_rules", i}
		var err error
		if ir.source, err = NewMatchers(ir.SourceMatchers); err != nil {
			v.addf(append(p, "source_matchers"), "%v", err)
		}
		if ir.target, err = NewMatchers(ir.TargetMatchers); err != nil {
			v.addf(append(p, "target_matchers"), "%v", err)
		}
		if len(ir.SourceMatchers) == 0 || len(ir.TargetMatchers) == 0 {
			v.addf(p, "needs source_matchers and target_matchers")
		}
		for j, l := range ir.Equal {
			if !labelName.MatchString(l) {
				v.addf(append(p, "equal", j), "%q is not a label name", l)
			}
		}
	}
}

func (r *Rule) validate(v *validator, p []any) {
	at := func(k string) []any { return append(append([]any{}, p...), k) }
	if !labelName.MatchString(r.Name) {
		v.addf(at("alert"), "%q is not a valid alert name (letters, digits, _; not starting with a digit)", r.Name)
	}
	if r.Kind == "" {
		r.Kind = KindThreshold
	}
	if r.Op == "" {
		r.Op = ">"
	}
	if !ops[r.Op] {
		v.addf(at("op"), "%q is not one of >, >=, <, <=", r.Op)
	}
	for _, g := range []struct{ k, v string }{{"source", r.Match.Source}, {"operation", r.Match.Operation}, {"metric", r.Match.Metric}, {"component", r.Match.Component}} {
		if _, err := path.Match(g.v, ""); err != nil {
			v.addf(append(at("match"), g.k), "%q is not a valid glob", g.v)
		}
	}
	if r.Match.Type != "" {
		if err := events.ValidatePattern(r.Match.Type); err != nil {
			v.addf(append(at("match"), "type"), "%v", err)
		}
	}
	needThreshold := false
	switch r.Kind {
	case KindThreshold, KindAnomaly, KindPredict:
		if r.Match.Type == "" {
			r.Match.Type = "performance.>"
		}
		if !fields[r.Field] {
			v.addf(at("field"), "%q is not one of count, error_count, error_rate, late_count, rate, sum, avg, min, max, p50, p90, p95, p99", r.Field)
		}
		if r.StaleAfter == 0 {
			r.StaleAfter = Duration(DefaultStaleAfter)
		}
		switch r.Kind {
		case KindThreshold:
			needThreshold = true
		case KindPredict:
			needThreshold = true
			r.validatePredict(v, at("predict"))
		default:
			r.validateAnomaly(v, at("anomaly"))
		}
	case KindHealth:
		if r.Match.Type == "" {
			r.Match.Type = "health.component.*"
		}
		switch r.Status {
		case "":
			r.Status = events.StatusFailed
		case events.StatusDegraded, events.StatusFailed:
		default:
			v.addf(at("status"), "%q is not degraded or failed", r.Status)
		}
	case KindRate:
		if r.Match.Type == "" {
			v.addf(at("match"), "type is required for a rate rule (e.g. system.error)")
		}
		if r.Window <= 0 {
			v.addf(at("window"), "a positive window is required for a rate rule")
		}
		needThreshold = true
	case KindAbsence, KindSequence, KindRatio:
		needThreshold = r.Kind == KindRatio
		r.validatePattern(v, p)
	default:
		v.addf(at("kind"), "%q is not one of threshold, health, rate, anomaly, predict, absence, sequence, ratio", r.Kind)
	}
	if r.autoThreshold {
		r.Threshold = nil // learned per series
		r.validateAuto(v, p)
	} else if r.Auto != nil {
		v.addf(at("auto"), "needs threshold: auto")
	}
	if needThreshold && !r.autoThreshold {
		switch {
		case r.Threshold == nil:
			v.addf(at("threshold"), "required for a %s rule", r.Kind)
		case math.IsNaN(*r.Threshold) || math.IsInf(*r.Threshold, 0):
			v.addf(at("threshold"), "must be a finite number")
		case r.Recover != nil:
			rec, th := *r.Recover, *r.Threshold
			if (r.Op[0] == '>' && rec > th) || (r.Op[0] == '<' && rec < th) {
				v.addf(at("recover"), "%s must be on the recovered side of threshold %s (op %s)", fmtNum(rec), fmtNum(th), r.Op)
			}
		}
	} else if r.Threshold != nil && r.Kind != KindAnomaly {
		v.addf(at("threshold"), "not used by a %s rule", r.Kind)
	}
	if r.For < 0 {
		v.addf(at("for"), "must not be negative")
	}
	if r.KeepFiringFor < 0 {
		v.addf(at("keep_firing_for"), "must not be negative")
	}
	for k := range r.Labels {
		if !labelName.MatchString(k) {
			v.addf(append(at("labels"), k), "%q is not a label name", k)
		}
	}
	r.inputs = r.Inputs()
	r.annotations = map[string]*template.Template{}
	for k, text := range r.Annotations {
		t, err := template.New(k).Option("missingkey=zero").Parse(text)
		if err != nil {
			v.addf(append(at("annotations"), k), "template: %v", strings.TrimPrefix(err.Error(), "template: "))
			continue
		}
		r.annotations[k] = t
	}
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
