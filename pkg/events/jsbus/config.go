package jsbus

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/streams"
)

// Config configures a [Bus]. [DefaultConfig] gives the defaults; a zero
// duration or count in a field means "the default".
type Config struct {
	// URLs are the servers to connect to (default nats://127.0.0.1:4222).
	// Credentials embedded in a URL are accepted but never logged.
	URLs []string
	// Name is the client name shown by the server (default "jetmon").
	Name string

	// User and Password, Token, CredsFile (a .creds file) or NKeySeedFile
	// authenticate the connection. None of them ever appears in a log line
	// or an error.
	User, Password, Token string
	CredsFile             string
	NKeySeedFile          string
	// TLS configures a TLS connection when any of its files is set.
	TLS TLSConfig

	ConnectTimeout time.Duration // default 5 s
	ReconnectWait  time.Duration // default 1 s
	MaxReconnects  int           // default -1: forever
	PingInterval   time.Duration // default 5 s: a silently dead server (a cut network) is noticed within PingInterval × MaxPingsOut
	MaxPingsOut    int           // default 2
	// WriteTimeout bounds a write to the server (default PingInterval ×
	// MaxPingsOut). A busy publisher to a server that vanished without
	// closing the connection (a cut network) fills the socket's buffer and
	// blocks in a write, holding the connection, so that pings cannot even
	// be sent: without this bound nats.go waits a minute before it
	// reconnects, and every Publish waits with it.
	WriteTimeout time.Duration

	// Conn, when set, is used instead of dialling; the bus does not close it.
	Conn *nats.Conn
	// ExtraOptions are appended to the connection options (e.g. the
	// in-process option of an embedded server).
	ExtraOptions []nats.Option

	// SkipStreams leaves stream creation to someone else; by default the bus
	// applies the definitions in streams/ at connect.
	SkipStreams bool
	// Streams adjusts the definitions (replicas, sizes) when they are applied.
	Streams streams.Options

	// SyncPublish makes Publish wait for the server's acknowledgement. By
	// default Publish returns once the message is handed to the connection;
	// acknowledgements are collected in the background, failures retried
	// (same Nats-Msg-Id, so never duplicated) and, when retries run out,
	// counted and passed to OnPublishError. [Bus.Flush] waits for them.
	SyncPublish bool
	// PublishTimeout bounds the wait for an acknowledgement (default 5 s):
	// a SyncPublish Publish waits at most this long; an async ack not
	// received within it counts as a failure (retried, then reported). It
	// does not bound an async Publish call, which blocks only when
	// MaxPendingAcks are outstanding, and then at most 200 ms (nats.go's
	// stall wait) before it fails.
	PublishTimeout time.Duration
	// MaxPendingAcks bounds unacknowledged async publishes (default 4096).
	MaxPendingAcks int
	// PublishRetries is how often a failed async publish is re-sent
	// (default 3; negative: never).
	PublishRetries int
	// BufferWhileDisconnected lets Publish hand messages to nats.go's
	// reconnect buffer while the connection is down. By default Publish
	// fails at once with [ErrNotConnected] instead, so that a wrapping
	// breaker (pkg/breaker) can spool the event without waiting.
	BufferWhileDisconnected bool
	// OnPublishError receives async publishes that failed for good, with
	// their message (subject, data, headers) so that a caller can spool it.
	// It is called from a bus goroutine and must not block.
	OnPublishError func(msg *nats.Msg, err error)

	// BatchMaxEvents > 1 turns batching on: events of one subject are sent
	// together, as one JSON-array message, when this many are waiting or
	// BatchMaxDelay passed since the first.
	BatchMaxEvents int
	// BatchMaxDelay bounds how long an event waits in a batch (default 2 ms).
	BatchMaxDelay time.Duration

	// MaxPayload limits one message; default and upper bound: the server's
	// max_payload.
	MaxPayload int

	// AckWait is how long the server waits for a handler before redelivering
	// (default 30 s).
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one message before it is dead-lettered
	// (default 5); events.MaxDeliver overrides it per subscription.
	MaxDeliver int
	// RedeliveryDelay is the delay before the first redelivery after a handler
	// error; it doubles per attempt up to 30 s (default 1 s).
	RedeliveryDelay time.Duration
	// MaxAckPending bounds unacknowledged messages per consumer (default 1024).
	MaxAckPending int
	// PullBatch is how many messages a subscription buffers per pull (default
	// 256), at most a quarter of MaxAckPending.
	PullBatch int
	// CloseTimeout bounds Close's wait for pending acks and handlers (default 10 s).
	CloseTimeout time.Duration

	// Logger receives connection and consumer events; nil discards them.
	Logger *zerolog.Logger
}

// TLSConfig names the files of a TLS connection.
type TLSConfig struct {
	// CAFile verifies the server; empty uses the system roots.
	CAFile string
	// CertFile and KeyFile present a client certificate (mutual TLS).
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
}

func (t TLSConfig) enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// DefaultConfig returns the defaults, connecting to nats://127.0.0.1:4222.
func DefaultConfig() Config {
	return Config{
		URLs:            []string{nats.DefaultURL},
		Name:            "jetmon",
		ConnectTimeout:  5 * time.Second,
		ReconnectWait:   time.Second,
		MaxReconnects:   -1,
		PingInterval:    5 * time.Second,
		MaxPingsOut:     2,
		PublishTimeout:  5 * time.Second,
		MaxPendingAcks:  4096,
		PublishRetries:  3,
		BatchMaxDelay:   2 * time.Millisecond,
		AckWait:         30 * time.Second,
		MaxDeliver:      5,
		RedeliveryDelay: time.Second,
		MaxAckPending:   1024,
		PullBatch:       256,
		CloseTimeout:    10 * time.Second,
	}
}

// withDefaults fills every zero field from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.URLs) == 0 {
		c.URLs = d.URLs
	}
	c.Name = cmp.Or(c.Name, d.Name)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, d.ConnectTimeout)
	c.ReconnectWait = cmp.Or(c.ReconnectWait, d.ReconnectWait)
	c.MaxReconnects = cmp.Or(c.MaxReconnects, d.MaxReconnects)
	c.PingInterval = cmp.Or(c.PingInterval, d.PingInterval)
	c.MaxPingsOut = cmp.Or(c.MaxPingsOut, d.MaxPingsOut)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, c.PingInterval*time.Duration(max(c.MaxPingsOut, 1)))
	c.PublishTimeout = cmp.Or(c.PublishTimeout, d.PublishTimeout)
	c.MaxPendingAcks = cmp.Or(c.MaxPendingAcks, d.MaxPendingAcks)
	c.PublishRetries = cmp.Or(c.PublishRetries, d.PublishRetries)
	c.BatchMaxDelay = cmp.Or(c.BatchMaxDelay, d.BatchMaxDelay)
	c.AckWait = cmp.Or(c.AckWait, d.AckWait)
	c.MaxDeliver = cmp.Or(c.MaxDeliver, d.MaxDeliver)
	c.RedeliveryDelay = cmp.Or(c.RedeliveryDelay, d.RedeliveryDelay)
	c.MaxAckPending = cmp.Or(c.MaxAckPending, d.MaxAckPending)
	c.PullBatch = cmp.Or(c.PullBatch, d.PullBatch)
	c.CloseTimeout = cmp.Or(c.CloseTimeout, d.CloseTimeout)
	return c
}

// Validate reports the first bad field, by name.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, u := range c.URLs {
		if _, err := url.Parse(u); err != nil || u == "" {
			return fmt.Errorf("jsbus config: URLs: %q is not a URL", Redact(u))
		}
	}
	switch {
	case c.ConnectTimeout < 0, c.ReconnectWait < 0, c.PingInterval < 0, c.WriteTimeout < 0, c.PublishTimeout < 0,
		c.BatchMaxDelay < 0, c.AckWait < 0, c.RedeliveryDelay < 0, c.CloseTimeout < 0:
		return errors.New("jsbus config: durations must not be negative")
	case c.MaxPendingAcks < 0:
		return fmt.Errorf("jsbus config: MaxPendingAcks %d: must not be negative", c.MaxPendingAcks)
	case c.BatchMaxEvents < 0:
		return fmt.Errorf("jsbus config: BatchMaxEvents %d: must not be negative", c.BatchMaxEvents)
	case c.MaxDeliver < 1:
		return fmt.Errorf("jsbus config: MaxDeliver %d: must be at least 1", c.MaxDeliver)
	case c.MaxPayload < 0:
		return fmt.Errorf("jsbus config: MaxPayload %d: must not be negative", c.MaxPayload)
	case c.SyncPublish && c.BatchMaxEvents > 1:
		return errors.New("jsbus config: SyncPublish and BatchMaxEvents > 1 exclude each other: batches are acknowledged asynchronously")
	case c.Token != "" && c.User != "":
		return errors.New("jsbus config: set either Token or User/Password, not both")
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return errors.New("jsbus config: TLS.CertFile and TLS.KeyFile go together")
	}
	return nil
}

// natsOptions turns the connection part of c into nats.go options.
func (c Config) natsOptions(log zerolog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(c.ConnectTimeout),
		nats.ReconnectWait(c.ReconnectWait),
		nats.MaxReconnects(c.MaxReconnects),
		nats.PingInterval(c.PingInterval),
		nats.MaxPingsOutstanding(c.MaxPingsOut),
		nats.FlusherTimeout(c.WriteTimeout),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn().Err(err).Str("server", nc.ConnectedUrlRedacted()).Msg("disconnected from NATS")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS async error")
		}),
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.CredsFile != "" {
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("jsbus config: CredsFile: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeySeedFile != "" {
		if _, err := os.Stat(c.NKeySeedFile); err != nil {
			return nil, fmt.Errorf("jsbus config: NKeySeedFile: %w", err)
		}
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			// The parser's message may quote the file; say only what is wrong.
			return nil, fmt.Errorf("jsbus config: NKeySeedFile %s: no valid nkey seed in it", c.NKeySeedFile)
		}
		opts = append(opts, o)
	}
	if c.TLS.enabled() {
		tc, err := c.TLS.load()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return append(opts, c.ExtraOptions...), nil
}

func (t TLSConfig) load() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("jsbus config: TLS.CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("jsbus config: TLS.CAFile %s: no PEM certificates in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("jsbus config: TLS.CertFile/KeyFile: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Redact hides the password (or token) of a URL's user info.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		if i := strings.Index(u, "@"); i >= 0 {
			if j := strings.Index(u, "://"); j >= 0 && j < i {
				return u[:j+3] + "REDACTED" + u[i:]
			}
		}
		return u
	}
	if _, has := p.User.Password(); has {
		p.User = url.UserPassword(p.User.Username(), "REDACTED")
	} else {
		p.User = url.User("REDACTED")
	}
	return p.String()
}
