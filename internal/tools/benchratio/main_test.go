package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := `goos: linux
pkg: github.com/jetmon/jetmon/pkg/events
BenchmarkEncode/baseline_encoding_json-2   760815   1600 ns/op   432 B/op   2 allocs/op
BenchmarkEncode/jetmon-2                  3323968    400 ns/op     0 B/op   0 allocs/op
BenchmarkEncode/jetmon-2                  3323968    900 ns/op     0 B/op   0 allocs/op
BenchmarkEncode/jetmon-2                  3323968    100 ns/op     0 B/op   0 allocs/op
BenchmarkMatch-2                         13047184   82.49 ns/op    0 B/op   0 allocs/op
`
	var out bytes.Buffer
	if err := report(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"events.BenchmarkEncode (baseline baseline_encoding_json: 1600.0 ns/op, median of 1)", "jetmon", "0.25x the baseline's time", "4.00x its speed"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Match") {
		t.Errorf("a benchmark without a baseline was reported:\n%s", got)
	}
}
