package alerting_test

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
)

// hook is a receiver's HTTP peer: it validates each body with check,
// records it with its arrival time, and answers with reply.
type hook struct {
	mu     sync.Mutex
	bodies [][]byte
	at     []time.Time
	srv    *httptest.Server
}

func newHook(t *testing.T, check func(r *http.Request, body []byte) error, reply func(n int, w http.ResponseWriter)) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := check(r, body); err != nil {
			t.Errorf("%s: payload breaks the schema: %v\n%s", r.URL.Path, err, body)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.at = append(h.at, time.Now())
		n := len(h.bodies)
		h.mu.Unlock()
		reply(n, w)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) got() ([][]byte, []time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte{}, h.bodies...), append([]time.Time{}, h.at...)
}

// mailPeer is a real SMTP server (go-smtp) offering STARTTLS with a
// certificate the test's CA signs, and PLAIN authentication only over TLS.
type mailPeer struct {
	mu       sync.Mutex
	msgs     []*mail.Message
	rcpts    [][]string
	authed   []bool
	tls      []bool
	user, pw string
	addr     string
	caFile   string
}

type mailSession struct {
	p      *mailPeer
	c      *smtp.Conn
	authed bool
	rcpts  []string
}

func (p *mailPeer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &mailSession{p: p, c: c}, nil
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pw string) error {
		if user != s.p.user || pw != s.p.pw {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}
func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(m.Body)
	m.Body = bytes.NewReader(body)
	_, isTLS := s.c.TLSConnectionState()
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.msgs, s.p.rcpts = append(s.p.msgs, m), append(s.p.rcpts, s.rcpts)
	s.p.authed, s.p.tls = append(s.p.authed, s.authed), append(s.p.tls, isTLS)
	return nil
}
func (s *mailSession) Reset()        { s.rcpts = nil }
func (s *mailSession) Logout() error { return nil }

func newMailPeer(t *testing.T) *mailPeer {
	// httptest's certificate is valid for 127.0.0.1: borrow it.
	certSrv := httptest.NewTLSServer(http.NotFoundHandler())
	certSrv.Close()
	p := &mailPeer{user: "jetmon", pw: "smtp-Secret-pw-42"}
	p.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(p)
	s.Domain = "127.0.0.1"
	s.TLSConfig = &tls.Config{Certificates: certSrv.TLS.Certificates, MinVersion: tls.VersionTLS12}
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { _ = s.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return p
}

func (p *mailPeer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

func secretFile(t *testing.T, v string) string {
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// syncWriter collects log output from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Every native receiver gets a firing and then a resolved notification in
// its documented schema; PagerDuty's first answer is a 429 with
// Retry-After, which is honoured; a receiver that hangs holds up none of
// the others; no credential reaches the log.
func TestNativeReceivers(t *testing.T) {
	const (
		routingKey = "R0utingKey0123456789abcdefABCDEF"
		botToken   = "xoxb-1234-5678-SecretBotToken"
		hookPath   = "/services/T000/B000/XXXXsecretXXXXslackXXXX1"
	)
	pdTimes := make(chan time.Time, 10)
	pd := newHook(t, func(r *http.Request, b []byte) error {
		pdTimes <- time.Now()
		_, err := validatePagerDuty(b)
		return err
	}, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"status":"throttle event","message":"Requests for this service are arriving too quickly (%s)"}`, routingKey)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"status":"success","message":"Event processed"}`)
	})
	slackHook := newHook(t, func(r *http.Request, b []byte) error {
		if r.URL.Path != hookPath {
			return fmt.Errorf("path %s", r.URL.Path)
		}
		_, err := validateSlack(b, false)
		return err
	}, func(_ int, w http.ResponseWriter) { fmt.Fprint(w, "ok") })
	slackChat := newHook(t, func(r *http.Request, b []byte) error {
		if r.Header.Get("Authorization") != "Bearer "+botToken || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			return errors.New("not_authed")
		}
		_, err := validateSlack(b, true)
		return err
	}, func(_ int, w http.ResponseWriter) {
		fmt.Fprint(w, `{"ok":true,"channel":"C123ABC456","ts":"1503435956.000247"}`)
	})
	teams := newHook(t, func(_ *http.Request, b []byte) error { _, err := validateTeams(b); return err },
		func(_ int, w http.ResponseWriter) { fmt.Fprint(w, "1") })
	custom := newHook(t, func(_ *http.Request, b []byte) error {
		var v struct {
			Status string `json:"status"`
			Title  string `json:"title"`
			Count  int    `json:"count"`
		}
		return strict(b, &v)
	}, func(_ int, w http.ResponseWriter) {})
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); hanging.Close() })
	mp := newMailPeer(t)
	t.Setenv("JETMON_TEST_SMTP_PW", mp.pw)
	t.Setenv("JETMON_TEST_SLACK_HOOK", slackHook.srv.URL+hookPath)

	rules := fmt.Sprintf(`
rules:
  - alert: Slow
    field: p95
    threshold: 250
    labels: {severity: critical}
    annotations: {summary: "{{ .Labels.operation }} p95 {{ .Value }} ms"}
route:
  receiver: all
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  routes:
    - {matchers: {alertname: Slow}, receiver: all, continue: true}
    - {matchers: {alertname: Slow}, receiver: chat}
receivers:
  - name: all
    slack: {webhook_url: {env: JETMON_TEST_SLACK_HOOK}}
    pagerduty: {routing_key: {file: %q}, url: %q}
    email:
      to: ["Ops <ops@example.com>"]
      from: jetmon@example.com
      smarthost: %q
      auth_username: jetmon
      auth_password: {env: JETMON_TEST_SMTP_PW}
      ca_file: %q
    teams: {webhook_url: {file: %q}}
    webhook:
      url: %q
      body: '{"status": {{ .Status | json }}, "title": {{ .CommonAnnotations.summary | json }}, "count": {{ len .Alerts }}}'
  - name: chat
    webhook: {url: %q, timeout: 300ms}
    slack: {token: {file: %q}, channel: C123ABC456, api_url: %q}
`, secretFile(t, routingKey), pd.srv.URL+"/v2/enqueue", mp.addr, mp.caFile, secretFile(t, teams.srv.URL+"/webhookb2/abc"),
		custom.srv.URL, hanging.URL, secretFile(t, botToken), slackChat.srv.URL+"/api/chat.postMessage")
	cfg, err := alerting.Parse("receivers.yaml", []byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncWriter{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	svc, ctx := runService(t, alerting.Options{Config: cfg, Instance: "t", RetryFor: 20 * time.Second, ExternalURL: "http://am.example", Logger: &log})

	op := "charge <!channel> & <https://evil.example|click>"
	if err := svc.Observe(ctx, window("checkout", op, 400)); err != nil {
		t.Fatal(err)
	}
	firingDone := func() bool {
		a, _ := slackHook.got()
		b, _ := slackChat.got()
		c, _ := teams.got()
		d, _ := custom.got()
		e, _ := pd.got()
		return len(a) == 1 && len(b) == 1 && len(c) == 1 && len(d) == 1 && len(e) == 2 && mp.count() == 1
	}
	testutil.WaitFor(t, 15*time.Second, firingDone, "firing notifications at every receiver")
	if err := svc.Observe(ctx, window("checkout", op, 100)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, func() bool {
		a, _ := slackHook.got()
		b, _ := slackChat.got()
		c, _ := teams.got()
		d, _ := custom.got()
		e, _ := pd.got()
		return len(a) == 2 && len(b) == 2 && len(c) == 2 && len(d) == 2 && len(e) == 3 && mp.count() == 2
	}, "resolved notifications at every receiver")

	// PagerDuty: the 429 was honoured, then trigger and resolve share the
	// alert's fingerprint as dedup key.
	first, second := <-pdTimes, <-pdTimes
	if gap := second.Sub(first); gap < time.Second {
		t.Errorf("PagerDuty retried %v after a 429 with Retry-After: 1", gap)
	}
	pdBodies, _ := pd.got()
	trig, _ := validatePagerDuty(pdBodies[1])
	res, _ := validatePagerDuty(pdBodies[2])
	alerts, err := svc.Alerts(ctx)
	if err != nil || len(alerts) != 1 {
		t.Fatalf("alerts: %v %v", alerts, err)
	}
	fp := alerts[0].Fingerprint
	if *trig.EventAction != "trigger" || *trig.DedupKey != fp || *trig.RoutingKey != routingKey || *trig.Payload.Severity != "critical" ||
		*trig.Payload.Source != "checkout" || !strings.HasPrefix(*trig.Payload.Summary, "Slow on checkout: charge") {
		t.Errorf("trigger: %s", pdBodies[1])
	}
	if *res.EventAction != "resolve" || *res.DedupKey != fp || res.Payload != nil {
		t.Errorf("resolve: %s", pdBodies[2])
	}
	// Slack: colours, titles, and the operation's mrkdwn escaped.
	sb, _ := slackHook.got()
	fire, _ := validateSlack(sb[0], false)
	reso, _ := validateSlack(sb[1], false)
	if fire.Text != "[FIRING:1] Slow" || fire.Attachments[0].Color != "danger" || reso.Text != "[RESOLVED] Slow" || reso.Attachments[0].Color != "good" {
		t.Errorf("slack: %s / %s", sb[0], sb[1])
	}
	if txt := fire.Attachments[0].Text; strings.Contains(txt, "<!channel>") || strings.Contains(txt, "<https://evil") ||
		!strings.Contains(txt, "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;") {
		t.Errorf("slack text not escaped: %q", txt)
	}
	cb, _ := slackChat.got()
	chatMsg, _ := validateSlack(cb[0], true)
	if *chatMsg.Channel != "C123ABC456" || chatMsg.Text != "[FIRING:1] Slow" {
		t.Errorf("slack chat: %s", cb[0])
	}
	tb, _ := teams.got()
	tmsg, _ := validateTeams(tb[1])
	if tmsg.Attachments[0].Content.Body[0].Text != "[RESOLVED] Slow" || tmsg.Attachments[0].Content.Body[0].Color != "good" {
		t.Errorf("teams: %s", tb[1])
	}
	db, _ := custom.got()
	want0 := `{"status": "firing", "title": "charge \u003c!channel\u003e \u0026 \u003chttps://evil.example|click\u003e p95 400 ms", "count": 1}`
	if string(db[0]) != want0 || string(db[1]) != `{"status": "resolved", "title": "charge \u003c!channel\u003e \u0026 \u003chttps://evil.example|click\u003e p95 100 ms", "count": 1}` {
		t.Errorf("custom webhook bodies:\n%s\n%s\nwant first %s", db[0], db[1], want0)
	}
	// E-mail: over TLS, authenticated, multipart with escaped HTML.
	mp.mu.Lock()
	for i, m := range mp.msgs {
		subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		want := []string{"[FIRING:1] Slow", "[RESOLVED] Slow"}[i]
		if subj != want || !mp.tls[i] || !mp.authed[i] || len(mp.rcpts[i]) != 1 || mp.rcpts[i][0] != "ops@example.com" {
			t.Errorf("mail %d: subject %q tls %v auth %v rcpts %v", i, subj, mp.tls[i], mp.authed[i], mp.rcpts[i])
		}
		_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
		mr := multipart.NewReader(m.Body, params["boundary"])
		var types []string
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(part)
			types = append(types, part.Header.Get("Content-Type"))
			if strings.HasPrefix(part.Header.Get("Content-Type"), "text/html") && (strings.Contains(string(b), "<!channel>") || !strings.Contains(string(b), "&lt;!channel&gt;")) {
				t.Errorf("html part not escaped: %s", b)
			}
		}
		if strings.Join(types, ",") != "text/plain; charset=UTF-8,text/html; charset=UTF-8" {
			t.Errorf("mail %d parts: %v", i, types)
		}
	}
	mp.mu.Unlock()
	for _, secret := range []string{routingKey, botToken, mp.pw, "XXXXsecretXXXXslackXXXX1"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log holds a credential %q:\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "429") {
		t.Errorf("the 429 was not logged:\n%s", logs.String())
	}
}

// A receiver that refuses plain-text SMTP: with require_tls (the default)
// a server without STARTTLS gets nothing, not even the credentials.
func TestEmailRequiresTLS(t *testing.T) {
	var got []string
	var mu sync.Mutex
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		fmt.Fprint(c, "220 plain ESMTP\r\n")
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(buf[:n]))
			mu.Unlock()
			switch {
			case bytes.HasPrefix(buf[:n], []byte("EHLO")):
				fmt.Fprint(c, "250-plain\r\n250 AUTH PLAIN\r\n")
			case bytes.HasPrefix(buf[:n], []byte("QUIT")):
				fmt.Fprint(c, "221 bye\r\n")
				return
			default:
				fmt.Fprint(c, "250 ok\r\n")
			}
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	t.Setenv("JETMON_TEST_SMTP_PW", "pw-Secret-123")
	cfg, err := alerting.Parse("m.yaml", []byte(fmt.Sprintf(`
rules: [{alert: Slow, field: p95, threshold: 250}]
receivers:
  - name: m
    email: {to: [a@example.com], from: b@example.com, smarthost: %q, auth_username: u, auth_password: {env: JETMON_TEST_SMTP_PW}}
route: {receiver: m, group_wait: 0s}
`, ln.Addr().String())))
	if err != nil {
		t.Fatal(err)
	}
	svc, ctx := runService(t, alerting.Options{Config: cfg, Instance: "t"})
	if err := svc.Observe(ctx, window("checkout", "charge", 400)); err != nil {
		t.Fatal(err)
	}
	select { // the client hangs up
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not hang up")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range got {
		if strings.HasPrefix(l, "AUTH") || strings.HasPrefix(l, "MAIL") {
			t.Errorf("sent %q to a server without TLS", l)
		}
	}
}

// Header injection through a label value: line breaks in the subject are
// flattened and the value MIME-encoded, so no header can be added.
func TestEmailHeaderInjection(t *testing.T) {
	cfg, err := alerting.Parse("e.yaml", []byte(`
rules: [{alert: Slow, field: p95, threshold: 1}]
receivers:
  - name: m
    email: {to: [a@example.com], from: b@example.com, smarthost: "127.0.0.1:25"}
`))
	if err != nil {
		t.Fatal(err)
	}
	l := alerting.Labels{"alertname": "Slow\r\nBcc: victim@example.com", "source": "x\nX-Evil: 1"}
	n := &alerting.Notification{GroupLabels: l, Firing: []*alerting.Alert{{Fingerprint: "f", Rule: "Slow", Labels: l, State: alerting.StateFiring}}}
	msg, err := alerting.EmailMessage(cfg.Receivers[0].Email, n, "m", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Bcc") != "" || m.Header.Get("X-Evil") != "" {
		t.Fatalf("a label added a header:\n%s", msg)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if subj != "[FIRING:1] Slow  Bcc: victim@example.com x X-Evil: 1" {
		t.Fatalf("subject %q", subj)
	}
}

// chat.postMessage answers 200 with ok false: channel_not_found is not
// retried, ratelimited is (after its Retry-After).
func TestSlackChatAPIErrors(t *testing.T) {
	for _, c := range []struct {
		answer   string
		attempts int
	}{
		{`{"ok":false,"error":"channel_not_found"}`, 1},
		{`{"ok":false,"error":"ratelimited"}`, 2},
	} {
		t.Run(c.answer, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if calls.Add(1) == 1 {
					fmt.Fprint(w, c.answer)
					return
				}
				fmt.Fprint(w, `{"ok":true}`)
			}))
			t.Cleanup(srv.Close)
			t.Setenv("JETMON_TEST_SLACK_TOKEN", "xoxb-test-token")
			cfg, err := alerting.Parse("s.yaml", []byte(fmt.Sprintf(`
rules: [{alert: Slow, field: p95, threshold: 1}]
route: {receiver: s, group_wait: 0s}
receivers:
  - name: s
    slack: {token: {env: JETMON_TEST_SLACK_TOKEN}, channel: C1, api_url: %q}
`, srv.URL)))
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			svc, ctx := runService(t, alerting.Options{Config: cfg, Instance: "t", RetryFor: 10 * time.Second, Registerer: reg})
			if err := svc.Observe(ctx, window("checkout", "charge", 400)); err != nil {
				t.Fatal(err)
			}
			want := "failed"
			if c.attempts == 2 {
				want = "sent"
			}
			testutil.WaitFor(t, 10*time.Second, func() bool { return notifications(t, reg, want) == 1 }, "the notification's outcome")
			if got := int(calls.Load()); got != c.attempts {
				t.Fatalf("%d attempts, want %d", got, c.attempts)
			}
		})
	}
}

// notifications returns jetmon_alertmanager_notifications_total summed
// over the series with the given result.
func notifications(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "jetmon_alertmanager_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
