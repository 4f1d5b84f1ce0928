package alerting

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/jetmon/jetmon/internal/redact"
)

// errNoSTARTTLS is a mail server that does not offer STARTTLS while the
// receiver requires TLS.
var errNoSTARTTLS = errors.New("server does not offer STARTTLS (require_tls)")

type emailSender struct {
	cfg         *EmailConfig
	password    string
	roots       *x509.CertPool
	timeout     time.Duration
	receiver    string
	externalURL string
}

func newEmailSender(r *Receiver, externalURL string) (*emailSender, error) {
	e := r.Email
	s := &emailSender{cfg: e, timeout: timeoutOr(e.Timeout), receiver: r.Name, externalURL: externalURL}
	var err error
	if s.password, err = readSecret(r.Name, "email.auth_password", e.Password); err != nil {
		return nil, err
	}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("receiver %s: email.ca_file: %w", r.Name, err)
		}
		s.roots = x509.NewCertPool()
		if !s.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("receiver %s: email.ca_file: no certificate in %s", r.Name, e.CAFile)
		}
	}
	return s, nil
}

func (s *emailSender) kind() string { return "email" }

// EmailMessage renders the message of n (headers and a multipart/
// alternative body with a text and an HTML part) with cfg's templates.
// Header values are stripped of line breaks and MIME-encoded, so a
// template or an event's field cannot add a header.
func EmailMessage(cfg *EmailConfig, n *Notification, receiver, externalURL string, now time.Time) ([]byte, error) {
	d := NewTemplateData(n, receiver, externalURL, nil)
	subject, err := cfg.subject.exec(d)
	if err != nil {
		return nil, fmt.Errorf("email subject: %w", err)
	}
	text, err := cfg.text.exec(d)
	if err != nil {
		return nil, fmt.Errorf("email text: %w", err)
	}
	html, err := cfg.html.exec(d)
	if err != nil {
		return nil, fmt.Errorf("email html: %w", err)
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	boundary := "jetmon-" + hex.EncodeToString(rnd[:])
	oneLine := strings.NewReplacer("\r", " ", "\n", " ").Replace
	var b bytes.Buffer
	for _, h := range [][2]string{
		{"From", cfg.From},
		{"To", strings.Join(cfg.To, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", oneLine(truncateRunes(subject, 900)))},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-Id", "<" + hex.EncodeToString(rnd[:]) + "@jetmon>"},
		{"MIME-Version", "1.0"},
		{"Content-Type", `multipart/alternative; boundary="` + boundary + `"`},
		{"Auto-Submitted", "auto-generated"},
	} {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], oneLine(h[1]))
	}
	for _, part := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: %s; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary, part.typ)
		w := quotedprintable.NewWriter(&b)
		_, _ = w.Write([]byte(part.body))
		_ = w.Close()
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes(), nil
}

// send delivers the message over SMTP: STARTTLS when offered (required
// unless require_tls is false), then PLAIN authentication if configured.
// SMTP 5xx answers are permanent; the rest is retried.
func (s *emailSender) send(ctx context.Context, n *Notification) error {
	msg, err := EmailMessage(s.cfg, n, s.receiver, s.externalURL, time.Now())
	if err != nil {
		return backoff.Permanent(err)
	}
	err = s.deliver(ctx, msg)
	if err == nil {
		return nil
	}
	err = redact.Error(err, s.password)
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 || errors.Is(err, errNoSTARTTLS) {
		return backoff.Permanent(err)
	}
	return err
}

func (s *emailSender) deliver(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(s.cfg.Smarthost)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Smarthost)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // a hanging server is cut off
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return err
	}
	defer func() { _ = c.Close() }()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: s.roots, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	} else if s.cfg.RequireTLS == nil || *s.cfg.RequireTLS {
		return errNoSTARTTLS
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.password, host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(bareAddress(s.cfg.From)); err != nil {
		return err
	}
	for _, to := range s.cfg.To {
		if err := c.Rcpt(bareAddress(to)); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// bareAddress returns the address of "Name <addr>" (validated by the
// rules file's check).
func bareAddress(a string) string {
	if m, err := mail.ParseAddress(a); err == nil {
		return m.Address
	}
	return a
}
