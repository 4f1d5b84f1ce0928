package jsbus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/streams"
)

func TestHeadersAndSubject(t *testing.T) {
	srv := natstest.Start(t)
	bus := connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()

	ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
	ev.Operation, ev.DurationMS = "db.query", 3
	if err := bus.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	msg, err := bus.JetStream().Stream(t.Context(), streams.Performance)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.GetLastMsgForSubject(t.Context(), "performance.operation.complete.checkout")
	if err != nil {
		t.Fatalf("no message on performance.operation.complete.checkout: %v", err)
	}
	want := map[string]string{
		"Nats-Msg-Id": ev.ID, "ce-specversion": "1.0", "ce-id": ev.ID, "ce-type": "performance.operation.complete",
		"ce-source": "checkout", "ce-time": ev.Timestamp.UTC().Format(time.RFC3339Nano),
		"traceparent": ev.Trace().Traceparent(),
	}
	for k, v := range want {
		if got := raw.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if got, err := events.Decode(raw.Data); err != nil || got.Metadata().ID != ev.ID {
		t.Errorf("stored payload does not decode to the event: %v", err)
	}
}

func TestRepublishIsDeduplicated(t *testing.T) {
	srv := natstest.Start(t)
	bus := connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()
	ev := eventstest.NewEvent(events.SystemError, "dup")
	for range 3 {
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, _ := bus.JetStream().Stream(t.Context(), streams.System)
	info, _ := s.Info(t.Context())
	if info.State.Msgs != 1 || bus.Stats().Duplicates != 2 {
		t.Errorf("stream holds %d messages, %d duplicates reported; want 1 and 2", info.State.Msgs, bus.Stats().Duplicates)
	}
}

// TestEmbeddedServerRestart publishes, stops the server, restarts it on the
// same store and reads every event back.
func TestEmbeddedServerRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() *natsserver.Server {
		s, err := natsserver.Start(natsserver.Options{StoreDir: dir, Port: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv := start()
	bus := connect(t, testConfig(srv.ClientURL()))
	const n = 5000
	ids := map[string]bool{}
	for i := range n {
		ev := eventstest.NewEvent(events.OperationComplete, fmt.Sprint(i))
		ids[ev.Metadata().ID] = true
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Close(); err != nil { // waits for every ack
		t.Fatal(err)
	}
	if got := bus.Stats().Acked; got != n {
		t.Fatalf("%d of %d publishes acknowledged before the stop", got, n)
	}
	srv.Stop()

	srv = start()
	defer srv.Stop()
	bus = connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()
	seen := map[string]int{}
	st, err := bus.Replay(t.Context(), "performance.>", jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		seen[ev.Metadata().ID]++
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != n || len(seen) != n {
		t.Fatalf("read back %d events (%d distinct) after restart, want %d", st.Events, len(seen), n)
	}
	for id := range ids {
		if seen[id] != 1 {
			t.Fatalf("event %s read %d times", id, seen[id])
		}
	}
}

func TestReplayRange(t *testing.T) {
	srv := natstest.Start(t)
	bus := connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()
	publish := func(tag string) {
		t.Helper()
		if err := bus.Publish(t.Context(), eventstest.NewEvent(events.PhaseStart, tag)); err != nil {
			t.Fatal(err)
		}
		if err := bus.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	publish("before")
	time.Sleep(20 * time.Millisecond)
	from := time.Now()
	publish("in1")
	publish("in2")
	if err := bus.Publish(t.Context(), eventstest.NewEvent(events.SystemError, "other stream")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	to := time.Now()
	publish("after")
	var got []string
	var progress atomic.Int64
	_, err := bus.Replay(t.Context(), "performance.phase.*", jsbus.ReplayOptions{
		From: from, To: to, Progress: func(string, uint64, uint64) { progress.Add(1) },
	}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		got = append(got, eventstest.Tag(ev))
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "in1,in2" || progress.Load() != 2 {
		t.Errorf("replayed %v with %d progress calls, want [in1 in2] and 2", got, progress.Load())
	}
	// The replay is invisible to live consumers: none was created or left behind.
	s, _ := bus.JetStream().Stream(t.Context(), streams.Performance)
	info, _ := s.Info(t.Context())
	if info.State.Consumers != 0 {
		t.Errorf("%d consumers left on the stream after replay", info.State.Consumers)
	}
}

func TestDeadLetters(t *testing.T) {
	srv := natstest.Start(t)
	bus := connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()
	col := eventstest.NewCollector()
	if _, err := bus.Subscribe(t.Context(), "performance.>", col); err != nil {
		t.Fatal(err)
	}
	good := eventstest.NewEvent(events.OperationComplete, "good")
	bad := `{"event_type":"performance.operation.complete","id":"x","source":"s","timestamp":"2026-01-01T00:00:00Z","operation":"op","duration_ms":-1}`
	batch := "[" + string(eventstest.NewEvent(events.PhaseStart, "in-batch").AppendJSON(nil)) + "," + bad + "]"
	for _, m := range []struct{ subject, data string }{
		{"performance.operation.complete.s", "this is not json"},
		{"performance.operation.complete.s", bad},
		{"performance.phase.start.s", batch},
		{events.SubjectOf(good), string(good.AppendJSON(nil))},
	} {
		if _, err := bus.JetStream().Publish(t.Context(), m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	got := col.WaitFor(t, 2, 10*time.Second)
	testutil.WaitFor(t, 10*time.Second, func() bool { return bus.Stats().DeadLettered == 3 }, "three dead letters")
	if tags := []string{eventstest.Tag(got[0]), eventstest.Tag(got[1])}; tags[0] != "in-batch" || tags[1] != "good" {
		t.Errorf("delivered %v, want [in-batch good]", tags)
	}
	dl, err := bus.JetStream().Stream(t.Context(), streams.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dl.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "deadletter.performance.operation.complete.s" || m.Header.Get(jsbus.HeaderOriginalSubject) != "performance.operation.complete.s" ||
		!strings.Contains(m.Header.Get(jsbus.HeaderDeadReason), "undecodable") || string(m.Data) != "this is not json" {
		t.Errorf("dead letter: subject %q headers %v data %q", m.Subject, m.Header, m.Data)
	}
	m3, err := dl.GetMsg(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if m3.Header.Get(jsbus.HeaderBatchIndex) != "1" || string(m3.Data) != bad || !strings.Contains(m3.Header.Get(jsbus.HeaderDeadReason), "duration_ms") {
		t.Errorf("batch item dead letter: headers %v data %q", m3.Header, m3.Data)
	}
	if st := bus.Stats(); st.DecodeErrors != 3 {
		t.Errorf("DecodeErrors = %d, want 3", st.DecodeErrors)
	}
}

func TestHandlerGivesUpToDeadLetter(t *testing.T) {
	srv := natstest.Start(t)
	bus := connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()
	var calls atomic.Int32
	_, err := bus.Subscribe(t.Context(), "system.error", events.HandlerFunc(func(context.Context, events.Event) error {
		calls.Add(1)
		return errors.New("always fails")
	}), events.MaxDeliver(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(t.Context(), eventstest.NewEvent(events.SystemError, "doomed")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool { return bus.Stats().DeadLettered == 1 }, "a dead letter")
	// A fourth delivery could only come from a message the consumer still
	// holds: wait until the server says it holds none.
	stream, err := bus.JetStream().Stream(t.Context(), streams.System)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		lister := stream.ListConsumers(t.Context())
		n := 0
		for ci := range lister.Info() {
			if ci.NumAckPending != 0 || ci.NumPending != 0 || ci.NumRedelivered != 0 {
				return false
			}
			n++
		}
		return lister.Err() == nil && n == 1
	}, "the consumer to hold no message (none pending, unacked or due for redelivery)")
	if calls.Load() != 3 {
		t.Errorf("handler called %d times, want 3", calls.Load())
	}
	dl, _ := bus.JetStream().Stream(t.Context(), streams.DeadLetter)
	m, err := dl.GetMsg(t.Context(), 1)
	if err != nil || m.Header.Get(jsbus.HeaderDeliveries) != "3" || !strings.Contains(m.Header.Get(jsbus.HeaderDeadReason), "always fails") {
		t.Errorf("dead letter %v: %v", m, err)
	}
}

// TestConsumerRecreated deletes a durable consumer under a live subscription:
// the bus recreates it and resumes after the last acked event.
func TestConsumerRecreated(t *testing.T) {
	srv := natstest.Start(t)
	bus := connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()
	col := eventstest.NewCollector()
	if _, err := bus.Subscribe(t.Context(), "validation.>", col, events.Durable("audit")); err != nil {
		t.Fatal(err)
	}
	pub := func(tag string) {
		if err := bus.Publish(t.Context(), eventstest.NewEvent(events.ValidationStarted, tag)); err != nil {
			t.Fatal(err)
		}
	}
	pub("a")
	col.WaitFor(t, 1, 10*time.Second)
	if err := bus.JetStream().DeleteConsumer(t.Context(), streams.Validation, "audit"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, func() bool { return bus.Stats().ConsumersRecreated >= 1 }, "the consumer to be recreated")
	pub("b")
	got := col.WaitFor(t, 2, 10*time.Second)
	if eventstest.Tag(got[1]) != "b" {
		t.Errorf("after recreation received %v", eventstest.Tag(got[1]))
	}
}

func TestAuthAndSecrets(t *testing.T) {
	const secret = "s3cr3t-pa55"
	srv := natstest.Start(t, func(o *natsserver.Options) { o.User, o.Password = "app", secret })
	cfg := testConfig(srv.ClientURL())
	cfg.User, cfg.Password = "app", secret
	bus := connect(t, cfg)
	if !bus.IsConnected() {
		t.Fatal("not connected with the right password")
	}
	_ = bus.Close()

	var logs bytes.Buffer
	log := zerolog.New(&logs)
	bad := testConfig(strings.Replace(srv.ClientURL(), "nats://", "nats://app:"+secret+"-wrong@", 1))
	bad.Logger, bad.ConnectTimeout = &log, 2*time.Second
	_, err := jsbus.Connect(t.Context(), bad)
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
		t.Errorf("the password leaked:\nerror: %v\nlogs: %s", err, logs.String())
	}
	if !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("error does not name the (redacted) server: %v", err)
	}
	tok := natstest.Start(t, func(o *natsserver.Options) { o.Token = secret })
	cfg = testConfig(tok.ClientURL())
	cfg.Token = secret
	bus = connect(t, cfg)
	_ = bus.Close()
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:p@h:4222":   "nats://u:REDACTED@h:4222",
		"nats://token@h:4222": "nats://REDACTED@h:4222",
		"nats://h:4222":       "nats://h:4222",
	} {
		if got := jsbus.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConfigValidate breaks one field of a valid configuration per case and
// checks that Validate names that field (Validate has no sentinel errors; the
// field named is the contract). The valid base must pass, so a Validate that
// rejects everything fails here too.
func TestConfigValidate(t *testing.T) {
	if err := jsbus.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
	const durations = "durations must not be negative"
	cases := []struct {
		name   string
		mutate func(*jsbus.Config)
		want   string // in the error: the field, or what is wrong for the durations
	}{
		{"URLs", func(c *jsbus.Config) { c.URLs = []string{""} }, "URLs"},
		{"MaxDeliver", func(c *jsbus.Config) { c.MaxDeliver = -1 }, "MaxDeliver -1"},
		{"MaxPendingAcks", func(c *jsbus.Config) { c.MaxPendingAcks = -1 }, "MaxPendingAcks -1"},
		{"BatchMaxEvents", func(c *jsbus.Config) { c.BatchMaxEvents = -1 }, "BatchMaxEvents -1"},
		{"MaxPayload", func(c *jsbus.Config) { c.MaxPayload = -1 }, "MaxPayload -1"},
		{"SyncPublish with batching", func(c *jsbus.Config) { c.SyncPublish, c.BatchMaxEvents = true, 10 }, "SyncPublish and BatchMaxEvents"},
		{"Token with User", func(c *jsbus.Config) { c.Token, c.User = "t", "u" }, "Token"},
		{"TLS.CertFile without KeyFile", func(c *jsbus.Config) { c.TLS.CertFile = "cert.pem" }, "TLS.KeyFile"},
		{"TLS.KeyFile without CertFile", func(c *jsbus.Config) { c.TLS.KeyFile = "key.pem" }, "TLS.CertFile"},
		{"ConnectTimeout", func(c *jsbus.Config) { c.ConnectTimeout = -time.Second }, durations},
		{"ReconnectWait", func(c *jsbus.Config) { c.ReconnectWait = -time.Second }, durations},
		{"PingInterval", func(c *jsbus.Config) { c.PingInterval = -time.Second }, durations},
		{"PublishTimeout", func(c *jsbus.Config) { c.PublishTimeout = -time.Second }, durations},
		{"BatchMaxDelay", func(c *jsbus.Config) { c.BatchMaxDelay = -time.Second }, durations},
		{"AckWait", func(c *jsbus.Config) { c.AckWait = -time.Second }, durations},
		{"RedeliveryDelay", func(c *jsbus.Config) { c.RedeliveryDelay = -time.Second }, durations},
		{"CloseTimeout", func(c *jsbus.Config) { c.CloseTimeout = -time.Second }, durations},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := jsbus.DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), "jsbus config: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want a jsbus config error naming %q", err, tc.want)
			}
		})
	}
}

func TestOnPublishErrorWhenServerGone(t *testing.T) {
	srv := natstest.Start(t)
	var mu sync.Mutex
	var failed []string
	cfg := testConfig(srv.ClientURL())
	cfg.PublishTimeout, cfg.PublishRetries, cfg.CloseTimeout = 300*time.Millisecond, 1, 3*time.Second
	cfg.OnPublishError = func(m *nats.Msg, _ error) {
		mu.Lock()
		failed = append(failed, m.Header.Get(jsbus.HeaderMsgID))
		mu.Unlock()
	}
	cfg.BufferWhileDisconnected = true
	bus := connect(t, cfg)
	srv.Stop()
	ev := eventstest.NewEvent(events.SystemError, "lost")
	start := time.Now()
	if err := bus.Publish(t.Context(), ev); err != nil { // into the reconnect buffer; the ack never comes
		t.Fatalf("Publish with BufferWhileDisconnected: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Publish blocked %s with the server down", d)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failed) == 1
	}, "the failure to be reported")
	if failed[0] != ev.Metadata().ID || bus.Stats().PublishFailed != 1 {
		t.Errorf("reported %v (stats %+v), want the event's id once", failed, bus.Stats())
	}
	_ = bus.Close()
}

func TestMutualTLS(t *testing.T) {
	files := natstest.NewTLSFiles(t)
	srv := natstest.Start(t, func(o *natsserver.Options) { o.TLS = files.Server })
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)

	cfg := testConfig(url)
	cfg.TLS = jsbus.TLSConfig{CAFile: files.CAFile, CertFile: files.ClientCert, KeyFile: files.ClientKey}
	bus := connect(t, cfg)
	col := eventstest.NewCollector()
	if _, err := bus.Subscribe(t.Context(), "system.error", col); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(t.Context(), eventstest.NewEvent(events.SystemError, "over tls")); err != nil {
		t.Fatal(err)
	}
	col.WaitFor(t, 1, 10*time.Second)
	_ = bus.Close()

	noCert := testConfig(url)
	noCert.TLS = jsbus.TLSConfig{CAFile: files.CAFile}
	noCert.ConnectTimeout = 2 * time.Second
	if b, err := jsbus.Connect(t.Context(), noCert); err == nil {
		_ = b.Close()
		t.Error("connected without the client certificate the server requires")
	}
	badCA := testConfig(url)
	badCA.TLS = jsbus.TLSConfig{CAFile: files.ClientCert + ".missing"}
	if _, err := jsbus.Connect(t.Context(), badCA); err == nil || !strings.Contains(err.Error(), "TLS.CAFile") {
		t.Errorf("a missing CA file: %v, want an error naming TLS.CAFile", err)
	}
}

func TestPublishFailsFastWhenDisconnected(t *testing.T) {
	srv := natstest.Start(t)
	cfg := testConfig(srv.ClientURL())
	cfg.CloseTimeout = time.Second
	cfg.PublishTimeout = time.Minute
	bus := connect(t, cfg)
	defer func() { _ = bus.Close() }()
	srv.Stop()
	testutil.WaitFor(t, 10*time.Second, func() bool { return !bus.IsConnected() }, "the client to notice")
	// A Publish that waited for the connection would end at PublishTimeout
	// (or never: the server is gone) with another error; how fast the
	// refusal is belongs to a benchmark, not to a -race test.
	done := make(chan error, 1)
	go func() { done <- bus.Publish(context.Background(), eventstest.NewEvent(events.SystemError, "x")) }()
	select {
	case err := <-done:
		if !errors.Is(err, jsbus.ErrNotConnected) {
			t.Errorf("Publish while disconnected: %v, want ErrNotConnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish while disconnected still blocked after 10s: it waits instead of failing")
	}
}

// TestNotifyAsyncFailureHandsOverEachEvent: a registered handler gets every
// event of a failed batch, by id, at once (the bus does not re-send while
// someone is registered), alongside OnPublishError. After stop, the next
// failure is the bus's again: re-sent PublishRetries times, then reported to
// OnPublishError only.
func TestNotifyAsyncFailureHandsOverEachEvent(t *testing.T) {
	srv := natstest.Start(t)
	cfg := testConfig(srv.ClientURL())
	cfg.PublishTimeout, cfg.PublishRetries, cfg.CloseTimeout = 300*time.Millisecond, 2, 3*time.Second
	cfg.BatchMaxEvents, cfg.BatchMaxDelay = 3, time.Hour
	cfg.BufferWhileDisconnected = true
	var raw atomic.Int64
	cfg.OnPublishError = func(*nats.Msg, error) { raw.Add(1) }
	bus := connect(t, cfg)
	var mu sync.Mutex
	var got []string
	stop := bus.NotifyAsyncFailure(func(ev events.Event, _ error) {
		mu.Lock()
		got = append(got, ev.Metadata().ID)
		mu.Unlock()
	})
	srv.Stop()
	publishBatch := func() []string {
		var ids []string
		for range 3 { // one batch of three
			ev := eventstest.NewEvent(events.SystemError, "lost")
			ids = append(ids, ev.Metadata().ID)
			if err := bus.Publish(t.Context(), ev); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
		return ids
	}
	want := publishBatch()
	testutil.WaitFor(t, 10*time.Second, func() bool { return raw.Load() == 1 }, "the failed batch to be reported")
	mu.Lock()
	gotSorted := slices.Sorted(slices.Values(got))
	mu.Unlock()
	if !slices.Equal(gotSorted, slices.Sorted(slices.Values(want))) {
		t.Errorf("handed over %v, want %v", gotSorted, want)
	}
	if st := bus.Stats(); st.PublishRetries != 0 || st.PublishFailed != 1 {
		t.Errorf("stats %+v: want no bus re-sends while a handler is registered, one failed message", st)
	}

	stop()
	stop() // idempotent
	publishBatch()
	testutil.WaitFor(t, 15*time.Second, func() bool { return raw.Load() == 2 }, "the second batch to be reported")
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if st := bus.Stats(); n != 3 || st.PublishRetries != 2 || st.PublishFailed != 2 {
		t.Errorf("after stop: handler got %d events (want still 3), stats %+v (want 2 bus re-sends, 2 failed)", n, st)
	}
	_ = bus.Close()
}
