package alerting

import (
	"bytes"
	"encoding/json"
	"errors"
	htmltemplate "html/template"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"
)

// TemplateData is what a receiver's title and body templates see, named
// as in Prometheus Alertmanager's notification templates: .Status
// ("firing" or "resolved"), .Receiver, .GroupLabels, .CommonLabels,
// .CommonAnnotations, .ExternalURL and .Alerts (with .Alerts.Firing and
// .Alerts.Resolved). A receiver whose output format gives markup a meaning
// (Slack's mrkdwn) gets label and annotation values already escaped for
// it, so an event's fields cannot mention @channel or forge a link.
type TemplateData struct {
	Status            string         `json:"status"`
	Receiver          string         `json:"receiver"`
	GroupKey          string         `json:"groupKey"`
	GroupLabels       KV             `json:"groupLabels"`
	CommonLabels      KV             `json:"commonLabels"`
	CommonAnnotations KV             `json:"commonAnnotations"`
	ExternalURL       string         `json:"externalURL"`
	Alerts            TemplateAlerts `json:"alerts"`
}

// TemplateAlert is one alert of [TemplateData].
type TemplateAlert struct {
	Status       string    `json:"status"`
	Labels       KV        `json:"labels"`
	Annotations  KV        `json:"annotations"`
	StartsAt     time.Time `json:"startsAt"`
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
	Value        float64   `json:"value"`
	Threshold    float64   `json:"threshold"`
}

// TemplateAlerts is a list of alerts with Alertmanager's helpers.
type TemplateAlerts []TemplateAlert

// Firing returns the firing alerts.
func (as TemplateAlerts) Firing() TemplateAlerts {
	return slices.DeleteFunc(slices.Clone(as), func(a TemplateAlert) bool { return a.Status != "firing" })
}

// Resolved returns the resolved alerts.
func (as TemplateAlerts) Resolved() TemplateAlerts {
	return slices.DeleteFunc(slices.Clone(as), func(a TemplateAlert) bool { return a.Status != "resolved" })
}

// KV is a label or annotation set with Alertmanager's template helpers.
type KV map[string]string

// Pair is one name and value of a [KV].
type Pair struct{ Name, Value string }

// SortedPairs returns the pairs sorted by name, alertname first.
func (kv KV) SortedPairs() []Pair {
	out := make([]Pair, 0, len(kv))
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		out = append(out, Pair{k, kv[k]})
	}
	slices.SortStableFunc(out, func(a, b Pair) int {
		switch {
		case a.Name == "alertname":
			return -1
		case b.Name == "alertname":
			return 1
		}
		return 0
	})
	return out
}

// Names returns the names in the order of [KV.SortedPairs].
func (kv KV) Names() []string {
	var out []string
	for _, p := range kv.SortedPairs() {
		out = append(out, p.Name)
	}
	return out
}

// Values returns the values in the order of [KV.SortedPairs].
func (kv KV) Values() []string {
	var out []string
	for _, p := range kv.SortedPairs() {
		out = append(out, p.Value)
	}
	return out
}

// NewTemplateData builds the template data of n for receiver. esc, if not
// nil, escapes every label and annotation value.
func NewTemplateData(n *Notification, receiver, externalURL string, esc func(string) string) *TemplateData {
	kv := func(m map[string]string) KV {
		out := make(KV, len(m))
		for k, v := range m {
			if esc != nil {
				v = esc(v)
			}
			out[k] = v
		}
		return out
	}
	d := &TemplateData{
		Status: "resolved", Receiver: receiver, GroupKey: n.GroupKey, GroupLabels: kv(n.GroupLabels), ExternalURL: externalURL,
	}
	if len(n.Firing) > 0 {
		d.Status = "firing"
	}
	all := append(append([]*Alert{}, n.Firing...), n.Resolved...)
	for _, a := range all {
		ta := TemplateAlert{
			Status: "firing", Labels: kv(a.Labels), Annotations: kv(a.Annotations), StartsAt: a.ActiveAt,
			GeneratorURL: generatorURL(externalURL, a), Fingerprint: a.Fingerprint, Value: a.Value, Threshold: a.Threshold,
		}
		if a.State == StateResolved {
			ta.Status, ta.EndsAt = "resolved", a.ResolvedAt
		}
		d.Alerts = append(d.Alerts, ta)
	}
	d.CommonLabels = kv(common(all, func(a *Alert) map[string]string { return a.Labels }))
	d.CommonAnnotations = kv(common(all, func(a *Alert) map[string]string { return a.Annotations }))
	return d
}

// MaxTemplateOutput bounds what one template execution may write: a
// template that loops over a large group stops with an error instead of
// building an unbounded message.
const MaxTemplateOutput = 256 << 10

var errTemplateTooLong = errors.New("template output exceeds 256 KiB")

// limitedBuffer fails writes past [MaxTemplateOutput].
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxTemplateOutput {
		return 0, errTemplateTooLong
	}
	return b.Buffer.Write(p)
}

// templateFuncs are the functions every receiver template may call, as
// in Alertmanager: toUpper, toLower, title, join, trimSpace, truncate,
// since, and json, which renders a value as a JSON literal (for custom
// webhook bodies: {"text": {{ .CommonAnnotations.summary | json }}}).
var templateFuncs = template.FuncMap{
	"toUpper":   strings.ToUpper,
	"toLower":   strings.ToLower,
	"title":     title,
	"trimSpace": strings.TrimSpace,
	"join":      func(sep string, s []string) string { return strings.Join(s, sep) },
	"truncate": func(n int, s string) string {
		if n < 0 || len(s) <= n {
			return s
		}
		r := []rune(s)
		if len(r) <= n {
			return s
		}
		return string(r[:n]) + "…"
	},
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"since": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// textTemplate is a parsed receiver template (text/template).
type textTemplate struct{ t *template.Template }

func parseText(name, text string) (*textTemplate, error) {
	t, err := template.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "template: "))
	}
	return &textTemplate{t}, nil
}

func (t *textTemplate) exec(d *TemplateData) (string, error) {
	var b limitedBuffer
	if err := t.t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// htmlTemplate is a parsed e-mail body (html/template: values are escaped
// for their context).
type htmlTemplate struct{ t *htmltemplate.Template }

func parseHTML(name, text string) (*htmlTemplate, error) {
	t, err := htmltemplate.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "template: "))
	}
	return &htmlTemplate{t}, nil
}

func (t *htmlTemplate) exec(d *TemplateData) (string, error) {
	var b limitedBuffer
	if err := t.t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Default templates, good enough to use unchanged.
const (
	// DefaultTitle reads "[FIRING:2] OperationSlow checkout" or
	// "[RESOLVED] OperationSlow checkout".
	DefaultTitle = `[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}] {{ .GroupLabels.Values | join " " }}`
	// DefaultText lists each alert with its summary, value and labels.
	DefaultText = `{{ range .Alerts }}{{ if eq .Status "firing" }}🔥{{ else }}✅{{ end }} {{ .Labels.alertname }}{{ with .Annotations.summary }}: {{ . }}{{ end }}
  value {{ printf "%.4g" .Value }} (threshold {{ printf "%.4g" .Threshold }}), since {{ .StartsAt.UTC.Format "2006-01-02 15:04:05Z" }}{{ if eq .Status "resolved" }}, resolved {{ .EndsAt.UTC.Format "15:04:05Z" }}{{ end }}
  {{ range .Labels.SortedPairs }}{{ if ne .Name "alertname" }}{{ .Name }}={{ .Value }} {{ end }}{{ end }}{{ with .Annotations.runbook }}
  runbook: {{ . }}{{ end }}
{{ end }}`
	// DefaultEmailHTML is the HTML part of an e-mail.
	DefaultEmailHTML = `<!DOCTYPE html><html><body style="font-family:sans-serif">
<h2>{{ .Status | toUpper }}: {{ .GroupLabels.Values | join " " }}</h2>
{{ range .Alerts }}<div style="margin-bottom:1em"><b>{{ .Status | toUpper }} {{ .Labels.alertname }}</b>{{ with .Annotations.summary }}: {{ . }}{{ end }}<br>
value {{ printf "%.4g" .Value }} (threshold {{ printf "%.4g" .Threshold }}), since {{ .StartsAt.UTC.Format "2006-01-02 15:04:05Z" }}<br>
<table>{{ range .Labels.SortedPairs }}<tr><td>{{ .Name }}</td><td>{{ .Value }}</td></tr>{{ end }}</table>
{{ with .GeneratorURL }}<a href="{{ . }}">details</a>{{ end }}</div>
{{ end }}</body></html>`
)
