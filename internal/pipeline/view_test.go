package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// hostile holds what an event could carry to take over a terminal: CSI
// clear-screen, an OSC window title ended by BEL and by ST, an OSC 52
// clipboard write, a C1 CSI, DEL, a bidi override and a stray byte.
const hostile = "op\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZWNobyBoaQ==\x1b\\\u009b31m\x7f\u202eevil\xff"

func TestViewEscapesControlCharacters(t *testing.T) {
	now := time.Now()
	w := events.NewAggregateEvent(events.OperationComplete, "src\x1b]0;title\x07", hostile, now.Add(-10*time.Second), now)
	w.Count, w.P95 = 10, 300
	a := &alerting.Alert{
		Rule: "Slow\x1b[1m", State: alerting.StateFiring, ActiveAt: now,
		Labels:      alerting.Labels{"alertname": "Slow", "operation": hostile},
		Annotations: map[string]string{"summary": "slow " + hostile},
	}
	v := &view{ansi: true, window: 10 * time.Second, httpAddr: "127.0.0.1:8080", natsURL: "nats://u:secretpw@127.0.0.1:4222"}
	frame := v.render(now, aggregator.Stats{}, []*events.AggregateEvent{w}, []alerting.AlertStatus{{Alert: a}})

	// The frame's own clear-screen is the only escape sequence in it.
	body := strings.TrimPrefix(frame, "\x1b[H\x1b[2J")
	for i, r := range body {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || r == 0xfffd {
			t.Fatalf("raw control %U at byte %d of the frame:\n%q", r, i, body)
		}
	}
	for _, want := range []string{`op\x1b[2J\x1b]0;pwned\x07`, `\u009b31m\x7f\u202eevil\xff`, `src\x1b]0;title\x07`, `Slow\x1b[1m`, `slow op\x1b[2J`} {
		if !strings.Contains(body, want) {
			t.Errorf("the frame does not show %q visibly:\n%s", want, body)
		}
	}
	if strings.Contains(frame, "secretpw") {
		t.Errorf("the frame shows the NATS password:\n%s", frame)
	}
}

func TestTerm(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain ünïcode ✓", "plain ünïcode ✓"},
		{"", ""},
		{"tab\there", `tab\x09here`},
		{"nl\nx", `nl\x0ax`},
		{"esc\x1b[31m", `esc\x1b[31m`},
		{"c1\u0085", `c1\u0085`},
		{"bad\xc3", `bad\xc3`},
		{"real \ufffd stays", "real \ufffd stays"},
	} {
		if got := term(tc.in); got != tc.want {
			t.Errorf("term(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
