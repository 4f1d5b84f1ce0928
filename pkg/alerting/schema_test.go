package alerting_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jetmon/jetmon/pkg/alerting"
)

// The validators below encode the receivers' published payload schemas:
// PagerDuty Events API v2 (developer.pagerduty.com, "Send an Alert
// Event"), Slack's incoming webhooks and chat.postMessage (api.slack.com),
// and the Adaptive Card message Teams incoming webhooks take. Each decodes
// strictly (a field the schema does not have is an error) and checks the
// required fields, enumerations and length limits. TestSchemaFixtures
// proves them on the services' own documented examples (testdata/receivers)
// and on broken copies of them.

func strict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

type pdEvent struct {
	RoutingKey  *string `json:"routing_key"`
	EventAction *string `json:"event_action"`
	DedupKey    *string `json:"dedup_key"`
	Payload     *struct {
		Summary       *string        `json:"summary"`
		Source        *string        `json:"source"`
		Severity      *string        `json:"severity"`
		Timestamp     *string        `json:"timestamp"`
		Component     string         `json:"component"`
		Group         string         `json:"group"`
		Class         string         `json:"class"`
		CustomDetails map[string]any `json:"custom_details"`
	} `json:"payload"`
	Images []struct {
		Src  string `json:"src"`
		Href string `json:"href"`
		Alt  string `json:"alt"`
	} `json:"images"`
	Links []struct {
		Href string `json:"href"`
		Text string `json:"text"`
	} `json:"links"`
	Client    string `json:"client"`
	ClientURL string `json:"client_url"`
}

func validatePagerDuty(body []byte) (pdEvent, error) {
	var e pdEvent
	if err := strict(body, &e); err != nil {
		return e, err
	}
	switch {
	case e.RoutingKey == nil || len(*e.RoutingKey) != 32 && *e.RoutingKey != "samplekeyhere":
		return e, errors.New("routing_key: required, 32 characters")
	case e.EventAction == nil || !slices.Contains([]string{"trigger", "acknowledge", "resolve"}, *e.EventAction):
		return e, errors.New("event_action: trigger, acknowledge or resolve")
	case e.DedupKey != nil && utf8.RuneCountInString(*e.DedupKey) > 255:
		return e, errors.New("dedup_key: at most 255 characters")
	case *e.EventAction != "trigger" && e.DedupKey == nil:
		return e, errors.New("dedup_key: required to acknowledge or resolve")
	case *e.EventAction == "trigger" && e.Payload == nil:
		return e, errors.New("payload: required to trigger")
	}
	if p := e.Payload; p != nil {
		switch {
		case p.Summary == nil || *p.Summary == "" || utf8.RuneCountInString(*p.Summary) > 1024:
			return e, errors.New("payload.summary: required, at most 1024 characters")
		case p.Source == nil || *p.Source == "":
			return e, errors.New("payload.source: required")
		case p.Severity == nil || !slices.Contains([]string{"critical", "error", "warning", "info"}, *p.Severity):
			return e, errors.New("payload.severity: critical, error, warning or info")
		}
		if p.Timestamp != nil {
			if _, err := time.Parse("2006-01-02T15:04:05.999999999Z0700", *p.Timestamp); err != nil {
				if _, err := time.Parse(time.RFC3339Nano, *p.Timestamp); err != nil {
					return e, fmt.Errorf("payload.timestamp: not ISO 8601: %w", err)
				}
			}
		}
	}
	for _, l := range e.Links {
		if l.Href == "" {
			return e, errors.New("links[].href: required")
		}
	}
	return e, nil
}

type slackMsg struct {
	Channel     *string          `json:"channel"`
	Text        string           `json:"text"`
	Blocks      []map[string]any `json:"blocks"`
	Attachments []struct {
		Fallback  string   `json:"fallback"`
		Color     string   `json:"color"`
		Pretext   string   `json:"pretext"`
		Title     string   `json:"title"`
		TitleLink string   `json:"title_link"`
		Text      string   `json:"text"`
		MrkdwnIn  []string `json:"mrkdwn_in"`
		Footer    string   `json:"footer"`
	} `json:"attachments"`
	Username  string `json:"username"`
	IconEmoji string `json:"icon_emoji"`
	Mrkdwn    *bool  `json:"mrkdwn"`
}

// validateSlack checks an incoming-webhook message (chat false: no
// channel, the webhook has its own) or a chat.postMessage one (channel
// required).
func validateSlack(body []byte, chat bool) (slackMsg, error) {
	var m slackMsg
	if err := strict(body, &m); err != nil {
		return m, err
	}
	switch {
	case m.Text == "" && len(m.Blocks) == 0 && len(m.Attachments) == 0:
		return m, errors.New("no_text: text, blocks or attachments required")
	case chat && (m.Channel == nil || *m.Channel == ""):
		return m, errors.New("channel_not_found: channel required")
	case !chat && m.Channel != nil:
		return m, errors.New("channel: an incoming webhook posts to its own channel")
	case utf8.RuneCountInString(m.Text) > 40000:
		return m, errors.New("msg_too_long")
	}
	for _, a := range m.Attachments {
		if a.Color != "" && !slices.Contains([]string{"good", "warning", "danger"}, a.Color) && (len(a.Color) != 7 || a.Color[0] != '#') {
			return m, fmt.Errorf("attachments[].color: %q", a.Color)
		}
		for _, f := range a.MrkdwnIn {
			if !slices.Contains([]string{"pretext", "text", "fields"}, f) {
				return m, fmt.Errorf("attachments[].mrkdwn_in: %q", f)
			}
		}
	}
	return m, nil
}

type teamsMsg struct {
	Type        string `json:"type"`
	Attachments []struct {
		ContentType string  `json:"contentType"`
		ContentURL  *string `json:"contentUrl"`
		Content     struct {
			Schema  string `json:"$schema"`
			Type    string `json:"type"`
			Version string `json:"version"`
			Body    []struct {
				Type   string `json:"type"`
				Text   string `json:"text"`
				Weight string `json:"weight"`
				Size   string `json:"size"`
				Color  string `json:"color"`
				Wrap   *bool  `json:"wrap"`
			} `json:"body"`
			Actions []struct {
				Type  string `json:"type"`
				Title string `json:"title"`
				URL   string `json:"url"`
			} `json:"actions"`
			MSTeams map[string]string `json:"msteams"`
		} `json:"content"`
	} `json:"attachments"`
}

func validateTeams(body []byte) (teamsMsg, error) {
	var m teamsMsg
	if err := strict(body, &m); err != nil {
		return m, err
	}
	if m.Type != "message" || len(m.Attachments) != 1 {
		return m, errors.New("type message with one attachment")
	}
	a := m.Attachments[0]
	if a.ContentType != "application/vnd.microsoft.card.adaptive" || a.Content.Type != "AdaptiveCard" || a.Content.Version == "" || len(a.Content.Body) == 0 {
		return m, errors.New("an AdaptiveCard attachment with a version and a body")
	}
	for _, b := range a.Content.Body {
		if b.Type != "TextBlock" || b.Text == "" {
			return m, errors.New("body: TextBlocks with text")
		}
	}
	for _, ac := range a.Content.Actions {
		if ac.Type != "Action.OpenUrl" || ac.URL == "" {
			return m, errors.New("actions: Action.OpenUrl with url")
		}
	}
	return m, nil
}

func TestSchemaFixtures(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/receivers/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mutate := func(b []byte, f func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	pdT, pdR := read("pagerduty-trigger.json"), read("pagerduty-resolve.json")
	sw, sc, tm := read("slack-webhook.json"), read("slack-chat.json"), read("teams-adaptive.json")
	cases := []struct {
		name string
		err  error
	}{
		{"pd trigger", second(validatePagerDuty(pdT))},
		{"pd resolve", second(validatePagerDuty(pdR))},
		{"slack webhook", second(validateSlack(sw, false))},
		{"slack chat", second(validateSlack(sc, true))},
		{"teams", second(validateTeams(tm))},
	}
	for _, c := range cases {
		if c.err != nil {
			t.Errorf("%s: the published example fails the validator: %v", c.name, c.err)
		}
	}
	broken := []struct {
		name string
		err  error
	}{
		{"pd severity", second(validatePagerDuty(mutate(pdT, func(m map[string]any) { m["payload"].(map[string]any)["severity"] = "high" })))},
		{"pd no summary", second(validatePagerDuty(mutate(pdT, func(m map[string]any) { delete(m["payload"].(map[string]any), "summary") })))},
		{"pd unknown field", second(validatePagerDuty(mutate(pdR, func(m map[string]any) { m["incident_key"] = "x" })))},
		{"pd resolve without dedup", second(validatePagerDuty(mutate(pdR, func(m map[string]any) { delete(m, "dedup_key") })))},
		{"slack webhook with channel", second(validateSlack(sc, false))},
		{"slack chat without channel", second(validateSlack(sw, true))},
		{"teams no body", second(validateTeams(mutate(tm, func(m map[string]any) {
			m["attachments"].([]any)[0].(map[string]any)["content"].(map[string]any)["body"] = []any{}
		})))},
	}
	for _, c := range broken {
		if c.err == nil {
			t.Errorf("%s: a broken payload passes the validator", c.name)
		}
	}
}

func second[T any](_ T, err error) error { return err }

type messageCard struct {
	Type       string `json:"@type"`
	Context    string `json:"@context"`
	Summary    string `json:"summary"`
	ThemeColor string `json:"themeColor"`
	Title      string `json:"title"`
	Text       string `json:"text"`
	Sections   []struct {
		ActivityTitle    string `json:"activityTitle"`
		ActivitySubtitle string `json:"activitySubtitle"`
		Text             string `json:"text"`
	} `json:"sections"`
	PotentialAction []struct {
		Type    string `json:"@type"`
		Name    string `json:"name"`
		Targets []struct {
			OS  string `json:"os"`
			URI string `json:"uri"`
		} `json:"targets"`
	} `json:"potentialAction"`
}

// validateMessageCard checks a legacy Office 365 connector card: type and
// context, a summary or text, a hex theme colour, OpenUri actions with
// targets.
func validateMessageCard(body []byte) (messageCard, error) {
	var c messageCard
	if err := strict(body, &c); err != nil {
		return c, err
	}
	switch {
	case c.Type != "MessageCard" || !strings.HasSuffix(c.Context, "schema.org/extensions"):
		return c, errors.New("@type MessageCard and @context schema.org/extensions")
	case c.Summary == "" && c.Text == "":
		return c, errors.New("summary or text required")
	case c.ThemeColor != "" && !regexp.MustCompile(`^[0-9A-Fa-f]{6}$`).MatchString(c.ThemeColor):
		return c, fmt.Errorf("themeColor %q", c.ThemeColor)
	}
	for _, a := range c.PotentialAction {
		if a.Type != "OpenUri" || a.Name == "" || len(a.Targets) == 0 {
			return c, errors.New("potentialAction: OpenUri with a name and targets")
		}
		for _, tg := range a.Targets {
			if tg.OS == "" || tg.URI == "" {
				return c, errors.New("targets: os and uri")
			}
		}
	}
	return c, nil
}

func TestMessageCardFixtureAndPayload(t *testing.T) {
	b, err := os.ReadFile("testdata/receivers/teams-messagecard.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := validateMessageCard(b); err != nil {
		t.Fatalf("the published example fails the validator: %v", err)
	}
	if _, err := validateMessageCard([]byte(`{"@type":"MessageCard","@context":"https://schema.org/extensions","themeColor":"red","summary":"x"}`)); err == nil {
		t.Fatal("a bad colour passes the validator")
	}
	cfg, err := alerting.Parse("t.yaml", []byte(`
rules: [{alert: Slow, field: p95, threshold: 1}]
receivers:
  - name: t
    teams: {webhook_url: {env: X}, format: messagecard}
`))
	if err != nil {
		t.Fatal(err)
	}
	l := alerting.Labels{"alertname": "Slow", "source": "checkout"}
	for _, c := range []struct {
		st           alerting.State
		title, color string
	}{{alerting.StateFiring, "[FIRING:1] Slow", "D13438"}, {alerting.StateResolved, "[RESOLVED] Slow", "2DC72D"}} {
		a := &alerting.Alert{Fingerprint: "f", Rule: "Slow", Labels: l, State: c.st}
		n := &alerting.Notification{GroupLabels: alerting.Labels{"alertname": "Slow"}}
		if c.st == alerting.StateFiring {
			n.Firing = []*alerting.Alert{a}
		} else {
			n.Resolved = []*alerting.Alert{a}
		}
		m, err := alerting.MessageCardPayload(cfg.Receivers[0].Teams, n, "t", "http://am")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(m)
		got, err := validateMessageCard(body)
		if err != nil {
			t.Fatalf("%s", err)
		}
		if got.Title != c.title || got.ThemeColor != c.color || got.PotentialAction[0].Targets[0].URI != "http://am/api/v1/alerts" || !strings.Contains(got.Text, "source=checkout") {
			t.Fatalf("card: %s", body)
		}
	}
}
