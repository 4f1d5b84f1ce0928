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

// TestReportPairsEachGroupWithItsBaseline feeds the shapes the repository's
// benchmarks print: two groups in one package, each with its own baseline,
// a custom metric column before B/op, and runs of one benchmark apart.
func TestReportPairsEachGroupWithItsBaseline(t *testing.T) {
	in := `pkg: github.com/jetmon/jetmon/pkg/events/jsbus
BenchmarkSubscribe/baseline_raw_durable_consume_ack_each-2   50000   8000 ns/op   3300 B/op   37 allocs/op
BenchmarkSubscribe/jetmon_durable-2                          50000   8000 ns/op   4100 B/op   42 allocs/op
BenchmarkReplay/baseline_raw_ordered_consume-2               50000   4000 ns/op   2600 B/op   28 allocs/op
BenchmarkReplay/jetmon_replay-2                              50000   5000 ns/op   3900 B/op   37 allocs/op
BenchmarkSubscribe/baseline_raw_durable_consume_ack_each-2   50000  10000 ns/op   3300 B/op   37 allocs/op
BenchmarkSubscribe/jetmon_durable-2                          50000  12000 ns/op   4100 B/op   42 allocs/op
BenchmarkSubscribe/baseline_raw_durable_consume_ack_each-2   50000  12000 ns/op   3300 B/op   37 allocs/op
BenchmarkSubscribe/jetmon_durable-2                          50000   9000 ns/op   4100 B/op   42 allocs/op
pkg: github.com/jetmon/jetmon/pkg/coordinator
BenchmarkEventDrivenSustained/baseline_channel_handoff-2   10000000   100.0 ns/op   10000000 events/s   0 B/op   0 allocs/op
BenchmarkEventDrivenSustained/event_driven_no_op_bus-2      4000000   400.0 ns/op    2500000 events/s 315 B/op   1 allocs/op
`
	var out bytes.Buffer
	if err := report(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		// medians: baseline 10000, jetmon 9000
		"jsbus.BenchmarkSubscribe (baseline baseline_raw_durable_consume_ack_each: 10000.0 ns/op, median of 3)",
		"jetmon_durable                   9000.0 ns/op   0.90x the baseline's time  (1.11x its speed)  allocs/op 42",
		"jsbus.BenchmarkReplay (baseline baseline_raw_ordered_consume: 4000.0 ns/op, median of 1)",
		"jetmon_replay                    5000.0 ns/op   1.25x the baseline's time  (0.80x its speed)",
		"coordinator.BenchmarkEventDrivenSustained (baseline baseline_channel_handoff: 100.0 ns/op, median of 1)",
		"event_driven_no_op_bus            400.0 ns/op   4.00x the baseline's time  (0.25x its speed)  allocs/op 1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "jetmon_replay") != 1 || strings.Count(got, "jetmon_durable") != 1 {
		t.Errorf("a benchmark was paired with another group's baseline:\n%s", got)
	}
}
