package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/coordinator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
)

// testValidationFlow runs the validation flow end to end on bus: validation
// events drive coordinator phases, which come back as performance.phase.*
// events.
func testValidationFlow(t *testing.T, bus events.Bus) {
	c := eventDriven(t, bus, coordinator.Options{Source: "validator-monitor"})
	vms := coordinator.NewValidationMonitoringService(bus, c)
	if err := vms.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = vms.Stop() }()
	if ids := vms.SubscriptionIDs(); len(ids) != 1 || ids[0] == "" {
		t.Fatalf("subscription ids %v", ids)
	}
	phases := eventstest.NewCollector()
	if _, err := bus.Subscribe(context.Background(), "performance.phase.*", phases); err != nil {
		t.Fatal(err)
	}
	root := events.NewRootTrace()
	started := events.NewValidationEvent(events.ValidationStarted, "orders", "order-42")
	started.FieldPath = "order.shipping.address"
	started.SetTrace(root)
	failed := events.NewValidationEvent(events.ValidationFailed, "orders", "order-42")
	failed.FieldPath, failed.DurationMS, failed.Errors = "order.shipping.address", 251, []string{"zip"}
	failed.SetTrace(root.Child())
	for _, ev := range []events.Event{started, failed} {
		if err := bus.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	got := phases.WaitFor(t, 2, 10*time.Second)
	start, end := got[0].(*events.PerformanceEvent), got[1].(*events.PerformanceEvent)
	if start.Type != events.PhaseStart || start.Phase != coordinator.ValidationPhase || start.FieldPath != "order.shipping.address" ||
		start.ContextID != "order-42" || start.TraceID != root.TraceID {
		t.Errorf("phase start %+v", start)
	}
	if end.Type != events.PhaseEnd || end.DurationMS != 251 || end.Status != events.StatusFailure || end.ContextID != "order-42" {
		t.Errorf("phase end %+v", end)
	}
}

func TestValidationFlowOnMemoryBus(t *testing.T) {
	testValidationFlow(t, memBus(t))
}

func TestValidationFlowOnJetStream(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	testValidationFlow(t, bus)
}

// TestLiveControlAcrossTwoCoordinators: control events on the bus change the
// mode, sampling and on/off state of every coordinator listening, and each
// acknowledges every change.
func TestLiveControlAcrossTwoCoordinators(t *testing.T) {
	bus := memBus(t)
	ctx := context.Background()
	var sws []*coordinator.Switchable
	for i, name := range []string{"svc-a", "svc-b"} {
		sw, err := coordinator.NewSwitchable(coordinator.EventDriven, bus, coordinator.Options{Source: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sw.Close(ctx) })
		sub, err := coordinator.Control(ctx, bus, sw, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		sws = append(sws, sw)
		_ = i
	}
	acks := eventstest.NewCollector()
	if _, err := bus.Subscribe(ctx, "monitoring.config.changed", acks); err != nil {
		t.Fatal(err)
	}
	send := func(ev *events.ControlEvent) {
		t.Helper()
		if err := bus.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	waitAcks := func(n int, id string) {
		t.Helper()
		got := acks.WaitFor(t, n, 5*time.Second)
		replies := 0
		for _, ev := range got {
			if ev.(*events.ControlEvent).Config["in_reply_to"] == id {
				replies++
			}
		}
		if replies != 2 {
			t.Fatalf("%d coordinators acknowledged control %s, want 2", replies, id)
		}
	}

	sw := events.NewControlEvent(events.ModeSwitched, "ops")
	sw.Mode = events.ModeDirect
	send(sw)
	waitAcks(2, sw.ID)
	for _, s := range sws {
		if s.Mode() != coordinator.Direct {
			t.Errorf("mode after mode.switched: %s", s.Mode())
		}
	}

	sampled := events.NewControlEvent(events.MonitoringSampled, "ops")
	sampled.SampleRate, sampled.Scope = 0.25, "performance.operation.*"
	send(sampled)
	waitAcks(4, sampled.ID)
	for _, s := range sws {
		if s.SampleRate(events.OperationComplete) != 0.25 || s.SampleRate(events.MetricRecorded) != 1 {
			t.Errorf("sample rates after monitoring.sampled: op %v, metric %v", s.SampleRate(events.OperationComplete), s.SampleRate(events.MetricRecorded))
		}
	}

	off := events.NewControlEvent(events.MonitoringDisabled, "ops")
	send(off)
	waitAcks(6, off.ID)
	for _, s := range sws {
		if s.Enabled() || s.Mode() != coordinator.Disabled {
			t.Errorf("after monitoring.disabled: enabled %v, mode %s", s.Enabled(), s.Mode())
		}
	}
	on := events.NewControlEvent(events.MonitoringEnabled, "ops")
	send(on)
	waitAcks(8, on.ID)
	for _, s := range sws {
		if !s.Enabled() || s.Mode() != coordinator.Direct {
			t.Errorf("after monitoring.enabled: enabled %v, mode %s (want the chosen mode back)", s.Enabled(), s.Mode())
		}
	}
}
