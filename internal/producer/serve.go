package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/health"
	"github.com/jetmon/jetmon/pkg/ingest"
)

// HealthConfig is the health agent's configuration file (JSON).
type HealthConfig struct {
	// Interval between runs of each check (default 10 s).
	Interval Duration      `json:"interval"`
	Checks   []CheckConfig `json:"checks"`
}

// CheckConfig is one target of the health agent.
type CheckConfig struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"` // http, tcp, redis, nats
	URL      string   `json:"url,omitempty"`
	Addr     string   `json:"addr,omitempty"`
	Status   int      `json:"status,omitempty"`       // http: expected status (default 200)
	Slow     Duration `json:"slow,omitempty"`         // http: degraded above this latency
	Password string   `json:"password_env,omitempty"` // redis: name of the variable holding the password
	Critical bool     `json:"critical,omitempty"`
}

// Duration is a time.Duration written as "10s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "10s", "1m30s", ...
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// LoadHealthConfig reads and checks a health configuration file; errors name
// the file and the check.
func LoadHealthConfig(path string) (HealthConfig, error) {
	var c HealthConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("health config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("health config %s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, ch := range c.Checks {
		where := fmt.Sprintf("health config %s: checks[%d]", path, i)
		switch {
		case ch.Name == "":
			return c, fmt.Errorf("%s: name is required", where)
		case seen[ch.Name]:
			return c, fmt.Errorf("%s: name %q is used twice", where, ch.Name)
		}
		seen[ch.Name] = true
		switch ch.Type {
		case "http":
			if !strings.HasPrefix(ch.URL, "http://") && !strings.HasPrefix(ch.URL, "https://") {
				return c, fmt.Errorf("%s (%s): url %q must be http:// or https://", where, ch.Name, ch.URL)
			}
		case "tcp", "redis":
			if _, _, err := net.SplitHostPort(ch.Addr); err != nil {
				return c, fmt.Errorf("%s (%s): addr %q: %w", where, ch.Name, ch.Addr, err)
			}
		case "nats":
		default:
			return c, fmt.Errorf("%s (%s): type %q: must be http, tcp, redis or nats", where, ch.Name, ch.Type)
		}
	}
	return c, nil
}

// checker builds the checker of one configured target.
func (ch CheckConfig) checker(bus *jsbus.Bus, env func(string) (string, bool)) health.Checker {
	switch ch.Type {
	case "http":
		return health.HTTP(&http.Client{}, ch.URL, ch.Status, time.Duration(ch.Slow))
	case "tcp":
		return health.TCP(ch.Addr)
	case "redis":
		pw := ""
		if ch.Password != "" {
			pw, _ = env(ch.Password)
		}
		return health.Redis(ch.Addr, pw)
	}
	return health.NATS(bus.Conn())
}

// ServeOptions configures `producer serve`.
type ServeOptions struct {
	Bus *jsbus.Bus
	// Breaker is the publisher in front of Bus (see NewBreaker).
	Breaker *breaker.Publisher
	// HTTP is the listen address (default 127.0.0.1:9101).
	HTTP string
	// Token, when set, is required on every path but /healthz and /readyz.
	Token string
	// InsecureHTTP allows HTTP beyond loopback without a Token.
	InsecureHTTP bool
	// GrantToken, when set, also lets a client publish the types only the
	// pipeline emits (see ingest.Options.GrantToken).
	GrantToken string
	MaxBody    int64
	// AssignDefaults fills in missing ids and timestamps (see ingest.Options).
	AssignDefaults bool
	// Health, when it has checks, runs the health agent.
	Health HealthConfig
	Source string
	Env    func(string) (string, bool)
	Logger zerolog.Logger
	// Registry receives the metrics; Ready, if set, learns the listen address.
	Registry *prometheus.Registry
	Ready    func(net.Addr)
}

// Serve runs the HTTP ingest and the health agent until ctx ends. The
// ingest publishes through Bus and answers 2xx only for stored events; the
// health agent publishes through Breaker.
func Serve(ctx context.Context, o ServeOptions) error {
	if o.Bus == nil || o.Breaker == nil {
		return errors.New("producer: Bus and Breaker are required")
	}
	if o.HTTP == "" {
		o.HTTP = "127.0.0.1:9101"
	}
	if err := httpd.CheckExposure(o.HTTP, o.Token, o.InsecureHTTP); err != nil {
		return err
	}
	if o.Env == nil {
		o.Env = os.LookupEnv
	}
	if o.Registry == nil {
		o.Registry = httpd.NewRegistry()
	}
	// The ingest publishes straight through the bus, which says when events
	// are stored: a 2xx answer means stored, and a client told 503 re-sends.
	// The breaker is for the health agent, which must never block on the bus.
	ing, err := ingest.New(ingest.Options{
		Publisher: o.Bus, Token: o.Token, GrantToken: o.GrantToken, MaxBody: o.MaxBody, AssignDefaults: o.AssignDefaults,
	})
	if err != nil {
		return err
	}
	hm := health.NewManager(health.Options{Publisher: o.Breaker, Source: o.Source, Interval: time.Duration(o.Health.Interval), Logger: &o.Logger})
	for _, ch := range o.Health.Checks {
		if err := hm.Register(health.Check{Name: ch.Name, Critical: ch.Critical, Checker: ch.checker(o.Bus, o.Env)}); err != nil {
			return err
		}
	}
	if err := hm.Register(health.Check{Name: "monitoring", Checker: health.Monitoring(health.MonitoringState{
		Connected: o.Bus.IsConnected,
		Breaker: func() (string, int) {
			st := o.Breaker.Stats()
			return string(st.State), st.SpoolDepth
		},
	})}); err != nil {
		return err
	}
	mux := httpd.Mux(o.Registry)
	ing.Mount(mux)
	mux.Handle("GET /readyz", hm.Readyz())
	guarded := httpd.ForAddr(o.HTTP, o.Token, o.GrantToken).Wrap(mux)
	return httpd.ServeWhile(ctx, o.HTTP, guarded, o.Ready, hm.Run)
}
