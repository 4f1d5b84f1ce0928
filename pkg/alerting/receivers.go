package alerting

import (
	"errors"
	"fmt"
	"net/mail"
	"os"
	"strings"
)

// Secret says where a credential comes from: a file (its content, trimmed)
// or an environment variable. A rules file never holds the credential
// itself, so it can be shared and logged.
type Secret struct {
	File string `yaml:"file"`
	Env  string `yaml:"env"`
}

func (s *Secret) set() bool { return s != nil && (s.File != "" || s.Env != "") }

// read returns the credential.
func (s *Secret) read() (string, error) {
	switch {
	case s == nil || !s.set():
		return "", nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", err
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s is empty", s.File)
		}
		return v, nil
	default:
		v := strings.TrimSpace(os.Getenv(s.Env))
		if v == "" {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	}
}

func (s *Secret) validate(v *validator, p []any, required bool) {
	switch {
	case s != nil && s.File != "" && s.Env != "":
		v.addf(p, "set file or env, not both")
	case required && !s.set():
		v.addf(p, "required: {file: /path} or {env: NAME} (credentials never sit in the rules file)")
	}
}

// SlackConfig posts to Slack: through an incoming webhook (WebhookURL, a
// secret since the URL is the credential) or through the Web API's
// chat.postMessage (Token, a bot token, and Channel).
type SlackConfig struct {
	WebhookURL *Secret `yaml:"webhook_url"`
	Token      *Secret `yaml:"token"`
	Channel    string  `yaml:"channel"`
	// APIURL is the chat.postMessage endpoint (default
	// https://slack.com/api/chat.postMessage).
	APIURL string `yaml:"api_url"`
	// Title and Text are templates (default [DefaultTitle], [DefaultText]).
	Title        string   `yaml:"title"`
	Text         string   `yaml:"text"`
	Timeout      Duration `yaml:"timeout"`
	SendResolved *bool    `yaml:"send_resolved"`

	title, text *textTemplate
}

// PagerDutyConfig sends PagerDuty Events API v2 events: a trigger per
// firing alert and a resolve per resolved one, with the alert's
// fingerprint as dedup_key.
type PagerDutyConfig struct {
	RoutingKey *Secret `yaml:"routing_key"`
	// URL is the events endpoint (default
	// https://events.pagerduty.com/v2/enqueue).
	URL string `yaml:"url"`
	// Summary and Source are templates over one alert's notification (the
	// group with that alert only); Severity too, one of critical, error,
	// warning, info after rendering (default: the severity label if it is
	// one of them, else error).
	Summary      string   `yaml:"summary"`
	Source       string   `yaml:"source"`
	Severity     string   `yaml:"severity"`
	Timeout      Duration `yaml:"timeout"`
	SendResolved *bool    `yaml:"send_resolved"`

	summary, source, severity *textTemplate
}

// EmailConfig sends e-mail over SMTP. With RequireTLS (the default) the
// server must offer STARTTLS, and the session is encrypted before any
// credential or message is sent.
type EmailConfig struct {
	To        []string `yaml:"to"`
	From      string   `yaml:"from"`
	Smarthost string   `yaml:"smarthost"` // host:port
	// Username and Password authenticate with PLAIN (only over TLS).
	Username   string  `yaml:"auth_username"`
	Password   *Secret `yaml:"auth_password"`
	RequireTLS *bool   `yaml:"require_tls"`
	// CAFile holds the certificates that sign the server's (default: the
	// system's).
	CAFile string `yaml:"ca_file"`
	// Subject, Text and HTML are templates (default [DefaultTitle],
	// [DefaultText], [DefaultEmailHTML]).
	Subject      string   `yaml:"subject"`
	Text         string   `yaml:"text"`
	HTML         string   `yaml:"html"`
	Timeout      Duration `yaml:"timeout"`
	SendResolved *bool    `yaml:"send_resolved"`

	subject, text *textTemplate
	html          *htmlTemplate
}

// TeamsConfig posts to a Microsoft Teams incoming webhook (its URL is a
// secret): an Adaptive Card (Workflows webhooks, the default) or, with
// Format messagecard, a legacy MessageCard (Office 365 connectors).
type TeamsConfig struct {
	WebhookURL   *Secret  `yaml:"webhook_url"`
	Format       string   `yaml:"format"`
	Title        string   `yaml:"title"`
	Text         string   `yaml:"text"`
	Timeout      Duration `yaml:"timeout"`
	SendResolved *bool    `yaml:"send_resolved"`

	title, text *textTemplate
}

func parseTemplate(v *validator, p []any, dst **textTemplate, text, def string) {
	if text == "" {
		text = def
	}
	t, err := parseText(fmt.Sprint(p...), text)
	if err != nil {
		v.addf(p, "template: %v", err)
		return
	}
	*dst = t
}

func (r *Receiver) validateNative(v *validator, p []any) {
	at := func(ks ...any) []any { return append(append([]any{}, p...), ks...) }
	if s := r.Slack; s != nil {
		switch {
		case s.WebhookURL.set() && s.Token.set():
			v.addf(at("slack"), "set webhook_url or token, not both")
		case !s.WebhookURL.set() && !s.Token.set():
			v.addf(at("slack"), "needs webhook_url (incoming webhook) or token and channel (chat.postMessage)")
		case s.Token.set() && s.Channel == "":
			v.addf(at("slack", "channel"), "required with token")
		}
		s.WebhookURL.validate(v, at("slack", "webhook_url"), false)
		s.Token.validate(v, at("slack", "token"), false)
		if s.APIURL != "" {
			if err := checkURL(s.APIURL); err != nil {
				v.addf(at("slack", "api_url"), "%v", err)
			}
		}
		parseTemplate(v, at("slack", "title"), &s.title, s.Title, DefaultTitle)
		parseTemplate(v, at("slack", "text"), &s.text, s.Text, DefaultText)
	}
	if d := r.PagerDuty; d != nil {
		d.RoutingKey.validate(v, at("pagerduty", "routing_key"), true)
		if d.URL != "" {
			if err := checkURL(d.URL); err != nil {
				v.addf(at("pagerduty", "url"), "%v", err)
			}
		}
		parseTemplate(v, at("pagerduty", "summary"), &d.summary, d.Summary, defaultPDSummary)
		parseTemplate(v, at("pagerduty", "source"), &d.source, d.Source, defaultPDSource)
		parseTemplate(v, at("pagerduty", "severity"), &d.severity, d.Severity, defaultPDSeverity)
	}
	if e := r.Email; e != nil {
		if len(e.To) == 0 {
			v.addf(at("email", "to"), "required")
		}
		for i, a := range e.To {
			if _, err := mail.ParseAddress(a); err != nil {
				v.addf(at("email", "to", i), "%q is not an address", a)
			}
		}
		if _, err := mail.ParseAddress(e.From); err != nil {
			v.addf(at("email", "from"), "%q is not an address", e.From)
		}
		if host, port, ok := strings.Cut(e.Smarthost, ":"); !ok || host == "" || port == "" {
			v.addf(at("email", "smarthost"), "%q is not host:port", e.Smarthost)
		}
		e.Password.validate(v, at("email", "auth_password"), e.Username != "")
		if e.Password.set() && e.Username == "" {
			v.addf(at("email", "auth_username"), "required with auth_password")
		}
		if e.RequireTLS != nil && !*e.RequireTLS && e.Username != "" {
			v.addf(at("email", "require_tls"), "credentials are only sent over TLS")
		}
		parseTemplate(v, at("email", "subject"), &e.subject, e.Subject, DefaultTitle)
		parseTemplate(v, at("email", "text"), &e.text, e.Text, DefaultText)
		html := e.HTML
		if html == "" {
			html = DefaultEmailHTML
		}
		t, err := parseHTML("html", html)
		if err != nil {
			v.addf(at("email", "html"), "template: %v", err)
		}
		e.html = t
	}
	if t := r.Teams; t != nil {
		t.WebhookURL.validate(v, at("teams", "webhook_url"), true)
		switch t.Format {
		case "":
			t.Format = "adaptive"
		case "adaptive", "messagecard":
		default:
			v.addf(at("teams", "format"), "%q is not adaptive or messagecard", t.Format)
		}
		parseTemplate(v, at("teams", "title"), &t.title, t.Title, DefaultTitle)
		parseTemplate(v, at("teams", "text"), &t.text, t.Text, DefaultText)
	}
	if w := r.Webhook; w != nil && w.Body != "" {
		parseTemplate(v, at("webhook", "body"), &w.body, w.Body, "")
	}
}

// hasNative reports whether r has a target of the native kinds.
func (r *Receiver) hasNative() bool {
	return r.Slack != nil || r.PagerDuty != nil || r.Email != nil || r.Teams != nil
}

// errNoSecret is returned when a receiver's credential cannot be read.
var errNoSecret = errors.New("credential unavailable")

func readSecret(receiver, field string, s *Secret) (string, error) {
	v, err := s.read()
	if err != nil {
		return "", fmt.Errorf("receiver %s: %s: %w: %w", receiver, field, errNoSecret, err)
	}
	return v, nil
}
