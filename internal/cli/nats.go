package cli

import (
	"flag"
	"strings"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// NATSFlags are the connection flags every daemon shares.
type NATSFlags struct {
	URL, Creds, User, Password, CAFile string
}

// Register adds the flags to fs.
func (n *NATSFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&n.URL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated (env NATS_URL too)")
	fs.StringVar(&n.Creds, "creds", "", "NATS credentials file")
	fs.StringVar(&n.User, "user", "", "NATS user")
	fs.StringVar(&n.Password, "password", "", "NATS password (prefer the environment variable)")
	fs.StringVar(&n.CAFile, "tls-ca", "", "CA file to verify the NATS server")
}

// Config returns the bus configuration of the flags.
func (n *NATSFlags) Config(name string, log *zerolog.Logger) jsbus.Config {
	cfg := jsbus.DefaultConfig()
	cfg.URLs = strings.Split(n.URL, ",")
	cfg.CredsFile, cfg.User, cfg.Password = n.Creds, n.User, n.Password
	cfg.TLS.CAFile = n.CAFile
	cfg.Name, cfg.Logger = name, log
	return cfg
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
