package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// windowsSince reads the stored aggregated windows from since on.
func windowsSince(ctx context.Context, bus *jsbus.Bus, since time.Time) ([]*events.AggregateEvent, error) {
	var out []*events.AggregateEvent
	_, err := bus.Replay(ctx, string(events.MetricAggregated), jsbus.ReplayOptions{From: since}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		if a, ok := ev.(*events.AggregateEvent); ok {
			out = append(out, a)
		}
		return nil
	}))
	return out, err
}

// applied is one rule whose learned threshold was written into a file.
type applied struct {
	rule      string
	threshold float64
	series    int
}

// applyLearned learns the thresholds of every threshold: auto rule of file
// from the stored history and writes them into the file: each such rule
// gets the most permissive threshold of its series (the largest for > and
// >=, the smallest for < and <=) and loses its auto block. The file is
// re-checked before it is replaced.
func applyLearned(ctx context.Context, bus *jsbus.Bus, file string) ([]applied, error) {
	cfg, err := alerting.Load(file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	rules := mapValue(root.Content[0], "rules")
	var out []applied
	for i, r := range cfg.Rules {
		if r.Auto == nil || rules == nil || i >= len(rules.Content) {
			continue
		}
		hist, err := windowsSince(ctx, bus, time.Now().Add(-r.Auto.History.D()))
		if err != nil {
			return nil, err
		}
		ls := alerting.Learn(r, hist, time.Now())
		if len(ls) == 0 {
			continue
		}
		th := ls[0].Threshold
		for _, l := range ls[1:] {
			if r.Op[0] == '<' {
				th = min(th, l.Threshold)
			} else {
				th = max(th, l.Threshold)
			}
		}
		m := rules.Content[i]
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == "threshold" {
				m.Content[j+1].SetString(strconv.FormatFloat(th, 'g', 6, 64))
				m.Content[j+1].Tag, m.Content[j+1].Style = "!!float", 0
			}
		}
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == "auto" {
				m.Content = append(m.Content[:j], m.Content[j+2:]...)
				break
			}
		}
		out = append(out, applied{rule: r.Name, threshold: th, series: len(ls)})
	}
	if len(out) == 0 {
		return nil, nil
	}
	res, err := yaml.Marshal(&root)
	if err != nil {
		return nil, err
	}
	if _, err := alerting.Parse(file, res); err != nil {
		return nil, fmt.Errorf("the rewritten file does not check: %w", err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, res, 0o644); err != nil {
		return nil, err
	}
	return out, os.Rename(tmp, file)
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
