package main

// The commands a deployment beyond one process needs: the NATS users of
// every component (nats-config), and the streams applied once by the
// operator (streams apply).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/internal/natsauth"
	"github.com/jetmon/jetmon/internal/redact"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

// deployRoles are the users of a deployment (no guest).
var deployRoles = []natsauth.Role{natsauth.Operator, natsauth.Producer, natsauth.Aggregator, natsauth.AlertManager, natsauth.Reader, natsauth.Traces, natsauth.Console}

// natsConfig writes the authorization block of a nats-server configuration:
// one user per role, passwords as bcrypt hashes read from SECRETS/<role>.password
// (made at random with --create when missing).
func natsConfig(args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	fs := flag.NewFlagSet("jetmon nats-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secrets := fs.String("secrets", "", "directory of the passwords, one file per user: operator.password, producer.password, aggregator.password, alertmanager.password, reader.password (required)")
	create := fs.Bool("create", false, "make a random password for each user whose file is missing (mode 0600)")
	out := fs.String("out", "", "write the configuration here instead of stdout")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: jetmon nats-config --secrets DIR [--create] [--out FILE]

Writes the "authorization" block of a nats-server configuration with one user
per jetmon component and the least subject permissions each needs
(docs/security.md lists them): operator, producer, aggregator, alertmanager,
reader. Passwords are read from DIR/<user>.password and stored as bcrypt
hashes; the components read the same files (--password-file). Include the
output from the server's configuration: include "auth.conf".

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, "JETMON", args, env, stderr); !ok {
		return code
	}
	if *secrets == "" {
		fmt.Fprintln(stderr, "jetmon nats-config: --secrets is required")
		return 2
	}
	if *create {
		if err := os.MkdirAll(*secrets, 0o700); err != nil {
			fmt.Fprintf(stderr, "jetmon nats-config: %v\n", err)
			return 1
		}
	}
	var users []confUser
	for _, r := range deployRoles {
		pw, err := readOrMakePassword(filepath.Join(*secrets, string(r)+".password"), *create)
		if err != nil {
			fmt.Fprintf(stderr, "jetmon nats-config: user %s: %v\n", r, err)
			return 1
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
		if err != nil {
			fmt.Fprintf(stderr, "jetmon nats-config: user %s: %v\n", r, err)
			return 1
		}
		users = append(users, confUser{User: string(r), Password: string(hash), Permissions: natsauth.Permissions(r)})
	}
	var body strings.Builder
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // subjects end in '>'
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"users": users}); err != nil {
		fmt.Fprintf(stderr, "jetmon nats-config: %v\n", err)
		return 1
	}
	text := "# jetmon's NATS users, written by `jetmon nats-config`; passwords are bcrypt hashes.\n# The permissions are internal/natsauth's: docs/security.md explains them.\nauthorization: " + body.String()
	if *out == "" {
		_, _ = io.WriteString(stdout, text)
		return 0
	}
	if err := os.WriteFile(*out, []byte(text), 0o644); err != nil { //nolint:gosec // hashes only; the server's user reads it
		fmt.Fprintf(stderr, "jetmon nats-config: %v\n", err)
		return 1
	}
	return 0
}

// confUser is one user of the configuration; server.Permissions has the
// configuration's own field names as JSON tags.
type confUser struct {
	User        string              `json:"user"`
	Password    string              `json:"password"`
	Permissions *server.Permissions `json:"permissions,omitempty"`
}

// readOrMakePassword returns the password in file, making a random one when
// the file is missing and create is set.
func readOrMakePassword(file string, create bool) (string, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		pw := strings.TrimSpace(string(b))
		if len(pw) < 8 || len(pw) > 72 {
			return "", fmt.Errorf("%s: a password of %d characters: must be 8 to 72", file, len(pw))
		}
		return pw, nil
	}
	if !errors.Is(err, os.ErrNotExist) || !create {
		return "", err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(raw)
	return pw, os.WriteFile(file, []byte(pw+"\n"), 0o600)
}

// applyStreams connects as cfg says and applies defs once.
func applyStreams(ctx context.Context, cfg jsbus.Config, defs []streams.Definition) ([]streams.Result, error) {
	bus, err := jsbus.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = bus.Close() }()
	return streams.Apply(ctx, bus.JetStream(), defs, cfg.Streams)
}

// streamsAttempt bounds one attempt of streams apply.
const streamsAttempt = 20 * time.Second

// streamsCmd applies the stream definitions as the operator.
func streamsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 || args[0] != "apply" {
		fmt.Fprintln(stderr, "Usage: jetmon streams apply [flags]   (create or update the streams in streams/, as the NATS operator)")
		return 2
	}
	fs := flag.NewFlagSet("jetmon streams apply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of opFlags
	of.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: jetmon streams apply [flags]

Creates the streams of streams/ that are missing and updates those that
differ, with --stream-replicas replicas (3 on a three-node cluster). The
user needs the operator's rights (jetmon nats-config).

Flags (each also settable as JETMON_<FLAG>):
`)
		fs.PrintDefaults()
	}
	if code, ok := parseOp(fs, args[1:], stderr, env); !ok {
		return code
	}
	cfg, err := of.nats.Config("jetmon-streams", nil)
	if err != nil {
		fmt.Fprintf(stderr, "jetmon streams apply: %v\n", err)
		return 2
	}
	cfg.SkipStreams = true
	defs, err := streams.Definitions()
	if err != nil {
		fmt.Fprintf(stderr, "jetmon streams apply: %v\n", err)
		return 1
	}
	cctx, cancel := context.WithTimeout(ctx, of.timeout)
	defer cancel()
	// A cluster that has just started may not have a JetStream meta leader
	// yet: try again until --timeout, so that a deployment's one-shot job
	// does not fail (and get restarted) for being early. Each attempt has
	// its own bound: a request the forming cluster never answers must not
	// take the whole --timeout (a compose start waited 2 min on one).
	var results []streams.Result
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		actx, acancel := context.WithTimeout(cctx, streamsAttempt)
		results, err = applyStreams(actx, cfg, defs)
		acancel()
		if err == nil || cctx.Err() != nil || errors.Is(err, streams.ErrConflict) {
			break // done, out of time, or refused for good (waiting cannot help)
		}
		fmt.Fprintf(stderr, "jetmon streams apply: %v; retrying in %v\n", redact.Error(err), wait)
		select {
		case <-cctx.Done():
		case <-time.After(wait):
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tOUTCOME\tREPLICAS")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", r.Stream, r.Outcome, cfg.Streams.Replicas)
	}
	_ = tw.Flush()
	if err != nil {
		fmt.Fprintf(stderr, "jetmon streams apply: %v\n", redact.Error(err))
		return 1
	}
	return 0
}
