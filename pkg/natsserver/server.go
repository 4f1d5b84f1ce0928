// Package natsserver runs a nats-server with JetStream inside the process:
// the broker of `jetmon up`, of every test that needs a real one, and of an
// application that wants jetmon without running NATS beside it. Connect a bus
// to it in-process (Port 0, [Server.ConnectOption]: no listener at all) or
// over loopback (Port -1: a free port, [Server.ClientURL]). [Server.Stop]
// returns once every acknowledged message is on disk.
package natsserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Options configures an embedded server. The zero value (plus a StoreDir) is
// an in-process-only server: no network listener at all.
type Options struct {
	// StoreDir is where JetStream keeps its data; required. Restarting on the
	// same directory resumes every stream.
	StoreDir string
	// Name is the server name (default "jetmon"); cluster members need
	// distinct names.
	Name string
	// Host is the client listener's address (default 127.0.0.1: loopback
	// only, secure by default).
	Host string
	// Port is the client port: 0 means no listener (in-process connections
	// only), -1 a random free port, anything else that port.
	Port int
	// MaxPayload overrides the 1 MiB message size limit when positive.
	MaxPayload int32
	// User and Password, or Token, require clients to authenticate.
	User, Password, Token string
	// Users, when set, are the only accounts' users, each with its own
	// permissions (see internal/natsauth); NoAuthUser, one of them, is who a
	// client without credentials is (empty: such a client is refused).
	Users      []*server.User
	NoAuthUser string
	// TLS, when set, makes the client listener require TLS.
	TLS *tls.Config
	// Cluster joins a JetStream cluster when Cluster.Name is set.
	Cluster ClusterOptions
	// Logger receives the server's log lines; the zero value discards them.
	Logger *zerolog.Logger
}

// ClusterOptions configures the route listener and the peers of a cluster member.
type ClusterOptions struct {
	Name string
	// Host and Port of this member's route listener (Port -1: random).
	Host string
	Port int
	// Routes are the other members' route URLs, e.g. nats-route://127.0.0.1:6222.
	Routes []string
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	opts Options
	lock *os.File // the store dir's lock, released by Stop
}

// ErrNotReady reports a server that did not accept connections in time.
var ErrNotReady = errors.New("nats server not ready for connections")

// Start starts a server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("nats server: StoreDir is required")
	}
	if err := os.MkdirAll(o.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("nats server: store dir: %w", err)
	}
	if o.Name == "" {
		o.Name = "jetmon"
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	lock, err := lockStore(o.StoreDir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok && lock != nil {
			_ = lock.Close()
		}
	}()
	if o.Port > 0 {
		// Fail at once, by name, instead of timing out below.
		addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
		var lc net.ListenConfig
		l, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("nats server: client port %s: %w (another nats-server? choose another port, or 0 for none)", addr, err)
		}
		_ = l.Close()
	}
	so := &server.Options{
		ServerName: o.Name,
		Host:       o.Host,
		Port:       o.Port,
		DontListen: o.Port == 0,
		NoSigs:     true,
		NoLog:      o.Logger == nil,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		Username:   o.User,
		Password:   o.Password,
		MaxPayload: o.MaxPayload,
	}
	if o.Token != "" {
		so.Authorization = o.Token
	}
	if len(o.Users) > 0 {
		so.Users, so.NoAuthUser = o.Users, o.NoAuthUser
	}
	if o.TLS != nil {
		so.TLSConfig, so.TLS, so.TLSTimeout = o.TLS, true, 2
		so.TLSVerify = o.TLS.ClientAuth == tls.RequireAndVerifyClientCert
	}
	if o.Cluster.Name != "" {
		so.Cluster = server.ClusterOpts{Name: o.Cluster.Name, Host: o.Cluster.Host, Port: o.Cluster.Port}
		if so.Cluster.Host == "" {
			so.Cluster.Host = "127.0.0.1"
		}
		for _, r := range o.Cluster.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats server: route %q: %w", r, err)
			}
			so.Routes = append(so.Routes, u)
		}
	}
	s, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if o.Logger != nil {
		s.SetLogger(logAdapter{log: o.Logger.With().Str("component", "nats-server").Logger(), noPlaintext: noPlaintext(o.Users)}, false, false)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, ErrNotReady
	}
	ok = true
	return &Server{Server: s, opts: o, lock: lock}, nil
}

// ClientURL returns the URL clients connect to; empty for an in-process-only
// server.
func (s *Server) ClientURL() string {
	if s.opts.Port == 0 {
		return ""
	}
	return s.Server.ClientURL()
}

// RouteURL returns this member's route URL for the other members' Routes.
func (s *Server) RouteURL() string {
	a := s.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats-route://" + net.JoinHostPort(a.IP.String(), strconv.Itoa(a.Port))
}

// ConnectOption returns the nats.go option that connects to s: in-process
// when it has no listener.
func (s *Server) ConnectOption() nats.Option {
	return nats.InProcessServer(s.Server)
}

// Connect returns a client connection to s (in-process).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect("", append([]nats.Option{s.ConnectOption()}, opts...)...)
}

// Stop shuts the server down and waits until it has: every acknowledged
// JetStream message is on disk when Stop returns. It is idempotent.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
	if s.lock != nil {
		_ = s.lock.Close()
	}
}

// logAdapter sends the server's logs to zerolog.
type logAdapter struct {
	log zerolog.Logger
	// noPlaintext: every password is a bcrypt hash, and the server's
	// plaintext warning is about the empty password of the no-auth user
	// (which cannot be hashed), so it is dropped.
	noPlaintext bool
}

// noPlaintext reports whether every non-empty password is a bcrypt hash.
func noPlaintext(users []*server.User) bool {
	for _, u := range users {
		if u.Password != "" && !strings.HasPrefix(u.Password, "$2") {
			return false
		}
	}
	return true
}

func (l logAdapter) Noticef(format string, v ...any) { l.log.Info().Msgf(format, v...) }
func (l logAdapter) Warnf(format string, v ...any) {
	if l.noPlaintext && strings.HasPrefix(format, "Plaintext passwords detected") {
		return
	}
	l.log.Warn().Msgf(format, v...)
}
func (l logAdapter) Fatalf(format string, v ...any) { l.log.Error().Msgf(format, v...) }
func (l logAdapter) Errorf(format string, v ...any) { l.log.Error().Msgf(format, v...) }
func (l logAdapter) Debugf(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l logAdapter) Tracef(format string, v ...any) { l.log.Trace().Msgf(format, v...) }
