package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// NATSFlags are the connection flags every daemon shares.
type NATSFlags struct {
	URL, Creds, User, Password, PasswordFile, CAFile string
	// SkipStreams leaves the streams to an operator (a deployment whose
	// components may not manage streams); Replicas is the replica count of
	// what the component creates (streams, its buckets).
	SkipStreams bool
	Replicas    int
}

// Register adds the flags to fs.
func (n *NATSFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&n.URL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated (env NATS_URL too)")
	fs.StringVar(&n.Creds, "creds", "", "NATS credentials file")
	fs.StringVar(&n.User, "user", "", "NATS user")
	fs.StringVar(&n.Password, "password", "", "NATS password (prefer --password-file or the environment variable)")
	fs.StringVar(&n.PasswordFile, "password-file", "", "file holding the NATS password")
	fs.StringVar(&n.CAFile, "tls-ca", "", "CA file to verify the NATS server")
	fs.BoolVar(&n.SkipStreams, "skip-streams", false, "do not create or update the streams at start (an operator applies them: jetmon streams apply)")
	fs.IntVar(&n.Replicas, "stream-replicas", 1, "replicas of the streams and buckets this program creates (3 on a three-node cluster)")
}

// Config returns the bus configuration of the flags. It fails when the
// password file cannot be read or the replica count is out of range.
func (n *NATSFlags) Config(name string, log *zerolog.Logger) (jsbus.Config, error) {
	cfg := jsbus.DefaultConfig()
	cfg.URLs = strings.Split(n.URL, ",")
	cfg.CredsFile, cfg.User, cfg.Password = n.Creds, n.User, n.Password
	if n.PasswordFile != "" {
		b, err := os.ReadFile(n.PasswordFile)
		if err != nil {
			return cfg, fmt.Errorf("--password-file: %w", err)
		}
		cfg.Password = strings.TrimSpace(string(b))
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		return cfg, fmt.Errorf("--stream-replicas %d: must be between 1 and 5", n.Replicas)
	}
	cfg.SkipStreams = n.SkipStreams
	cfg.Streams.Replicas = n.Replicas
	cfg.TLS.CAFile = n.CAFile
	cfg.Name, cfg.Logger = name, log
	return cfg, nil
}

// EnvWithNATSURL adds NATS_URL as a fallback for <PREFIX>_NATS_URL.
func EnvWithNATSURL(prefix string, env func(string) (string, bool)) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if v, ok := env(k); ok {
			return v, ok
		}
		if k == prefix+"_NATS_URL" {
			return env("NATS_URL")
		}
		return "", false
	}
}

// Connect connects a bus configured by the flags.
func (n *NATSFlags) Connect(ctx context.Context, name string, log *zerolog.Logger) (*jsbus.Bus, error) {
	cfg, err := n.Config(name, log)
	if err != nil {
		return nil, err
	}
	return jsbus.Connect(ctx, cfg)
}
