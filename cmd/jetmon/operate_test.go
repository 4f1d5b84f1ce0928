package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// pipelineBus connects to a fresh embedded server, with the streams applied.
func pipelineBus(t *testing.T) (*jsbus.Bus, string) {
	t.Helper()
	url := natstest.Start(t).ClientURL()
	return natstest.Connect(t, url, func(c *jsbus.Config) { c.RedeliveryDelay = 20 * time.Millisecond }), url
}

// jetmon runs the CLI in-process and returns its exit code and output.
func jetmon(t *testing.T, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := func(k string) (string, bool) {
		if k == "NATS_URL" {
			return url, true
		}
		return "", false
	}
	code = run(t.Context(), args, &out, &errOut, env)
	return code, out.String(), errOut.String()
}

func TestTail(t *testing.T) {
	bus, url := pipelineBus(t)
	op := events.NewPerformanceEvent(events.OperationComplete, "checkout")
	op.Operation, op.DurationMS, op.Status = "charge", 312.5, events.StatusSuccess
	failed := events.NewHealthEvent(events.ComponentFailed, "agent", "payments-db")
	failed.Message = "connection refused"
	for _, ev := range []events.Event{op, failed} {
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bus.JetStream().Publish(t.Context(), "performance.operation.complete.x", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	// Stored after the bad message: once tail prints it, it has passed that.
	phase := events.NewPerformanceEvent(events.PhaseStart, "checkout")
	phase.Phase = "validate"
	if err := bus.Publish(t.Context(), phase); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := jetmon(t, url, "tail", "--all", "--count", "3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("tail --all --count 3: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	wantLines := map[string]*regexp.Regexp{
		"operation": regexp.MustCompile(`^\S+Z  performance\.operation\.complete  checkout  operation="charge"  duration=312\.5ms  status="success"$`),
		"health":    regexp.MustCompile(`^\S+Z  health\.component\.failed  agent  component="payments-db"  status="failed"  message="connection refused"$`),
	}
	for what, re := range wantLines {
		if !slices.ContainsFunc(lines, re.MatchString) {
			t.Errorf("no %s line like %s in:\n%s", what, re, out)
		}
	}
	if !strings.Contains(errOut, "performance.operation.complete.x #") || !strings.Contains(errOut, "undecodable") {
		t.Errorf("the undecodable message is not reported on stderr:\n%s", errOut)
	}
	code, out, errOut = jetmon(t, url, "tail", "--all", "--count", "1", "--source", "agent")
	if code != 0 || !strings.Contains(out, "health.component.failed  agent") || strings.Count(out, "\n") != 1 {
		t.Errorf("tail --source agent: exit %d\n%s%s", code, out, errOut)
	}

	// JSON lines in wire form, one pattern, events stored after the start.
	done := make(chan struct{})
	var jcode int
	var jout string
	go func() {
		defer close(done)
		jcode, jout, _ = jetmon(t, url, "tail", "--json", "--count", "1", "health.>")
	}()
	testutil.WaitFor(t, 10*time.Second, func() bool {
		select {
		case <-done:
			return true
		default:
		}
		if err := bus.Publish(t.Context(), events.NewHealthEvent(events.ComponentHealthy, "agent", "payments-db")); err != nil {
			t.Error(err)
		}
		return false
	}, "tail to print a new health event")
	ev, err := events.Decode([]byte(strings.TrimSpace(jout)))
	if jcode != 0 || err != nil || ev.Metadata().Type != events.ComponentHealthy {
		t.Errorf("tail --json: exit %d, %q: %v", jcode, jout, err)
	}
	if n := bus.Stats().DeadLettered; n != 0 {
		t.Errorf("tail dead-lettered %d messages", n)
	}
}

func TestDeadLetterCommands(t *testing.T) {
	bus, url := pipelineBus(t)
	ctx := t.Context()
	var failing atomic.Bool
	failing.Store(true)
	handled := make(chan string, 16)
	_, err := bus.Subscribe(ctx, "system.>", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		if failing.Load() {
			return errors.New("ticket system unreachable")
		}
		handled <- ev.(*events.SystemEvent).Error
		return nil
	}), events.Durable("tickets"), events.MaxDeliver(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"disk full", "oom"} {
		if err := bus.Publish(ctx, events.NewSystemEvent(events.SystemError, "api", text)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bus.JetStream().Publish(ctx, "system.error.api", []byte("{broken")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, func() bool { return bus.Stats().DeadLettered == 3 }, "three dead letters")

	code, out, errOut := jetmon(t, url, "dlq", "list")
	if code != 0 || strings.Count(out, "system.error.api") != 3 || !strings.Contains(out, "ticket system unreachable") ||
		!strings.Contains(out, "undecodable") || !strings.HasPrefix(out, "SEQ") {
		t.Fatalf("dlq list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = jetmon(t, url, "dlq", "list", "--json")
	var dls []deadLetterJSON
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var d deadLetterJSON
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("dlq list --json line %q: %v", line, err)
		}
		dls = append(dls, d)
	}
	if code != 0 || len(dls) != 3 {
		t.Fatalf("dlq list --json: exit %d, %+v", code, dls)
	}
	if code, out, _ := jetmon(t, url, "dlq", "list", "performance.>"); code != 0 || !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq list performance.>: exit %d\n%s", code, out)
	}
	var broken uint64
	for _, d := range dls {
		switch {
		case d.Stream != "SYSTEM" || d.Subject != "system.error.api":
			t.Errorf("dead letter from %s %s", d.Stream, d.Subject)
		case d.Data == "{broken":
			broken = d.Seq
		case d.Deliveries != 2 || !strings.Contains(d.Reason, "ticket system unreachable"):
			t.Errorf("dead letter after a failing handler: %+v", d)
		}
	}

	// The cause is fixed: retry everything. The broken one is refused.
	failing.Store(false)
	code, out, errOut = jetmon(t, url, "dlq", "retry", "--all")
	if code != 1 || !strings.Contains(out, "retried 2 of 3") || !strings.Contains(errOut, fmt.Sprintf("dead letter %d", broken)) ||
		!strings.Contains(errOut, "does not decode") {
		t.Errorf("dlq retry --all: exit %d\n%s%s", code, out, errOut)
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case text := <-handled:
			got[text] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("retried events handled: %v", got)
		}
	}
	if !got["disk full"] || !got["oom"] {
		t.Errorf("retried events handled: %v", got)
	}
	if code, out, errOut := jetmon(t, url, "dlq", "drop", fmt.Sprint(broken)); code != 0 || !strings.Contains(out, "dropped 1 of 1") {
		t.Errorf("dlq drop: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := jetmon(t, url, "dlq", "list"); code != 0 || !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq list after retry and drop: exit %d\n%s", code, out)
	}
}

func TestOperatorCommandErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dlq"}, 2, "Usage: jetmon dlq"},
		{[]string{"dlq", "purge"}, 2, `unknown command "purge"`},
		{[]string{"dlq", "retry"}, 2, "give the SEQ numbers"},
		{[]string{"dlq", "retry", "12x"}, 2, `"12x" is not a dead letter's SEQ`},
		{[]string{"dlq", "drop", "--all"}, 2, "name the PATTERN"},
		{[]string{"dlq", "list", "a..b"}, 2, "a..b"},
		{[]string{"dlq", "list", "--help"}, 0, "JETMON_LIMIT"},
		{[]string{"tail", "--help"}, 0, "JETMON_SINCE"},
		{[]string{"tail", "a", "b"}, 2, "one pattern"},
		{[]string{"tail", "--count", "-1"}, 2, "must not be negative"},
		{[]string{"tail", "--nats-url", "nats://127.0.0.1:1", "--timeout", "1s"}, 1, "127.0.0.1:1"},
		{[]string{"dlq", "list", "--nats-url", "nats://127.0.0.1:1", "--timeout", "1s"}, 1, "127.0.0.1:1"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), c.args, &out, &out, noEnv)
			if code != c.code || !strings.Contains(out.String(), c.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out.String(), c.code, c.want)
			}
		})
	}
}
