package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// DefaultSlackAPIURL is Slack's chat.postMessage endpoint.
const DefaultSlackAPIURL = "https://slack.com/api/chat.postMessage"

// SlackMessage is the JSON body posted to a Slack incoming webhook or to
// chat.postMessage (which also needs Channel).
type SlackMessage struct {
	Channel     string            `json:"channel,omitempty"`
	Text        string            `json:"text"`
	Attachments []SlackAttachment `json:"attachments,omitempty"`
}

// SlackAttachment is a (legacy, still supported) message attachment: the
// colour bar of a firing or resolved group.
type SlackAttachment struct {
	Color     string   `json:"color,omitempty"`
	Fallback  string   `json:"fallback,omitempty"`
	Title     string   `json:"title,omitempty"`
	TitleLink string   `json:"title_link,omitempty"`
	Text      string   `json:"text,omitempty"`
	MrkdwnIn  []string `json:"mrkdwn_in,omitempty"`
}

// slackEscape escapes the three characters Slack's mrkdwn gives a meaning
// (&, <, >), so that a value from an event cannot write <!channel> or a
// link of its own.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// Slack's limits: text past 40 000 characters is truncated by Slack, an
// attachment text past 8 000 is refused by some clients.
const (
	slackMaxTitle = 1000
	slackMaxText  = 8000
)

type slackSender struct {
	cfg         *SlackConfig
	url, token  string
	client      *http.Client
	timeout     time.Duration
	receiver    string
	externalURL string
}

func (s *slackSender) kind() string { return "slack" }

// SlackPayload renders the Slack message of n with cfg's templates.
func SlackPayload(cfg *SlackConfig, n *Notification, receiver, externalURL string) (SlackMessage, error) {
	d := NewTemplateData(n, receiver, externalURL, slackEscape)
	title, err := cfg.title.exec(d)
	if err != nil {
		return SlackMessage{}, fmt.Errorf("slack title: %w", err)
	}
	text, err := cfg.text.exec(d)
	if err != nil {
		return SlackMessage{}, fmt.Errorf("slack text: %w", err)
	}
	title, text = truncateRunes(title, slackMaxTitle), truncateRunes(text, slackMaxText)
	color := "danger"
	if d.Status == "resolved" {
		color = "good"
	}
	return SlackMessage{
		Channel: cfg.Channel, Text: title,
		Attachments: []SlackAttachment{{
			Color: color, Fallback: title, Title: title, TitleLink: apiLink(externalURL), Text: text, MrkdwnIn: []string{"text"},
		}},
	}, nil
}

func apiLink(externalURL string) string {
	if externalURL == "" {
		return ""
	}
	return strings.TrimSuffix(externalURL, "/") + "/api/v1/alerts"
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// slackAPIAnswer is chat.postMessage's answer: HTTP 200 even for most
// errors, with ok false and an error code.
type slackAPIAnswer struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// slackRetryable are chat.postMessage error codes worth another attempt.
var slackRetryable = map[string]bool{"ratelimited": true, "internal_error": true, "fatal_error": true, "service_unavailable": true, "request_timeout": true}

func (s *slackSender) send(ctx context.Context, n *Notification) error {
	m, err := SlackPayload(s.cfg, n, s.receiver, s.externalURL)
	if err != nil {
		return backoff.Permanent(err)
	}
	if s.token == "" {
		m.Channel = "" // an incoming webhook posts to its own channel
	}
	body, err := json.Marshal(m)
	if err != nil {
		return backoff.Permanent(err)
	}
	hdr := map[string]string{}
	if s.token != "" {
		hdr["Authorization"] = "Bearer " + s.token
		hdr["Content-Type"] = "application/json; charset=utf-8"
	}
	answer, err := postJSON(ctx, s.client, s.timeout, s.url, hdr, body)
	if err != nil || s.token == "" {
		return err
	}
	var a slackAPIAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return fmt.Errorf("slack chat.postMessage: unreadable answer: %w", err)
	}
	if !a.OK {
		err := fmt.Errorf("slack chat.postMessage: %w: %.64s", errSlackAPI, a.Error)
		if slackRetryable[a.Error] {
			return err
		}
		return backoff.Permanent(err)
	}
	return nil
}

// errSlackAPI is a chat.postMessage answer with ok false.
var errSlackAPI = errors.New("refused")

// TeamsMessage is the body posted to a Teams incoming webhook: a message
// with one Adaptive Card attachment.
type TeamsMessage struct {
	Type        string            `json:"type"`
	Attachments []TeamsAttachment `json:"attachments"`
}

// TeamsAttachment carries an Adaptive Card.
type TeamsAttachment struct {
	ContentType string       `json:"contentType"`
	ContentURL  *string      `json:"contentUrl"`
	Content     AdaptiveCard `json:"content"`
}

// AdaptiveCard is the subset of the Adaptive Card schema jetmon writes.
type AdaptiveCard struct {
	Schema  string            `json:"$schema"`
	Type    string            `json:"type"`
	Version string            `json:"version"`
	Body    []CardElement     `json:"body"`
	Actions []CardAction      `json:"actions,omitempty"`
	MSTeams map[string]string `json:"msteams,omitempty"`
}

// CardElement is a TextBlock of an [AdaptiveCard].
type CardElement struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	Weight string `json:"weight,omitempty"`
	Size   string `json:"size,omitempty"`
	Color  string `json:"color,omitempty"`
	Wrap   bool   `json:"wrap"`
}

// CardAction is an Action.OpenUrl of an [AdaptiveCard].
type CardAction struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

// TeamsPayload renders the Teams message of n with cfg's templates.
func TeamsPayload(cfg *TeamsConfig, n *Notification, receiver, externalURL string) (TeamsMessage, error) {
	d := NewTemplateData(n, receiver, externalURL, nil)
	title, err := cfg.title.exec(d)
	if err != nil {
		return TeamsMessage{}, fmt.Errorf("teams title: %w", err)
	}
	text, err := cfg.text.exec(d)
	if err != nil {
		return TeamsMessage{}, fmt.Errorf("teams text: %w", err)
	}
	color := "attention"
	if d.Status == "resolved" {
		color = "good"
	}
	card := AdaptiveCard{
		Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard", Version: "1.4",
		Body: []CardElement{
			{Type: "TextBlock", Text: truncateRunes(title, slackMaxTitle), Weight: "Bolder", Size: "Medium", Color: color, Wrap: true},
			{Type: "TextBlock", Text: truncateRunes(text, 20000), Wrap: true},
		},
		MSTeams: map[string]string{"width": "Full"},
	}
	if l := apiLink(externalURL); l != "" {
		card.Actions = []CardAction{{Type: "Action.OpenUrl", Title: "Alerts", URL: l}}
	}
	return TeamsMessage{Type: "message", Attachments: []TeamsAttachment{{ContentType: "application/vnd.microsoft.card.adaptive", Content: card}}}, nil
}

type teamsSender struct {
	cfg         *TeamsConfig
	url         string
	client      *http.Client
	timeout     time.Duration
	receiver    string
	externalURL string
}

func (s *teamsSender) kind() string { return "teams" }

func (s *teamsSender) send(ctx context.Context, n *Notification) error {
	var m any
	var err error
	if s.cfg.Format == "messagecard" {
		m, err = MessageCardPayload(s.cfg, n, s.receiver, s.externalURL)
	} else {
		m, err = TeamsPayload(s.cfg, n, s.receiver, s.externalURL)
	}
	if err != nil {
		return backoff.Permanent(err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return backoff.Permanent(err)
	}
	_, err = postJSON(ctx, s.client, s.timeout, s.url, nil, body)
	return err
}

// customWebhookBody renders a webhook's Body template and checks that it
// is JSON.
func customWebhookBody(t *textTemplate, n *Notification, receiver, externalURL string) ([]byte, error) {
	out, err := t.exec(NewTemplateData(n, receiver, externalURL, nil))
	if err != nil {
		return nil, fmt.Errorf("webhook body: %w", err)
	}
	if !json.Valid([]byte(out)) {
		return nil, fmt.Errorf("webhook body: %w", errNotJSON)
	}
	return []byte(out), nil
}

// errNotJSON is a custom webhook body whose rendering is not valid JSON
// (a value written without the json function, say).
var errNotJSON = errors.New("template output is not valid JSON (quote values with the json function)")

// MessageCard is the legacy Office 365 connector card.
type MessageCard struct {
	Type            string              `json:"@type"`
	Context         string              `json:"@context"`
	Summary         string              `json:"summary"`
	ThemeColor      string              `json:"themeColor"`
	Title           string              `json:"title"`
	Text            string              `json:"text"`
	PotentialAction []MessageCardAction `json:"potentialAction,omitempty"`
}

// MessageCardAction is an OpenUri action of a [MessageCard].
type MessageCardAction struct {
	Type    string              `json:"@type"`
	Name    string              `json:"name"`
	Targets []map[string]string `json:"targets"`
}

// MessageCardPayload renders the legacy MessageCard of n.
func MessageCardPayload(cfg *TeamsConfig, n *Notification, receiver, externalURL string) (MessageCard, error) {
	d := NewTemplateData(n, receiver, externalURL, nil)
	title, err := cfg.title.exec(d)
	if err != nil {
		return MessageCard{}, fmt.Errorf("teams title: %w", err)
	}
	text, err := cfg.text.exec(d)
	if err != nil {
		return MessageCard{}, fmt.Errorf("teams text: %w", err)
	}
	color := "D13438"
	if d.Status == "resolved" {
		color = "2DC72D"
	}
	title = truncateRunes(title, slackMaxTitle)
	c := MessageCard{
		Type: "MessageCard", Context: "https://schema.org/extensions", Summary: title, ThemeColor: color,
		Title: title, Text: truncateRunes(text, 20000),
	}
	if l := apiLink(externalURL); l != "" {
		c.PotentialAction = []MessageCardAction{{Type: "OpenUri", Name: "Alerts", Targets: []map[string]string{{"os": "default", "uri": l}}}}
	}
	return c, nil
}
