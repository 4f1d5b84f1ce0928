package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/streams"
)

// The configuration nats-config writes is loaded by a real nats-server from a
// file, as a deployment does: each user gets in with its password and only
// its permissions; `streams apply` as the operator creates the streams.
func TestNATSConfigRunsARealServer(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"nats-config", "--secrets", secrets, "--create", "--out", filepath.Join(dir, "auth.conf")}, &out, &errOut, noEnv); code != 0 {
		t.Fatalf("nats-config: exit %d: %s", code, errOut.String())
	}
	// A second run keeps the passwords.
	before, _ := os.ReadFile(filepath.Join(secrets, "producer.password"))
	if code := run(t.Context(), []string{"nats-config", "--secrets", secrets, "--out", filepath.Join(dir, "auth2.conf")}, &out, &errOut, noEnv); code != 0 {
		t.Fatalf("nats-config again: exit %d: %s", code, errOut.String())
	}
	if after, _ := os.ReadFile(filepath.Join(secrets, "producer.password")); !bytes.Equal(before, after) {
		t.Fatal("the second run changed a password")
	}
	if info, err := os.Stat(filepath.Join(secrets, "operator.password")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("operator.password: %v %v", info, err)
	}
	port := testutil.FreePort(t)
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:"+itoa(port)+"\njetstream { store_dir: \""+filepath.Join(dir, "js")+"\" }\ninclude \"auth.conf\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v", err)
	}
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	url := "nats://127.0.0.1:" + itoa(port)
	pw := func(role string) string {
		b, err := os.ReadFile(filepath.Join(secrets, role+".password"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	// The operator applies the streams.
	errOut.Reset()
	out.Reset()
	if code := run(t.Context(), []string{"streams", "apply", "--nats-url", url, "--user", "operator", "--password-file", filepath.Join(secrets, "operator.password")}, &out, &errOut, noEnv); code != 0 ||
		!strings.Contains(out.String(), "PERFORMANCE") || !strings.Contains(out.String(), "created") {
		t.Fatalf("streams apply: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	// The producer publishes an event and cannot delete a stream.
	nc, err := nats.Connect(url, nats.UserInfo("producer", pw("producer")))
	if err != nil {
		t.Fatalf("producer connects: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(t.Context(), "performance.operation.complete.svc", []byte(perfLine("svc", "op", 1, `,"id":"a","timestamp":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"`))); err != nil {
		t.Errorf("producer publishes an event: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, streams.Performance); err == nil {
		t.Error("the producer deleted a stream")
	}
	// A wrong password and no password are refused.
	for _, o := range []nats.Option{nats.UserInfo("producer", "wrong-password"), nats.Name("anonymous")} {
		if c, err := nats.Connect(url, o, nats.MaxReconnects(0)); err == nil {
			c.Close()
			t.Error("connected without the right password")
		}
	}
	// Bad input: no --secrets, a missing password without --create, a short one.
	if code := run(t.Context(), []string{"nats-config"}, &out, &errOut, noEnv); code != 2 {
		t.Errorf("nats-config without --secrets: exit %d", code)
	}
	if code := run(t.Context(), []string{"nats-config", "--secrets", filepath.Join(dir, "empty")}, &out, &errOut, noEnv); code != 1 {
		t.Errorf("nats-config with no passwords: exit %d", code)
	}
	if err := os.WriteFile(filepath.Join(secrets, "reader.password"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run(t.Context(), []string{"nats-config", "--secrets", secrets}, &out, &errOut, noEnv); code != 1 || !strings.Contains(errOut.String(), "reader") {
		t.Errorf("nats-config with a short password: exit %d: %s", code, errOut.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestStreamsApplyWaitsForTheServer: a deployment's one-shot job may start
// before its cluster answers; `streams apply` keeps trying until --timeout
// instead of failing at once, and succeeds once a server is there.
func TestStreamsApplyWaitsForTheServer(t *testing.T) {
	port := testutil.FreePort(t)
	var out bytes.Buffer
	var errOut testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(t.Context(), []string{"streams", "apply", "--nats-url", "nats://127.0.0.1:" + itoa(port), "--timeout", "60s"}, &out, &errOut, noEnv)
	}()
	// The server starts only after an attempt has failed and said so.
	testutil.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(errOut.String(), "retrying in") }, "a failed attempt")
	select {
	case code := <-done:
		t.Fatalf("streams apply gave up before the server started: exit %d\n%s", code, errOut.String())
	default:
	}
	natstest.StartWith(t, natsserver.Options{Host: "127.0.0.1", Port: port, StoreDir: filepath.Join(t.TempDir(), "js")})
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "PERFORMANCE") {
			t.Fatalf("streams apply: exit %d\n%s%s", code, out.String(), errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("streams apply did not finish after the server started")
	}
}
