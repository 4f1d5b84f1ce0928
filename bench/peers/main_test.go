package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every goroutine a row starts (consumers, the aggregator, the HTTP server,
// Watermill's subscribers, the server's waiter) has ended when run returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickRunProducesEveryRow runs the harness as `make bench-peers` does,
// in quick mode, against a nats-server process it builds and starts, and
// checks that every row was measured (each row checks its own
// preconditions: every message stored, received and decoded), and that the
// table, the Markdown and the chart name each of them. It asserts no speed:
// absolute figures on a shared machine prove nothing.
func TestQuickRunProducesEveryRow(t *testing.T) {
	if testing.Short() {
		if os.Getenv("CI") == "true" {
			t.Fatal("-short under CI=true: the harness test must run in CI")
		}
		t.Skip("builds and starts a nats-server process")
	}
	dir := t.TempDir()
	svg, md, js := filepath.Join(dir, "chart.svg"), filepath.Join(dir, "table.md"), filepath.Join(dir, "results.json")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"-quick", "-svg", svg, "-md", md, "-json", js}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	var res results
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, r := range rows(&env{}, &env{}) {
		want[r.group+"/"+r.name] = true
		if r.extra != "" {
			want[r.group+"/"+r.extra] = true
		}
	}
	got := map[string]bool{}
	for _, r := range res.Rows {
		if len(r.Rates) != 1 || r.Rates[0] <= 0 {
			t.Errorf("%s/%s: rates %v, want one positive rate", r.Group, r.Name, r.Rates)
		}
		got[r.Group+"/"+r.Name] = true
	}
	if len(got) != len(want) {
		t.Errorf("measured %d rows, want %d", len(got), len(want))
	}
	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	chart, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(chart, new(struct{ XMLName xml.Name })); err != nil {
		t.Errorf("chart is not well-formed XML: %v", err)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("row %s not measured", k)
		}
		name := k[strings.Index(k, "/")+1:]
		for what, text := range map[string]string{"table": stdout.String(), "markdown": string(mdText), "chart": string(chart)} {
			if !strings.Contains(text, name) {
				t.Errorf("%s lacks row %s", what, name)
			}
		}
	}
}

func TestParseRejectsBadFlags(t *testing.T) {
	for name, args := range map[string][]string{
		"zero events": {"-n", "0"},
		"zero runs":   {"-runs", "0"},
		"unknown":     {"-nope"},
		"bad group":   {"-only", "everything"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(args, &bytes.Buffer{}); err == nil {
				t.Errorf("parse(%q) accepted", args)
			}
		})
	}
}
