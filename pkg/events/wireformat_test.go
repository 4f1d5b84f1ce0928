package events_test

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/jetmon/jetmon/pkg/events"
)

// TestWireFormatExamples decodes every `nats pub` example in
// docs/wire-format.md and checks that it was sent on the subject the bus
// would use.
func TestWireFormatExamples(t *testing.T) {
	f, err := os.Open("../../docs/wire-format.md")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "nats pub ") {
			continue
		}
		n++
		rest := strings.TrimPrefix(line, "nats pub ")
		subject, payload, ok := strings.Cut(rest, " ")
		if !ok || !strings.HasPrefix(payload, "'") || !strings.HasSuffix(payload, "'") {
			t.Fatalf("example %d is not `nats pub SUBJECT 'JSON'`: %s", n, line)
		}
		payload = payload[1 : len(payload)-1]
		evs, err := events.DecodeBatch([]byte(payload))
		if err != nil {
			t.Errorf("example %d does not decode: %v\n%s", n, err, payload)
			continue
		}
		for _, ev := range evs {
			if got := events.SubjectOf(ev); got != subject {
				t.Errorf("example %d is published on %q, but its event belongs on %q", n, subject, got)
			}
		}
	}
	if n < 8 {
		t.Errorf("found %d examples in docs/wire-format.md, want at least 8", n)
	}
}

func TestWireFormatErrorMessages(t *testing.T) {
	data, err := os.ReadFile("../../docs/wire-format.md")
	if err != nil {
		t.Fatal(err)
	}
	ev := events.NewPerformanceEvent(events.OperationComplete, "s")
	ev.Operation, ev.DurationMS = "op", -5
	if msg := ev.Validate().Error(); !strings.Contains(string(data), msg) {
		t.Errorf("the doc does not show the real message %q", msg)
	}
}
