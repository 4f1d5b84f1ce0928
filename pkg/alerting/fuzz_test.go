package alerting_test

import (
	"os"
	"testing"

	"github.com/jetmon/jetmon/pkg/alerting"
)

// FuzzParse feeds arbitrary rules files to the parser: it must never
// panic, and what it accepts must parse again the same way.
func FuzzParse(f *testing.F) {
	for _, file := range []string{"../../examples/rules.yaml", "../../examples/receivers.yaml"} {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("rules:\n  - alert: A\n    field: p95\n    threshold: auto\n"))
	f.Add([]byte("rules:\n  - alert: S\n    kind: absence\n    first: {types: [a.b]}\n    then: {types: [a.c]}\n    within: 1s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := alerting.ParseEmbedded("f.yaml", data)
		if err != nil {
			return
		}
		if _, err := alerting.ParseEmbedded("f.yaml", data); err != nil {
			t.Fatalf("accepted once, refused the second time: %v", err)
		}
		_ = cfg
	})
}
