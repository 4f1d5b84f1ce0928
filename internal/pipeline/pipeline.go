// Package pipeline is `jetmon up`: the whole pipeline in one process. It
// starts an embedded NATS JetStream server, applies the streams, and runs the
// producer (HTTP ingest behind the circuit breaker, a load generator with a
// slow operation, a flapping component), the aggregator and the alert
// manager on it, with a live terminal view of the latest windows and alerts.
package pipeline

import (
	"context"
	"crypto/rand"
	_ "embed" // the demo rules
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/internal/natsauth"
	"github.com/jetmon/jetmon/internal/producer"
	"github.com/jetmon/jetmon/pkg/events"
)

//go:embed rules.yaml
var demoRules []byte

// DemoRules returns the rules run when Options.Rules is empty.
func DemoRules() []byte { return demoRules }

// Options configure [Run].
type Options struct {
	// DataDir is the embedded server's JetStream store; a restart resumes it.
	DataDir string
	// NATSPort, when positive, lets NATS clients (the nats CLI) connect on
	// NATSHost:NATSPort (default host 127.0.0.1).
	NATSPort int
	NATSHost string
	// NATS says who may connect on NATSPort; see [NATSAccess].
	NATS NATSAccess
	// HTTP is the address of the one HTTP server (ingest, APIs, metrics).
	HTTP string
	// Token, when set, is required on every HTTP path but /healthz and
	// /readyz. GrantToken, when set, lets an ingest request that presents it
	// instead publish the types only the pipeline emits (aggregated windows,
	// monitoring control, threshold events); without it nobody can.
	Token, GrantToken string
	// InsecureHTTP allows HTTP beyond loopback without a Token.
	InsecureHTTP bool
	// Window is the aggregation window (default 5s).
	Window time.Duration
	// TraceHorizon is how long a trace stays open after its last span
	// (default 10s, see pkg/trace).
	TraceHorizon time.Duration
	// Rate is the load generator's requests per second; 0 turns the demo
	// workload (load, flapping component) off.
	Rate int
	// FlapEvery is how often the demo component changes state (default 20s).
	FlapEvery time.Duration
	// Rules is a rules file; empty runs [DemoRules]. A value on Reload
	// re-reads it (SIGHUP).
	Rules  string
	Reload <-chan struct{}
	// View receives the live view every ViewEvery (default 2s); nil: none.
	// ANSI says whether to redraw in place (a terminal).
	View      io.Writer
	ViewEvery time.Duration
	ANSI      bool
	Logger    zerolog.Logger
	// Ready, if set, is called with the HTTP address once everything runs.
	Ready func(httpAddr net.Addr, natsURL string)
}

// NATSAccess configures the users of the embedded server's listener. The
// pipeline's own parts connect in-process as an internal user whose password
// is made anew at each start and never leaves the process.
type NATSAccess struct {
	// NoGuests refuses clients without credentials; by default they connect
	// as natsauth.Guest: they may publish events (not the pipeline-only
	// types) and read every stream, and manage nothing.
	NoGuests bool
	// Passwords of the roles' users (natsauth.Operator, Producer, Reader,
	// ...); a role without a password has no user. Only the operator can
	// create, change, purge or delete streams.
	Passwords map[natsauth.Role]string
	// Insecure allows a listener beyond loopback that guests can use.
	Insecure bool
}

// ErrNATSExposed reports a NATS listener beyond loopback open to guests.
var ErrNATSExposed = errors.New("a NATS listener beyond loopback must not admit guests")

// Validate reports the first unsafe or impossible setting, naming it: HTTP
// beyond loopback without a token ([httpd.ErrExposed]), a NATS listener
// beyond loopback open to guests ([ErrNATSExposed]), an unknown role or a
// short password.
func (o Options) Validate() error {
	if o.NATSHost == "" {
		o.NATSHost = "127.0.0.1"
	}
	if err := httpd.CheckExposure(o.HTTP, o.Token, o.InsecureHTTP); err != nil {
		return err
	}
	if o.NATSPort != 0 && !o.NATS.NoGuests && !o.NATS.Insecure && !httpd.IsLoopback(o.NATSHost) {
		return fmt.Errorf("nats host %s: %w (refuse guests, or allow it explicitly)", o.NATSHost, ErrNATSExposed)
	}
	for r, pw := range o.NATS.Passwords {
		if !slices.Contains(natsauth.Roles(), r) || r == natsauth.Guest {
			return fmt.Errorf("nats user %q: not a role (one of operator, producer, aggregator, alertmanager, reader, traces)", r)
		}
		if len(pw) < 8 || len(pw) > 72 {
			return fmt.Errorf("nats user %s: password of %d characters: must be 8 to 72", r, len(pw))
		}
	}
	return nil
}

// natsUsers returns the embedded server's users: the internal one, the
// configured roles, and the guest unless refused.
func (o Options) natsUsers() (users []*server.User, internal nats.Option, err error) {
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	pw := hex.EncodeToString(secret)
	users = append(users, &server.User{Username: internalUser, Password: natsauth.Hash(pw, bcrypt.MinCost)})
	for _, r := range natsauth.Roles() {
		if p, ok := o.NATS.Passwords[r]; ok {
			users = append(users, natsauth.User(r, p, bcrypt.DefaultCost))
		}
	}
	if !o.NATS.NoGuests {
		users = append(users, natsauth.User(natsauth.Guest, "", 0))
	}
	return users, nats.UserInfo(internalUser, pw), nil
}

// internalUser is the pipeline's own parts' user of the embedded server.
const internalUser = "jetmon-internal"

// SlowOperation is the demo's slow operation (p95 well above 250 ms).
const SlowOperation = "checkout.charge"

// FlappingComponent is the demo's component that fails and recovers.
const FlappingComponent = "payments-db"

// demoLoad runs the load generator until ctx ends.
func demoLoad(ctx context.Context, pub events.Publisher, rate int) error {
	_, err := producer.LoadGen(ctx, pub, producer.LoadOptions{
		Rate: rate, Duration: 100 * 365 * 24 * time.Hour, Operations: 4, Sources: 3, Depth: 3,
		MedianMS: 30, Sigma: 0.5, SlowOperation: SlowOperation, Quiet: true,
	}, nil)
	return err
}

// flap makes FlappingComponent fail and recover every `every`.
func flap(ctx context.Context, pub events.Publisher, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		failed = !failed
		typ, msg := events.ComponentHealthy, "connection pool recovered"
		if failed {
			typ, msg = events.ComponentFailed, "connection refused (simulated)"
		}
		ev := events.NewHealthEvent(typ, "svc-1", FlappingComponent)
		ev.Message = msg
		if err := pub.Publish(ctx, ev); err != nil && ctx.Err() == nil {
			return err
		}
	}
}
