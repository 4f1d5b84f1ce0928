package jsbus_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

// follow runs Follow in the background and returns what it saw; stop ends
// it and returns its error.
type follower struct {
	mu     sync.Mutex
	tags   []string
	bad    []string
	errc   chan error
	cancel context.CancelFunc
}

func startFollow(t *testing.T, bus *jsbus.Bus, pattern string, o jsbus.FollowOptions, fail string) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	f := &follower{errc: make(chan error, 1), cancel: cancel}
	o.Undecodable = func(subject string, _ uint64, raw []byte, _ error) {
		f.mu.Lock()
		f.bad = append(f.bad, subject+" "+string(raw))
		f.mu.Unlock()
	}
	go func() {
		f.errc <- bus.Follow(ctx, pattern, o, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.tags = append(f.tags, eventstest.Tag(ev))
			if eventstest.Tag(ev) == fail {
				return errors.New("handler refuses " + fail)
			}
			return nil
		}))
	}()
	return f
}

func (f *follower) seen() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.tags...), append([]string(nil), f.bad...)
}

func (f *follower) has(tag string) bool {
	tags, _ := f.seen()
	return slices.Contains(tags, tag)
}

func (f *follower) stop(t *testing.T) error {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return after its context ended")
		return nil
	}
}

func TestFollow(t *testing.T) {
	srv := natstest.Start(t)
	bus := connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()
	ctx := t.Context()
	pub := func(typ events.Type, tag string) {
		t.Helper()
		if err := bus.Publish(ctx, eventstest.NewEvent(typ, tag)); err != nil {
			t.Fatal(err)
		}
	}
	pub(events.OperationComplete, "before")
	pub(events.ComponentFailed, "health-before")
	if err := bus.Flush(ctx); err != nil { // publishing is asynchronous: stored before Follow starts
		t.Fatal(err)
	}

	// From now on: only what is stored after Follow started.
	live := startFollow(t, bus, "performance.>", jsbus.FollowOptions{}, "")
	testutil.WaitFor(t, 10*time.Second, func() bool {
		pub(events.OperationComplete, "after")
		return live.has("after")
	}, "a live event")
	if _, err := bus.JetStream().Publish(ctx, "performance.operation.complete.x", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	pub(events.ComponentFailed, "health-after") // another stream: not followed
	pub(events.OperationComplete, "last")
	testutil.WaitFor(t, 10*time.Second, func() bool { return live.has("last") }, "the last event")
	if err := live.stop(t); err != nil {
		t.Errorf("Follow ended by its context returned %v", err)
	}
	tags, bad := live.seen()
	for _, tag := range tags {
		if tag != "after" && tag != "last" {
			t.Errorf("following performance.> from now saw %q", tag)
		}
	}
	if len(bad) != 1 || !strings.Contains(bad[0], "not an event") {
		t.Errorf("undecodable: %q, want the one bad message", bad)
	}

	// From the beginning, across streams (read side by side).
	all := startFollow(t, bus, ">", jsbus.FollowOptions{All: true}, "")
	testutil.WaitFor(t, 10*time.Second, func() bool { return all.has("last") && all.has("health-after") }, "both streams to the end")
	if err := all.stop(t); err != nil || !all.has("before") || !all.has("health-before") {
		tags, _ := all.seen()
		t.Errorf("following everything from the start saw %v (%v)", tags, err)
	}
	// A handler error ends it, and is returned.
	failing := startFollow(t, bus, "performance.>", jsbus.FollowOptions{All: true}, "after")
	select {
	case err := <-failing.errc:
		if err == nil || !strings.Contains(err.Error(), "handler refuses after") {
			t.Errorf("Follow returned %v, want the handler's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not stop at the handler's error")
	}
	if tags, _ := failing.seen(); slices.Contains(tags, "last") {
		t.Errorf("Follow went on after the handler's error: %v", tags)
	}

	// From a point in time on: what was stored before it is skipped.
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	from := time.Now()
	time.Sleep(50 * time.Millisecond)
	pub(events.OperationComplete, "from-here")
	since := startFollow(t, bus, "performance.>", jsbus.FollowOptions{From: from}, "")
	testutil.WaitFor(t, 10*time.Second, func() bool { return since.has("from-here") }, "the event stored after From")
	if err := since.stop(t); err != nil {
		t.Error(err)
	}
	if tags, _ := since.seen(); len(tags) != 1 {
		t.Errorf("following from %s saw %v, want only from-here", from.Format(time.RFC3339Nano), tags)
	}

	// Read-only: nothing dead-lettered, no consumer left behind.
	if n := bus.Stats().DeadLettered; n != 0 {
		t.Errorf("following dead-lettered %d messages", n)
	}
	for _, name := range []string{streams.Performance, streams.Health} {
		st, err := bus.JetStream().Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 5*time.Second, func() bool {
			info, err := st.Info(ctx)
			return err == nil && info.State.Consumers == 0
		}, "no consumer left on "+name)
	}
}

func TestDeadLetterListRetryDrop(t *testing.T) {
	srv := natstest.Start(t)
	bus := connect(t, testConfig(srv.ClientURL()))
	defer func() { _ = bus.Close() }()
	ctx := t.Context()
	var failing atomic.Bool
	failing.Store(true)
	col := eventstest.NewCollector()
	_, err := bus.Subscribe(ctx, "system.>", events.HandlerFunc(func(ctx context.Context, ev events.Event) error {
		if failing.Load() {
			return errors.New("downstream is down")
		}
		return col.Handle(ctx, ev)
	}), events.Durable("flaky"), events.MaxDeliver(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"a", "b"} {
		if err := bus.Publish(ctx, eventstest.NewEvent(events.SystemError, tag)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bus.JetStream().Publish(ctx, "system.error.x", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, func() bool { return bus.Stats().DeadLettered == 3 }, "three dead letters")

	dls, err := bus.DeadLetters(ctx, ">", 0)
	if err != nil || len(dls) != 3 {
		t.Fatalf("DeadLetters: %d, %v; want 3", len(dls), err)
	}
	byTag := map[string]jsbus.DeadLetter{}
	for _, d := range dls {
		if d.Stream != streams.System || d.BatchIndex != -1 || d.OriginalSeq == 0 || d.Seq == 0 {
			t.Errorf("dead letter %+v", d)
		}
		if strings.Contains(string(d.Data), "garbage") {
			byTag["garbage"] = d
		} else if ev, err := events.Decode(d.Data); err == nil {
			byTag[eventstest.Tag(ev)] = d
		}
	}
	if a := byTag["a"]; a.Deliveries != 2 || !strings.Contains(a.Reason, "downstream is down") || !strings.HasPrefix(a.Subject, "system.error.") {
		t.Errorf("dead letter of a: %+v", a)
	}
	if g := byTag["garbage"]; !strings.Contains(g.Reason, "undecodable") {
		t.Errorf("dead letter of the garbage: %+v", g)
	}
	if only, err := bus.DeadLetters(ctx, "performance.>", 0); err != nil || len(only) != 0 {
		t.Errorf("performance dead letters: %d, %v; want none", len(only), err)
	}
	if first, err := bus.DeadLetters(ctx, "system.error", 1); err != nil || len(first) != 1 || first[0].Seq != dls[0].Seq {
		t.Errorf("the first system.error dead letter: %+v, %v", first, err)
	}

	// The downstream is back: a retried dead letter is handled.
	failing.Store(false)
	if err := bus.RetryDeadLetter(ctx, byTag["a"].Seq); err != nil {
		t.Fatal(err)
	}
	got := col.WaitFor(t, 1, 10*time.Second)
	if eventstest.Tag(got[0]) != "a" || got[0].Metadata().ID != func() string { ev, _ := events.Decode(byTag["a"].Data); return ev.Metadata().ID }() {
		t.Errorf("retried: %v", got)
	}
	if err := bus.RetryDeadLetter(ctx, byTag["a"].Seq); err == nil {
		t.Error("retrying a dead letter twice succeeded; it was removed by the first retry")
	}
	if err := bus.RetryDeadLetter(ctx, byTag["garbage"].Seq); !errors.Is(err, jsbus.ErrNotRetryable) {
		t.Errorf("retrying garbage: %v, want ErrNotRetryable", err)
	}
	if err := bus.DropDeadLetter(ctx, byTag["garbage"].Seq); err != nil {
		t.Fatal(err)
	}
	left, err := bus.DeadLetters(ctx, ">", 0)
	if err != nil || len(left) != 1 || left[0].Seq != byTag["b"].Seq {
		t.Errorf("left after a retry and a drop: %+v, %v; want b alone", left, err)
	}

	// A partitioned aggregator reads "<partition>.<type>.<source>": its dead
	// letters are listed by event type and retried to the event's subject.
	perf := eventstest.NewCollector()
	if _, err := bus.Subscribe(ctx, "performance.>", perf); err != nil {
		t.Fatal(err)
	}
	ev := eventstest.NewEvent(events.OperationComplete, "partitioned")
	dl := nats.NewMsg(streams.DeadLetterPrefix + "3." + events.SubjectOf(ev))
	dl.Data = ev.AppendJSON(nil)
	dl.Header.Set(jsbus.HeaderOriginalSubject, "3."+events.SubjectOf(ev))
	dl.Header.Set(jsbus.HeaderOriginalStream, "AGGREGATE_INPUT")
	dl.Header.Set(jsbus.HeaderDeadReason, "handler failed 5 times")
	if _, err := bus.JetStream().PublishMsg(ctx, dl); err != nil {
		t.Fatal(err)
	}
	parted, err := bus.DeadLetters(ctx, "performance.operation.complete", 0)
	if err != nil || len(parted) != 1 || parted[0].Stream != "AGGREGATE_INPUT" {
		t.Fatalf("dead letters of performance.operation.complete: %+v, %v", parted, err)
	}
	if err := bus.RetryDeadLetter(ctx, parted[0].Seq); err != nil {
		t.Fatal(err)
	}
	if got := perf.WaitFor(t, 1, 10*time.Second); eventstest.Tag(got[0]) != "partitioned" {
		t.Errorf("retried to the event subject: %v", got)
	}
}
