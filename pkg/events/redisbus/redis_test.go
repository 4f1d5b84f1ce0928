package redisbus_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/redistest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/redisbus"
)

// TestPendingEntriesAreClaimed: a group member takes entries and dies
// without acknowledging them; another member claims them after ClaimTimeout.
func TestPendingEntriesAreClaimed(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ClaimTimeout = 500 * time.Millisecond
	bus := connect(t, cfg)
	defer func() { _ = bus.Close() }()
	ctx := t.Context()

	// The group exists from a first member that leaves at once.
	first, err := bus.Subscribe(ctx, "system.>", eventstest.NewCollector(), events.Group("workers"))
	if err != nil {
		t.Fatal(err)
	}
	_ = first.Unsubscribe()
	for i := range 5 {
		if err := bus.Publish(ctx, eventstest.NewEvent(events.SystemError, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// A member that reads and then dies holding all five.
	taken, err := bus.Client().XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: "workers", Consumer: "crashed", Streams: []string{bus.Stream(events.FamilySystem), ">"}, Count: 10,
	}).Result()
	if err != nil || len(taken[0].Messages) != 5 {
		t.Fatalf("the doomed member took %v: %v", taken, err)
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	col := eventstest.NewCollector()
	h := events.HandlerFunc(func(ctx context.Context, ev events.Event) error {
		d, _ := events.DeliveryFromContext(ctx)
		mu.Lock()
		attempts[eventstest.Tag(ev)] = d.Attempt
		mu.Unlock()
		return col.Handle(ctx, ev)
	})
	if _, err := bus.Subscribe(ctx, "system.>", h, events.Group("workers")); err != nil {
		t.Fatal(err)
	}
	got := col.WaitFor(t, 5, 10*time.Second)
	if len(got) != 5 || bus.Stats().Claimed != 5 {
		t.Errorf("claimed %d, delivered %d; want 5 and 5", bus.Stats().Claimed, len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	for tag, a := range attempts {
		if a < 2 {
			t.Errorf("event %s claimed with attempt %d, want at least 2", tag, a)
		}
	}
	testutil.WaitFor(t, 5*time.Second, func() bool {
		p, err := bus.Client().XPending(ctx, bus.Stream(events.FamilySystem), "workers").Result()
		return err == nil && p.Count == 0
	}, "the claimed entries to be acknowledged")
}

func TestUndecodableEntriesAreDeadLettered(t *testing.T) {
	srv := redistest.Start(t)
	bus := connect(t, testConfig(srv.Addr))
	defer func() { _ = bus.Close() }()
	ctx := t.Context()
	col := eventstest.NewCollector()
	if _, err := bus.Subscribe(ctx, "performance.>", col, events.Durable("audit")); err != nil {
		t.Fatal(err)
	}
	if err := bus.Client().XAdd(ctx, &redis.XAddArgs{
		Stream: bus.Stream(events.FamilyPerformance),
		Values: []any{redisbus.FieldSubject, "performance.operation.complete.x", redisbus.FieldData, "not json at all"},
	}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, eventstest.NewEvent(events.OperationComplete, "good")); err != nil {
		t.Fatal(err)
	}
	col.WaitFor(t, 1, 10*time.Second)
	testutil.WaitFor(t, 5*time.Second, func() bool { return bus.Stats().DeadLettered == 1 }, "a dead letter")
	dl, err := bus.Client().XRange(ctx, bus.DeadLetterStream(), "-", "+").Result()
	if err != nil || len(dl) != 1 || dl[0].Values[redisbus.FieldData] != "not json at all" ||
		!strings.Contains(dl[0].Values[redisbus.FieldReason].(string), "undecodable") {
		t.Errorf("dead letters %v: %v", dl, err)
	}
	testutil.WaitFor(t, 5*time.Second, func() bool {
		p, err := bus.Client().XPending(ctx, bus.Stream(events.FamilyPerformance), "audit").Result()
		return err == nil && p.Count == 0
	}, "no entry left pending")
}

// TestRestartLosesNoAcknowledgedEvent kills redis-server (SIGKILL) in the
// middle of a stream of publishes and restarts it: every event Publish
// acknowledged reaches the durable consumer.
func TestRestartLosesNoAcknowledgedEvent(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	var logs testutil.SyncBuffer
	cfg := testConfig(srv.Addr)
	logger := zerolog.New(&logs)
	cfg.Logger = &logger
	bus := connect(t, cfg)
	defer func() { _ = bus.Close() }()
	ctx := t.Context()
	var mu sync.Mutex
	seen := map[string]bool{}
	if _, err := bus.Subscribe(ctx, "performance.>", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		mu.Lock()
		seen[ev.Metadata().ID] = true
		mu.Unlock()
		return nil
	}), events.Durable("restart-test")); err != nil {
		t.Fatal(err)
	}
	const n = 1500
	var acked []string
	failures := 0
	for i := range n {
		if i == n/2 {
			srv.Restart(true)
		}
		ev := eventstest.NewEvent(events.OperationComplete, fmt.Sprint(i))
		for {
			err := bus.Publish(ctx, ev)
			if err == nil {
				acked = append(acked, ev.Metadata().ID)
				break
			}
			failures++
			if failures > 500 {
				t.Fatalf("publishing keeps failing after the restart: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("%d events acknowledged; %d publish attempts failed around the restart", len(acked), failures)
	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var ids []string
		for _, id := range acked {
			if !seen[id] {
				ids = append(ids, id)
			}
		}
		return ids
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if lost := missing(); len(lost) > 0 {
		t.Errorf("%d acknowledged events not delivered after 30s", len(lost))
		describeEntries(t, bus, events.FamilyPerformance, "restart-test", lost)
		t.Logf("bus log:\n%s", logs.String())
	}
}

// describeEntries logs where the events with the given ids are in a stream
// and its group: their entry ids, the group's position and pending entries.
func describeEntries(t *testing.T, bus *redisbus.Bus, family events.Family, group string, ids []string) {
	t.Helper()
	ctx := context.Background()
	key := bus.Stream(family)
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	all, err := bus.Client().XRange(ctx, key, "-", "+").Result()
	if err != nil {
		t.Logf("XRANGE %s: %v", key, err)
		return
	}
	var entries []string
	for _, m := range all {
		data, _ := m.Values[redisbus.FieldData].(string)
		for id := range want {
			if strings.Contains(data, id) {
				entries = append(entries, m.ID)
			}
		}
	}
	t.Logf("stream %s holds %d entries (first %s, last %s); missing events are entries %v",
		key, len(all), all[0].ID, all[len(all)-1].ID, entries)
	groups, err := bus.Client().XInfoGroups(ctx, key).Result()
	t.Logf("groups: %+v (%v)", groups, err)
	consumers, err := bus.Client().XInfoConsumers(ctx, key, group).Result()
	t.Logf("consumers of %s: %+v (%v)", group, consumers, err)
	pending, err := bus.Client().XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: group, Start: "-", End: "+", Count: 50}).Result()
	t.Logf("pending (first 50): %+v (%v)", pending, err)
	t.Logf("bus stats: %+v", bus.Stats())
}

func TestStreamLengthIsCapped(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.MaxLen = 500
	bus := connect(t, cfg)
	defer func() { _ = bus.Close() }()
	for i := range 3000 {
		if err := bus.Publish(t.Context(), eventstest.NewEvent(events.SystemError, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	n, err := bus.Client().XLen(t.Context(), bus.Stream(events.FamilySystem)).Result()
	if err != nil || n < 500 || n > 1000 {
		t.Errorf("stream length %d after 3000 events with MaxLen ~500: %v", n, err)
	}
}

func TestAuthAndSecrets(t *testing.T) {
	const secret = "correct-horse-redis"
	srv := redistest.Start(t, "--requirepass", secret)
	cfg := testConfig(srv.Addr)
	cfg.Password = secret
	bus := connect(t, cfg)
	if !bus.IsConnected() {
		t.Error("not connected with the right password")
	}
	_ = bus.Close()
	cfg.Password = "wrong-" + secret
	_, err := redisbus.Connect(t.Context(), cfg)
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), srv.Addr) {
		t.Errorf("a wrong password: %v (must fail, name the server, and not echo the password)", err)
	}
}

// TestConfigValidate breaks one field of a valid configuration per case and
// checks that Validate names that field (Validate has no sentinel errors; the
// field named is the contract). The valid base must pass, so a Validate that
// rejects everything fails here too.
func TestConfigValidate(t *testing.T) {
	base := redisbus.DefaultConfig()
	base.Host, base.Port = "h", 1
	if err := base.Validate(); err != nil {
		t.Fatalf("DefaultConfig() with a host: Validate() = %v, want nil", err)
	}
	const durations = "durations must not be negative"
	cases := []struct {
		name   string
		mutate func(*redisbus.Config)
		want   string
	}{
		{"Port too large", func(c *redisbus.Config) { c.Port = 70000 }, "Port 70000"},
		{"Port negative", func(c *redisbus.Config) { c.Port = -1 }, "Port -1"},
		{"DB", func(c *redisbus.Config) { c.DB = -1 }, "DB -1"},
		{"PoolSize", func(c *redisbus.Config) { c.PoolSize = -1 }, "PoolSize -1"},
		{"MaxDeliver", func(c *redisbus.Config) { c.MaxDeliver = -1 }, "MaxDeliver -1"},
		{"DialTimeout", func(c *redisbus.Config) { c.DialTimeout = -time.Second }, durations},
		{"ReadTimeout", func(c *redisbus.Config) { c.ReadTimeout = -time.Second }, durations},
		{"WriteTimeout", func(c *redisbus.Config) { c.WriteTimeout = -time.Second }, durations},
		{"RedeliveryDelay", func(c *redisbus.Config) { c.RedeliveryDelay = -time.Second }, durations},
		{"ClaimTimeout", func(c *redisbus.Config) { c.ClaimTimeout = -time.Second }, durations},
		{"BlockFor", func(c *redisbus.Config) { c.BlockFor = -time.Second }, durations},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), "redisbus config: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want a redisbus config error naming %q", err, tc.want)
			}
		})
	}
	closed := redisbus.DefaultConfig()
	closed.Port = 1
	if _, err := redisbus.Connect(t.Context(), closed); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Connect to a closed port: %v, want an error naming 127.0.0.1:1", err)
	}
	if d := redisbus.DefaultConfig(); d.MaxLen != 1_000_000 || d.Prefix != "jetmon:" || d.Addr() != "127.0.0.1:6379" {
		t.Errorf("defaults %+v", d)
	}
}

// strand appends ev to its stream and, in the same transaction, reads it
// into the pending list of a group member without the member seeing it: the
// state a blocking read leaves when the server dies between the read and
// its reply.
func strand(t *testing.T, bus *redisbus.Bus, group, consumer string, ev events.Event) {
	t.Helper()
	m := ev.Metadata()
	key := bus.Stream(m.Type.Family())
	_, err := bus.Client().TxPipelined(t.Context(), func(p redis.Pipeliner) error {
		p.XAdd(t.Context(), &redis.XAddArgs{Stream: key, Values: []any{
			redisbus.FieldSubject, events.Subject(m.Type, m.Source), redisbus.FieldID, m.ID, redisbus.FieldData, ev.AppendJSON(nil),
		}})
		p.XReadGroup(t.Context(), &redis.XReadGroupArgs{Group: group, Consumer: consumer, Streams: []string{key, ">"}, Count: 1, Block: -1})
		return nil
	})
	if err != nil {
		t.Fatalf("strand %s with %s: %v", m.ID, consumer, err)
	}
}

// member publishes a warm-up event of type typ, waits for col to receive it
// and returns the name of the only member of group (Redis creates a member
// when it first receives entries).
func member(t *testing.T, bus *redisbus.Bus, col *eventstest.Collector, typ events.Type, group string) string {
	t.Helper()
	if err := bus.Publish(t.Context(), eventstest.NewEvent(typ, "warm-up")); err != nil {
		t.Fatal(err)
	}
	col.WaitFor(t, 1, 5*time.Second)
	key := bus.Stream(typ.Family())
	var name string
	testutil.WaitFor(t, 5*time.Second, func() bool {
		cs, err := bus.Client().XInfoConsumers(t.Context(), key, group).Result()
		if err != nil || len(cs) != 1 {
			return false
		}
		name = cs[0].Name
		return true
	}, "the group member to read")
	return name
}

// TestReadCutOffByAConnectionLossIsRecovered: the server kills a member's
// connection while entries it read are in flight. The member must re-read
// its own pending entries at once, not leave them for the ClaimTimeout.
func TestReadCutOffByAConnectionLossIsRecovered(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ClaimTimeout = time.Minute // far beyond the wait below
	var logs testutil.SyncBuffer
	logger := zerolog.New(&logs)
	cfg.Logger = &logger
	defer func() {
		if t.Failed() {
			t.Logf("bus log:\n%s", logs.String())
		}
	}()
	bus := connect(t, cfg)
	defer func() { _ = bus.Close() }()
	col := eventstest.NewCollector()
	if _, err := bus.Subscribe(t.Context(), "performance.>", col, events.Durable("cutoff")); err != nil {
		t.Fatal(err)
	}
	name := member(t, bus, col, events.OperationComplete, "cutoff")
	stranded := eventstest.NewEvent(events.OperationComplete, "stranded")
	strand(t, bus, "cutoff", name, stranded)
	if err := bus.Client().Do(t.Context(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(t.Context(), eventstest.NewEvent(events.OperationComplete, "after")); err != nil {
		t.Fatal(err)
	}
	// At least once: an ack the kill cut off redelivers its entry too.
	testutil.WaitFor(t, 10*time.Second, func() bool {
		tags := map[string]bool{}
		for _, ev := range col.Events() {
			tags[eventstest.Tag(ev)] = true
		}
		return tags["stranded"] && tags["after"]
	}, "the stranded entry and the one after")
}

// TestALeavingMemberHandsOnWhatItHeld: entries pending with a member that
// unsubscribes go to the next member at once, not after ClaimTimeout.
func TestALeavingMemberHandsOnWhatItHeld(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(srv.Addr)
	cfg.ClaimTimeout = time.Minute
	bus := connect(t, cfg)
	defer func() { _ = bus.Close() }()
	firstCol := eventstest.NewCollector()
	first, err := bus.Subscribe(t.Context(), "system.>", firstCol, events.Group("workers"))
	if err != nil {
		t.Fatal(err)
	}
	strand(t, bus, "workers", member(t, bus, firstCol, events.SystemError, "workers"), eventstest.NewEvent(events.SystemError, "held"))
	if err := first.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	col := eventstest.NewCollector()
	if _, err := bus.Subscribe(t.Context(), "system.>", col, events.Group("workers")); err != nil {
		t.Fatal(err)
	}
	// (The warm-up event may come again too, should its ack not have
	// landed before the first member left: at least once.)
	testutil.WaitFor(t, 5*time.Second, func() bool {
		return slices.ContainsFunc(col.Events(), func(ev events.Event) bool { return eventstest.Tag(ev) == "held" })
	}, "the next member to get the entry the first one held")
}
