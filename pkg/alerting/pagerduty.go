package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// DefaultPagerDutyURL is the PagerDuty Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// Default PagerDuty templates: each sees the notification of one alert.
const (
	defaultPDSummary  = `{{ range .Alerts }}{{ .Labels.alertname }}{{ with .Labels.source }} on {{ . }}{{ end }}{{ with .Annotations.summary }}: {{ . }}{{ end }}{{ end }}`
	defaultPDSource   = `{{ range .Alerts }}{{ with .Labels.source }}{{ . }}{{ else }}jetmon{{ end }}{{ end }}`
	defaultPDSeverity = `{{ range .Alerts }}{{ .Labels.severity }}{{ end }}`
)

// PagerDutyEvent is an event of the PagerDuty Events API v2.
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"` // trigger, resolve
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"` // trigger only
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
	Links       []PagerDutyLink   `json:"links,omitempty"`
}

// PagerDutyPayload describes a triggered alert.
type PagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// PagerDutyLink is a link shown with the incident.
type PagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// PagerDuty's limits on an event.
const (
	pdMaxSummary  = 1024
	pdMaxSource   = 255
	pdMaxDedupKey = 255
)

var pdSeverities = map[string]bool{"critical": true, "error": true, "warning": true, "info": true}

// PagerDutyEvents renders the events of n: a trigger per firing alert and
// a resolve per resolved one, each with the alert's fingerprint as
// dedup_key so PagerDuty ties them to one incident. routingKey goes into
// every event.
func PagerDutyEvents(cfg *PagerDutyConfig, routingKey string, n *Notification, receiver, externalURL string) ([]PagerDutyEvent, error) {
	var out []PagerDutyEvent
	for _, a := range append(append([]*Alert{}, n.Firing...), n.Resolved...) {
		one := *n
		one.Firing, one.Resolved = nil, nil
		ev := PagerDutyEvent{RoutingKey: routingKey, DedupKey: truncateRunes(a.Fingerprint, pdMaxDedupKey), Client: "jetmon", ClientURL: apiLink(externalURL)}
		if a.State == StateResolved {
			ev.EventAction = "resolve"
			out = append(out, ev)
			continue
		}
		one.Firing = []*Alert{a}
		d := NewTemplateData(&one, receiver, externalURL, nil)
		summary, err := cfg.summary.exec(d)
		if err != nil {
			return nil, fmt.Errorf("pagerduty summary: %w", err)
		}
		source, err := cfg.source.exec(d)
		if err != nil {
			return nil, fmt.Errorf("pagerduty source: %w", err)
		}
		sev, err := cfg.severity.exec(d)
		if err != nil {
			return nil, fmt.Errorf("pagerduty severity: %w", err)
		}
		if !pdSeverities[sev] {
			sev = "error"
		}
		if source == "" {
			source = "jetmon"
		}
		if summary == "" {
			summary = a.Rule
		}
		details := map[string]any{"labels": a.Labels, "value": finite(a.Value), "threshold": finite(a.Threshold)}
		if len(a.Annotations) > 0 {
			details["annotations"] = a.Annotations
		}
		ev.EventAction = "trigger"
		ev.Payload = &PagerDutyPayload{
			Summary: truncateRunes(summary, pdMaxSummary), Source: truncateRunes(source, pdMaxSource), Severity: sev,
			Timestamp: a.ActiveAt.UTC().Format(time.RFC3339Nano), Component: a.Labels["component"] + a.Labels["operation"],
			Group: a.Labels["source"], Class: a.Rule, CustomDetails: details,
		}
		if u := generatorURL(externalURL, a); u != "" {
			ev.Links = []PagerDutyLink{{Href: u, Text: "alert"}}
		}
		out = append(out, ev)
	}
	return out, nil
}

type pagerDutySender struct {
	cfg         *PagerDutyConfig
	url, key    string
	client      *http.Client
	timeout     time.Duration
	receiver    string
	externalURL string
}

func (s *pagerDutySender) kind() string { return "pagerduty" }

// send posts each event. A failure retries the whole notification: events
// already accepted are repeated, which PagerDuty folds by dedup_key.
func (s *pagerDutySender) send(ctx context.Context, n *Notification) error {
	evs, err := PagerDutyEvents(s.cfg, s.key, n, s.receiver, s.externalURL)
	if err != nil {
		return backoff.Permanent(err)
	}
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			return backoff.Permanent(err)
		}
		if _, err := postJSON(ctx, s.client, s.timeout, s.url, nil, body, s.key); err != nil {
			return err
		}
	}
	return nil
}
