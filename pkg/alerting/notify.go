package alerting

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/jetmon/jetmon/internal/redact"
)

// sender delivers one notification to one target.
type sender interface {
	send(ctx context.Context, n *Notification) error
	kind() string
}

// integration is one target of a receiver with its own queue, retries and
// circuit breaker, so that a failing target never holds up another.
type integration struct {
	receiver     string
	idx          int
	sender       sender
	sendResolved bool
	breaker      *gobreaker.CircuitBreaker[struct{}]

	mu      sync.Mutex
	pending map[string]*Notification // latest per group
	order   []string
	wake    chan struct{}
}

func newIntegration(receiver string, idx int, s sender, sendResolved bool) *integration {
	return &integration{
		receiver: receiver, idx: idx, sender: s, sendResolved: sendResolved,
		breaker: gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name:    receiver + "/" + s.kind(),
			Timeout: 10 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= 5
			},
		}),
		pending: map[string]*Notification{},
		wake:    make(chan struct{}, 1),
	}
}

// enqueue queues n; a queued notification of the same group is replaced,
// since only the group's latest state matters.
func (in *integration) enqueue(n *Notification) {
	in.mu.Lock()
	if _, ok := in.pending[n.GroupKey]; !ok {
		in.order = append(in.order, n.GroupKey)
	}
	in.pending[n.GroupKey] = n
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *integration) pop() *Notification {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.order) == 0 {
		return nil
	}
	k := in.order[0]
	in.order = in.order[1:]
	n := in.pending[k]
	delete(in.pending, k)
	return n
}

func sendResolvedOr(b *bool) bool { return b == nil || *b }

// newIntegrations builds the integrations of a receiver's targets.
func newIntegrations(r *Receiver, client *http.Client, log *zerolog.Logger, externalURL string) ([]*integration, error) {
	var out []*integration
	if r.Log != nil {
		out = append(out, newIntegration(r.Name, len(out), &logSender{log: log, receiver: r.Name}, sendResolvedOr(r.Log.SendResolved)))
	}
	if w := r.Webhook; w != nil {
		s := &webhookSender{url: w.URL, client: client, timeout: timeoutOr(w.Timeout), receiver: r.Name, maxAlerts: w.MaxAlerts, externalURL: externalURL, body: w.body}
		if w.BearerTokenFile != "" {
			tok, err := os.ReadFile(w.BearerTokenFile)
			if err != nil {
				return nil, fmt.Errorf("receiver %s: bearer_token_file: %w", r.Name, err)
			}
			s.token = strings.TrimSpace(string(tok))
		}
		out = append(out, newIntegration(r.Name, len(out), s, sendResolvedOr(w.SendResolved)))
	}
	if a := r.Alertmanager; a != nil {
		u, err := url.Parse(a.URL)
		if err != nil {
			return nil, fmt.Errorf("receiver %s: alertmanager url: %w", r.Name, redact.Error(err, redact.Secrets(a.URL)...))
		}
		s := &alertmanagerSender{url: u.JoinPath("api/v2/alerts").String(), client: client, timeout: timeoutOr(a.Timeout), externalURL: externalURL}
		out = append(out, newIntegration(r.Name, len(out), s, sendResolvedOr(a.SendResolved)))
	}
	native, err := nativeIntegrations(r, client, externalURL, len(out))
	return append(out, native...), err
}

// nativeIntegrations builds the Slack, PagerDuty, e-mail and Teams targets
// of r, reading their credentials; idx is the index of the first.
func nativeIntegrations(r *Receiver, client *http.Client, externalURL string, idx int) ([]*integration, error) {
	var out []*integration
	add := func(s sender, sendResolved *bool) {
		out = append(out, newIntegration(r.Name, idx+len(out), s, sendResolvedOr(sendResolved)))
	}
	if c := r.Slack; c != nil {
		s := &slackSender{cfg: c, client: client, timeout: timeoutOr(c.Timeout), receiver: r.Name, externalURL: externalURL}
		var err error
		if c.Token.set() {
			if s.token, err = readSecret(r.Name, "slack.token", c.Token); err != nil {
				return nil, err
			}
			s.url = cmp.Or(c.APIURL, DefaultSlackAPIURL)
		} else if s.url, err = readSecret(r.Name, "slack.webhook_url", c.WebhookURL); err != nil {
			return nil, err
		}
		add(s, c.SendResolved)
	}
	if c := r.PagerDuty; c != nil {
		key, err := readSecret(r.Name, "pagerduty.routing_key", c.RoutingKey)
		if err != nil {
			return nil, err
		}
		add(&pagerDutySender{cfg: c, url: cmp.Or(c.URL, DefaultPagerDutyURL), key: key, client: client, timeout: timeoutOr(c.Timeout), receiver: r.Name, externalURL: externalURL}, c.SendResolved)
	}
	if c := r.Email; c != nil {
		s, err := newEmailSender(r, externalURL)
		if err != nil {
			return nil, err
		}
		add(s, c.SendResolved)
	}
	if c := r.Teams; c != nil {
		u, err := readSecret(r.Name, "teams.webhook_url", c.WebhookURL)
		if err != nil {
			return nil, err
		}
		add(&teamsSender{cfg: c, url: u, client: client, timeout: timeoutOr(c.Timeout), receiver: r.Name, externalURL: externalURL}, c.SendResolved)
	}
	return out, nil
}

func timeoutOr(d Duration) time.Duration {
	if d <= 0 {
		return 10 * time.Second
	}
	return d.D()
}

// NotifyFunc is a receiver target written in Go. An error is retried like
// a failed HTTP request; wrap it with backoff.Permanent to stop retries.
type NotifyFunc func(ctx context.Context, n *Notification) error

type funcSender NotifyFunc

func (f funcSender) kind() string { return "func" }

func (f funcSender) send(ctx context.Context, n *Notification) error { return f(ctx, n) }

// logSender writes notifications to the process log.
type logSender struct {
	log      *zerolog.Logger
	receiver string
}

func (l *logSender) kind() string { return "log" }

func (l *logSender) send(_ context.Context, n *Notification) error {
	for _, a := range n.Firing {
		l.log.Warn().Str("receiver", l.receiver).Str("alert", a.Rule).Str("labels", a.Labels.String()).
			Float64("value", a.Value).Float64("threshold", a.Threshold).Str("summary", a.Annotations["summary"]).Msg("alert firing")
	}
	for _, a := range n.Resolved {
		l.log.Info().Str("receiver", l.receiver).Str("alert", a.Rule).Str("labels", a.Labels.String()).Msg("alert resolved")
	}
	return nil
}

// WebhookMessage is the Prometheus Alertmanager webhook payload, version 4.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a [WebhookMessage].
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// WebhookPayload builds the version 4 webhook message of n.
func WebhookPayload(n *Notification, receiver, externalURL string, maxAlerts int) WebhookMessage {
	m := WebhookMessage{
		Version: "4", GroupKey: n.GroupKey, Status: "resolved", Receiver: receiver,
		GroupLabels: map[string]string(n.GroupLabels), ExternalURL: externalURL,
	}
	if len(n.Firing) > 0 {
		m.Status = "firing"
	}
	all := append(append([]*Alert{}, n.Firing...), n.Resolved...)
	for _, a := range all {
		wa := WebhookAlert{
			Status: "firing", Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.ActiveAt,
			GeneratorURL: generatorURL(externalURL, a), Fingerprint: a.Fingerprint,
		}
		if a.State == StateResolved {
			wa.Status, wa.EndsAt = "resolved", a.ResolvedAt
		}
		if wa.Annotations == nil {
			wa.Annotations = map[string]string{}
		}
		m.Alerts = append(m.Alerts, wa)
	}
	m.CommonLabels, m.CommonAnnotations = common(all, func(a *Alert) map[string]string { return a.Labels }),
		common(all, func(a *Alert) map[string]string { return a.Annotations })
	if maxAlerts > 0 && len(m.Alerts) > maxAlerts {
		m.TruncatedAlerts = len(m.Alerts) - maxAlerts
		m.Alerts = m.Alerts[:maxAlerts]
	}
	return m
}

func generatorURL(base string, a *Alert) string {
	if base == "" {
		return ""
	}
	return strings.TrimSuffix(base, "/") + "/api/v1/alerts/" + a.Fingerprint
}

// common returns the pairs every alert has.
func common(as []*Alert, get func(*Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(as) == 0 {
		return out
	}
	maps.Copy(out, get(as[0]))
	for _, a := range as[1:] {
		m := get(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

type webhookSender struct {
	url, token, receiver, externalURL string
	client                            *http.Client
	timeout                           time.Duration
	maxAlerts                         int
	body                              *textTemplate
}

func (w *webhookSender) kind() string { return "webhook" }

func (w *webhookSender) send(ctx context.Context, n *Notification) error {
	if w.body != nil {
		body, err := customWebhookBody(w.body, n, w.receiver, w.externalURL)
		if err != nil {
			return backoff.Permanent(err)
		}
		return post(ctx, w.client, w.timeout, w.url, w.token, body)
	}
	body, err := json.Marshal(WebhookPayload(n, w.receiver, w.externalURL, w.maxAlerts))
	if err != nil {
		return backoff.Permanent(err)
	}
	return post(ctx, w.client, w.timeout, w.url, w.token, body)
}

// PostableAlert is an alert of the Prometheus Alertmanager API v2.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

type alertmanagerSender struct {
	url, externalURL string
	client           *http.Client
	timeout          time.Duration
}

func (s *alertmanagerSender) kind() string { return "alertmanager" }

func (s *alertmanagerSender) send(ctx context.Context, n *Notification) error {
	var alerts []PostableAlert
	for _, a := range n.Firing {
		// An Alertmanager resolves an alert that is not re-sent before
		// EndsAt; re-sends come every repeat_interval.
		alerts = append(alerts, PostableAlert{
			Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.ActiveAt,
			EndsAt: n.At.Add(4 * max(n.RepeatInterval, time.Minute)), GeneratorURL: generatorURL(s.externalURL, a),
		})
	}
	for _, a := range n.Resolved {
		alerts = append(alerts, PostableAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.ActiveAt, EndsAt: a.ResolvedAt, GeneratorURL: generatorURL(s.externalURL, a)})
	}
	body, err := json.Marshal(alerts)
	if err != nil {
		return backoff.Permanent(err)
	}
	return post(ctx, s.client, s.timeout, s.url, "", body)
}

// post sends body; 4xx answers (but 408 and 429) are permanent errors.
// Its errors never hold credentials: the URL's password, query values and
// token-like path segments, and the bearer token, are masked (see
// [redact.URL]) — they end up in logs.
func post(ctx context.Context, client *http.Client, timeout time.Duration, url, token string, body []byte) error {
	hdr := map[string]string{}
	if token != "" {
		hdr["Authorization"] = "Bearer " + token
	}
	_, err := postJSON(ctx, client, timeout, url, hdr, body, token)
	return err
}

// RetryAfterError is a receiver's answer that asks to come back later
// (HTTP 429, or 503 with Retry-After): the retry waits at least After.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

func (e *RetryAfterError) Unwrap() error { return e.Err }

// maxRetryAfter caps a receiver's Retry-After: a rate-limited target
// waits, but a hostile answer cannot park its queue for days.
const maxRetryAfter = 10 * time.Minute

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		return min(time.Duration(max(s, 0))*time.Second, maxRetryAfter), true
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}

// postJSON posts body with the headers hdr and returns the answer's first
// 64 KiB. Errors are redacted: the URL's credentials and every secret
// (header values included) are masked. 4xx answers other than 408 and 429
// are permanent; 429 and 503 with Retry-After give a [RetryAfterError].
func postJSON(ctx context.Context, client *http.Client, timeout time.Duration, url string, hdr map[string]string, body []byte, secrets ...string) ([]byte, error) {
	secrets = append(redact.Secrets(url), secrets...)
	for _, v := range hdr {
		secrets = append(secrets, strings.TrimPrefix(v, "Bearer "))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, backoff.Permanent(redact.Error(err, secrets...))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jetmon-alertmanager")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, redact.Error(err, secrets...)
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return msg, nil
	}
	// The receiver's answer may echo the request (URL, headers): redact it too.
	excerpt := strings.TrimSpace(string(msg[:min(len(msg), 512)]))
	err = fmt.Errorf("POST %s: %s: %s", redact.URL(url), resp.Status, redact.String(excerpt, secrets...))
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok &&
		(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		return nil, &RetryAfterError{After: d, Err: err}
	}
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return nil, backoff.Permanent(err)
	}
	return nil, err
}
