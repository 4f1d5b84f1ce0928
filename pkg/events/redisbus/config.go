package redisbus

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Config configures a [Bus]; [DefaultConfig] gives the defaults. A zero duration or count means the default.
type Config struct {
	// Host and Port of the Redis server (default 127.0.0.1:6379).
	Host string
	Port int
	// Username and Password authenticate (ACL or requirepass); never logged.
	Username, Password string
	// DB selects the database (default 0).
	DB int
	// TLS, when set, encrypts the connection.
	TLS *tls.Config
	// PoolSize bounds the publishing connections (default 10 per CPU).
	PoolSize int
	// DialTimeout, ReadTimeout and WriteTimeout bound network calls
	// (defaults 5 s, 3 s, 3 s).
	DialTimeout, ReadTimeout, WriteTimeout time.Duration

	// Prefix starts every key (default "jetmon:"): the streams are
	// <prefix><family>, e.g. jetmon:performance.
	Prefix string
	// MaxLen caps each stream at about this many entries (XADD MAXLEN ~), so
	// that Redis memory stays bounded (default 1,000,000; negative: no cap).
	// A consumer further behind than that loses the oldest entries.
	MaxLen int64
	// MaxPayload limits one event's encoding (default 1 MiB).
	MaxPayload int

	// MaxDeliver bounds deliveries of one event to a failing handler before
	// it is dead-lettered (default 5); events.MaxDeliver overrides it.
	MaxDeliver int
	// RedeliveryDelay is the wait before the first redelivery; it doubles
	// per attempt up to 5 s (default 100 ms).
	RedeliveryDelay time.Duration
	// ClaimTimeout is how long an entry may stay pending with a consumer that
	// stopped (crashed) before another member of its group claims it
	// (default 30 s).
	ClaimTimeout time.Duration
	// BlockFor is how long one blocking read waits (default 1 s).
	BlockFor time.Duration
	// ReadCount is how many entries one read takes (default 128; group
	// members take at most 16, so that work spreads).
	ReadCount int64
	// CloseTimeout bounds Close's wait for handlers (default 10 s).
	CloseTimeout time.Duration

	// Logger receives connection and consumer problems; nil discards them.
	// go-redis's own messages (pool and dial errors) go through one logger
	// per process: Connect routes them to the Logger of the latest Connect
	// that had one, and discards them while none has, instead of
	// go-redis's default of printing them to stderr.
	Logger *zerolog.Logger
}

// DefaultConfig returns the defaults, for a server at 127.0.0.1:6379: set
// Host and Port (and credentials) for another.
func DefaultConfig() Config {
	return Config{
		Host: "127.0.0.1", Port: 6379, PoolSize: 0, DialTimeout: 5 * time.Second, ReadTimeout: 3 * time.Second,
		WriteTimeout: 3 * time.Second, Prefix: "jetmon:", MaxLen: 1_000_000, MaxPayload: 1 << 20, MaxDeliver: 5,
		RedeliveryDelay: 100 * time.Millisecond, ClaimTimeout: 30 * time.Second, BlockFor: time.Second,
		ReadCount: 128, CloseTimeout: 10 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Host == "" {
		c.Host = d.Host
	}
	if c.Port == 0 {
		c.Port = d.Port
	}
	c.DialTimeout = cmp.Or(c.DialTimeout, d.DialTimeout)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, d.ReadTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, d.WriteTimeout)
	c.Prefix = cmp.Or(c.Prefix, d.Prefix)
	c.MaxLen = cmp.Or(c.MaxLen, d.MaxLen)
	c.MaxPayload = cmp.Or(c.MaxPayload, d.MaxPayload)
	c.MaxDeliver = cmp.Or(c.MaxDeliver, d.MaxDeliver)
	c.RedeliveryDelay = cmp.Or(c.RedeliveryDelay, d.RedeliveryDelay)
	c.ClaimTimeout = cmp.Or(c.ClaimTimeout, d.ClaimTimeout)
	c.BlockFor = cmp.Or(c.BlockFor, d.BlockFor)
	c.ReadCount = cmp.Or(c.ReadCount, d.ReadCount)
	c.CloseTimeout = cmp.Or(c.CloseTimeout, d.CloseTimeout)
	return c
}

// Validate reports the first bad field, by name.
func (c Config) Validate() error {
	switch {
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("redisbus config: Port %d: not a TCP port", c.Port)
	case c.DB < 0:
		return fmt.Errorf("redisbus config: DB %d: must not be negative", c.DB)
	case c.PoolSize < 0:
		return fmt.Errorf("redisbus config: PoolSize %d: must not be negative", c.PoolSize)
	case c.MaxDeliver < 0:
		return fmt.Errorf("redisbus config: MaxDeliver %d: must not be negative", c.MaxDeliver)
	case c.DialTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.RedeliveryDelay < 0 || c.ClaimTimeout < 0 || c.BlockFor < 0:
		return errors.New("redisbus config: durations must not be negative")
	}
	return nil
}

// Addr returns host:port.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// options returns the go-redis options of one client with poolSize connections.
func (c Config) options(poolSize int) *redis.Options {
	return &redis.Options{
		Addr: c.Addr(), Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS,
		PoolSize: poolSize, DialTimeout: c.DialTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		ContextTimeoutEnabled: true,
	}
}
