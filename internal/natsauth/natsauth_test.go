package natsauth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetmon/jetmon/internal/natsauth"
	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/streams"
)

// password is role's password; the guest, whom the server makes of a
// client without credentials, has none.
func password(r natsauth.Role) string {
	if r == natsauth.Guest {
		return ""
	}
	return string(r) + "-secret"
}

// startServer runs a server with one user per role; a client without
// credentials is a guest.
func startServer(t *testing.T) *natsserver.Server {
	return natstest.Start(t, func(o *natsserver.Options) {
		for _, r := range natsauth.Roles() {
			o.Users = append(o.Users, natsauth.User(r, password(r), bcrypt.MinCost))
		}
		o.NoAuthUser = string(natsauth.Guest)
	})
}

// connect opens a bus as role ("" for anonymous); only the operator applies
// the stream definitions.
func connect(t *testing.T, srv *natsserver.Server, role natsauth.Role) *jsbus.Bus {
	t.Helper()
	return natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) {
		if role != "" {
			c.User, c.Password = string(role), password(role)
		}
		c.SkipStreams = role != natsauth.Operator
		c.SyncPublish, c.PublishTimeout = true, time.Second
		c.ConnectTimeout = 20 * time.Second // a loaded machine
	})
}

// stored counts the messages of stream on subject.
func stored(t *testing.T, op *jsbus.Bus, stream, subject string) uint64 {
	t.Helper()
	s, err := op.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

func perf(source string) *events.PerformanceEvent {
	ev := events.NewPerformanceEvent(events.OperationComplete, source)
	ev.Operation, ev.DurationMS = "op", 300
	return ev
}

func forged() []events.Event {
	now := time.Now()
	agg := events.NewAggregateEvent(events.OperationComplete, "x", "op", now.Add(-time.Second), now)
	agg.Count = 1
	off := events.NewControlEvent(events.MonitoringDisabled, "x")
	off.Scope = ">"
	th := events.NewHealthEvent(events.ThresholdExceeded, "x", "db")
	return []events.Event{agg, off, th}
}

// deleteStream asks the server to delete stream as bus's user.
func deleteStream(t *testing.T, bus *jsbus.Bus, stream string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return bus.JetStream().DeleteStream(ctx, stream)
}

// Every role but the operator is refused the destructive JetStream calls,
// and the producer and the guest cannot forge the pipeline's own events.
func TestRolesArePermittedOnlyTheirPart(t *testing.T) {
	srv := startServer(t)
	op := connect(t, srv, natsauth.Operator)

	t.Cleanup(func() {
		for _, s := range []string{streams.Alerts, streams.Performance, streams.DeadLetter} {
			if _, err := op.JetStream().Stream(context.Background(), s); err != nil {
				t.Errorf("stream %s gone: %v", s, err)
			}
		}
		if err := deleteStream(t, op, streams.Alerts); err != nil {
			t.Errorf("the operator cannot delete a stream: %v", err)
		}
	})
	for _, role := range []natsauth.Role{natsauth.Producer, natsauth.Reader, natsauth.Aggregator, natsauth.AlertManager, natsauth.Console, ""} {
		name := string(role)
		if role == "" {
			name = "anonymous guest"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel() // a refused call costs its whole timeout
			bus := connect(t, srv, role)
			for _, s := range []string{streams.Alerts, streams.Performance, streams.DeadLetter} {
				if err := deleteStream(t, bus, s); err == nil {
					t.Errorf("%s deleted stream %s", name, s)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			if _, err := bus.Conn().RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+streams.Health, nil); err == nil {
				t.Errorf("%s purged stream %s", name, streams.Health)
			}
			if _, err := bus.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}}); err == nil {
				t.Errorf("%s created a stream", name)
			}

			source := "svc-" + strings.ReplaceAll(name, " ", "-")
			err := bus.Publish(t.Context(), perf(source))
			mayPublish := role == natsauth.Producer || role == "" || role == natsauth.Console // the console publishes dead letters again
			if mayPublish != (err == nil) {
				t.Errorf("%s publishing a performance event: %v (allowed: %t)", name, err, mayPublish)
			}
			if role != natsauth.Aggregator && role != natsauth.AlertManager {
				for _, ev := range forged() {
					if err := bus.Publish(t.Context(), ev); err == nil {
						t.Errorf("%s published %s", name, ev.Metadata().Type)
					}
				}
			}
			// Only the aggregator stores windows under their series'
			// subject (the history the console reads).
			wctx, wcancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer wcancel()
			wsubj := streams.WindowSubject(events.OperationComplete, source, "op")
			if _, err := bus.JetStream().Publish(wctx, wsubj, []byte(`{}`)); (err == nil) != (role == natsauth.Aggregator) {
				t.Errorf("%s storing on %s: %v (allowed: %t)", name, wsubj, err, role == natsauth.Aggregator)
			}
			want := uint64(0)
			if mayPublish {
				want = 1
			}
			if got := stored(t, op, streams.Performance, events.Subject(events.OperationComplete, source)); got != want {
				t.Errorf("PERFORMANCE holds %d messages from %s, want %d", got, name, want)
			}
		})
	}
}

// A reader follows the stored events (as `jetmon tail` does) but cannot
// write.
func TestReaderFollowsEvents(t *testing.T) {
	srv := startServer(t)
	op := connect(t, srv, natsauth.Operator)
	for range 3 {
		if err := op.Publish(t.Context(), perf("svc")); err != nil {
			t.Fatal(err)
		}
	}
	reader := connect(t, srv, natsauth.Reader)
	got := make(chan events.Event, 10)
	ctx, cancel := context.WithCancel(t.Context())
	followed := make(chan error, 1)
	go func() {
		followed <- reader.Follow(ctx, "performance.>", jsbus.FollowOptions{All: true}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
			got <- ev
			return nil
		}))
	}()
	defer func() {
		cancel()
		if err := <-followed; err != nil {
			t.Errorf("reader follows: %v", err)
		}
	}()
	for i := range 3 {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("reader got %d of 3 stored events", i)
		}
	}
}

// The aggregator and the alert manager run their real services under their
// own users: windows are stored and alerts fire.
func TestComponentsRunUnderTheirUsers(t *testing.T) {
	srv := startServer(t)
	connect(t, srv, natsauth.Operator) // applies the streams
	aggBus := connect(t, srv, natsauth.Aggregator)
	amBus := connect(t, srv, natsauth.AlertManager)
	prod := connect(t, srv, natsauth.Producer)

	agg, err := aggregator.New(aggregator.Options{Bus: aggBus, Window: 500 * time.Millisecond, Lateness: 100 * time.Millisecond, IdleAfter: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := alerting.Parse("rules.yaml", []byte("rules:\n  - alert: Slow\n    field: p95\n    threshold: 250\n"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := alerting.NewKVStore(t.Context(), amBus.JetStream(), 1, 0)
	if err != nil {
		t.Fatalf("alert manager's KV store: %v", err)
	}
	am, err := alerting.New(alerting.Options{
		Config: cfg, Bus: amBus, Store: store, Alerts: &alerting.JetStreamSink{JS: amBus.JetStream()},
		Instance: "am", Durable: "alertmanager-am",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- agg.Run(ctx) }()
	go func() { done <- am.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()
	testutil.WaitFor(t, 10*time.Second, func() bool { return agg.Ready() && am.Ready() }, "services ready")
	for range 10 {
		if err := prod.Publish(t.Context(), perf("checkout")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 15*time.Second, func() bool {
		as, err := am.Alerts(t.Context())
		return err == nil && len(as) == 1 && as[0].State == alerting.StateFiring
	}, "the Slow alert firing from the aggregated windows")
	if st := agg.Stats(); st.Events != 10 || st.Emitted == 0 {
		t.Fatalf("aggregator counted %d events, emitted %d windows", st.Events, st.Emitted)
	}
}

// A server with users refuses a client with a wrong password, and one without
// credentials when there is no guest.
func TestCredentialsRequired(t *testing.T) {
	srv := natstest.Start(t, func(o *natsserver.Options) {
		o.Users = []*server.User{natsauth.User(natsauth.Producer, "pw", bcrypt.MinCost)}
	})
	for _, opts := range [][]nats.Option{nil, {nats.UserInfo("producer", "wrong")}} {
		nc, err := nats.Connect(srv.ClientURL(), append(opts, nats.MaxReconnects(0), nats.Timeout(20*time.Second))...)
		if err == nil {
			nc.Close()
			t.Fatalf("connected with %d options", len(opts))
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("error %v, want an authorization violation", err)
		}
	}
}

// The console may add a silence and delete a dead letter, and nothing
// more: not another bucket's keys, not another stream's messages.
func TestConsoleWritesOnlySilencesAndDeadLetters(t *testing.T) {
	srv := startServer(t)
	op := connect(t, srv, natsauth.Operator)
	ctx := t.Context()
	for _, b := range []string{alerting.BucketSilences, alerting.BucketAlerts} {
		if _, err := op.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := op.JetStream().Publish(ctx, streams.DeadLetterPrefix+"performance.operation.complete.x", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := op.Publish(ctx, perf("kept")); err != nil {
		t.Fatal(err)
	}
	con := connect(t, srv, natsauth.Console)
	js := con.JetStream()
	// Each call gets its own deadline: a refused one costs all of it.
	tctx := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	sil, err := js.KeyValue(tctx(), alerting.BucketSilences)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sil.Put(tctx(), "s1", []byte(`{}`)); err != nil {
		t.Errorf("the console cannot add a silence: %v", err)
	}
	if al, err := js.KeyValue(tctx(), alerting.BucketAlerts); err != nil {
		t.Fatal(err)
	} else if _, err := al.Put(tctx(), "a1", []byte(`{}`)); err == nil {
		t.Error("the console wrote the alert state")
	}
	dl, err := js.Stream(tctx(), streams.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if err := dl.DeleteMsg(tctx(), 1); err != nil {
		t.Errorf("the console cannot drop a dead letter: %v", err)
	}
	perfStream, err := js.Stream(tctx(), streams.Performance)
	if err != nil {
		t.Fatal(err)
	}
	if err := perfStream.DeleteMsg(tctx(), 1); err == nil {
		t.Error("the console deleted a PERFORMANCE message")
	}
}
