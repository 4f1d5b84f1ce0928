package demo_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/demo"
	"github.com/jetmon/jetmon/pkg/events"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunPrintsEventsAndSummary(t *testing.T) {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	var out syncBuffer
	opts := demo.DefaultOptions()
	opts.Rate, opts.Duration, opts.SummaryEvery = 200, 2500*time.Millisecond, time.Second
	if err := demo.Run(context.Background(), bus, opts, &out, zerolog.Nop()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	text := out.String()
	for _, want := range []string{"performance.operation.complete", "validation.started", "health.component.", "== summary ==", "db.query", "component cache"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if n := bus.Stats().Published; n < 100 {
		t.Errorf("published %d events in 2.5 s at 200/s", n)
	}
	if bus.Stats().HandlerErrors != 0 {
		t.Errorf("handler errors: %+v", bus.Stats())
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []demo.Options{{Rate: 0, SummaryEvery: time.Second}, {Rate: 1, Duration: -1, SummaryEvery: time.Second}, {Rate: 1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if err := demo.DefaultOptions().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
