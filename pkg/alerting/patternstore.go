package alerting

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PatternStore keeps the open keys of pattern rules across restarts. A
// [Store] may implement it ([MemoryStore] and [KVStore] do); each
// instance keeps its own state, since every instance evaluates all input.
type PatternStore interface {
	SavePatterns(ctx context.Context, instance string, data []byte) error
	// LoadPatterns returns nil data when nothing was saved.
	LoadPatterns(ctx context.Context, instance string) ([]byte, error)
}

// patternSnapshot is the saved state of pattern rules, by rule name.
type patternSnapshot struct {
	Version int                         `json:"version"`
	Rules   map[string]patternRuleState `json:"rules"`
}

type patternRuleState struct {
	Kind   string       `json:"kind"`
	Inputs []string     `json:"inputs"`
	Keys   []savedKey   `json:"keys,omitempty"`
	Ratios []savedRatio `json:"ratios,omitempty"`
	Evict  uint64       `json:"evicted,omitempty"`
}

type savedKey struct {
	Key     string      `json:"k"`
	Source  string      `json:"s,omitempty"`
	Expires time.Time   `json:"e"`
	Firsts  []time.Time `json:"f,omitempty"`
	Next    int         `json:"n,omitempty"`
	ArmedAt time.Time   `json:"a,omitzero"`
	Closed  bool        `json:"c,omitempty"`
}

type savedCounter struct {
	Start  []time.Time `json:"s"`
	Counts []float64   `json:"c"`
}

type savedRatio struct {
	Key    string       `json:"k"`
	Source string       `json:"s,omitempty"`
	Last   time.Time    `json:"l"`
	Num    savedCounter `json:"n"`
	Den    savedCounter `json:"d"`
}

// SnapshotPatterns encodes the open keys and ratio counts of the pattern
// rules, for [Engine.RestorePatterns] after a restart.
func (e *Engine) SnapshotPatterns() ([]byte, error) {
	snap := patternSnapshot{Version: 1, Rules: map[string]patternRuleState{}}
	for name, ps := range e.patterns {
		st := patternRuleState{Kind: ps.rule.Kind, Inputs: ps.rule.Inputs(), Evict: ps.evicted}
		for _, k := range ps.byTime {
			st.Keys = append(st.Keys, savedKey{Key: k.key, Source: k.source, Expires: k.expires, Firsts: k.firsts, Next: k.next, ArmedAt: k.armedAt, Closed: k.closed})
		}
		for key, s := range ps.ratios {
			st.Ratios = append(st.Ratios, savedRatio{
				Key: key, Source: s.source, Last: s.last,
				Num: savedCounter{s.num.start, s.num.counts}, Den: savedCounter{s.den.start, s.den.counts},
			})
		}
		snap.Rules[name] = st
		ps.dirty = false
	}
	return json.Marshal(snap)
}

// PatternsChanged reports whether pattern state changed since the last
// [Engine.SnapshotPatterns].
func (e *Engine) PatternsChanged() bool {
	for _, ps := range e.patterns {
		if ps.dirty {
			return true
		}
	}
	return false
}

// RestorePatterns loads what [Engine.SnapshotPatterns] saved. State of
// rules that are gone, or whose kind or inputs changed, is dropped; keys
// past a rule's max_keys are evicted (oldest first).
func (e *Engine) RestorePatterns(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	var snap patternSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("pattern state: %w", err)
	}
	for name, st := range snap.Rules {
		ps := e.patterns[name]
		if ps == nil || ps.rule.Kind != st.Kind || !slices.Equal(ps.rule.Inputs(), st.Inputs) {
			continue
		}
		ps.evicted = st.Evict
		for _, k := range st.Keys {
			if ps.open[k.Key] != nil {
				continue
			}
			ok := &openKey{key: k.Key, source: k.Source, expires: k.Expires, next: k.Next, armedAt: k.ArmedAt, closed: k.Closed}
			if ps.rule.Kind == KindSequence {
				ok.firsts = make([]time.Time, ps.rule.First.Count) // count may have changed
				copy(ok.firsts, k.Firsts)
				ok.next %= len(ok.firsts)
			}
			ps.add(ok)
		}
		heap.Init(&ps.byTime)
		w := ps.rule.Window.D()
		for _, r := range st.Ratios {
			num, den := newRateCounter(w), newRateCounter(w)
			if len(r.Num.Start) == rateBuckets && len(r.Num.Counts) == rateBuckets && len(r.Den.Start) == rateBuckets && len(r.Den.Counts) == rateBuckets {
				copy(num.start, r.Num.Start)
				copy(num.counts, r.Num.Counts)
				copy(den.start, r.Den.Start)
				copy(den.counts, r.Den.Counts)
			}
			if ps.ratios[r.Key] == nil {
				ps.addRatio(&ratioSeries{key: r.Key, source: r.Source, num: num, den: den, last: r.Last})
			}
		}
	}
	return nil
}

// SavePatterns implements [PatternStore].
func (m *MemoryStore) SavePatterns(_ context.Context, instance string, data []byte) error {
	m.patternsMu.Lock()
	defer m.patternsMu.Unlock()
	if m.patterns == nil {
		m.patterns = map[string][]byte{}
	}
	m.patterns[instance] = bytes.Clone(data)
	return nil
}

// LoadPatterns implements [PatternStore].
func (m *MemoryStore) LoadPatterns(_ context.Context, instance string) ([]byte, error) {
	m.patternsMu.Lock()
	defer m.patternsMu.Unlock()
	return bytes.Clone(m.patterns[instance]), nil
}

// memPatterns is the pattern state a MemoryStore keeps.
type memPatterns struct {
	patternsMu sync.Mutex
	patterns   map[string][]byte
}

// BucketPatterns is the JetStream object store bucket holding each
// instance's pattern state (an object per instance: with 100 000 open keys
// it is megabytes, past what a KV value may hold).
const BucketPatterns = "jetmon_patterns"

// SavePatterns implements [PatternStore].
func (s *KVStore) SavePatterns(ctx context.Context, instance string, data []byte) error {
	if s.patterns == nil {
		return errors.New("pattern store unavailable")
	}
	_, err := s.patterns.PutBytes(ctx, instance, data)
	return err
}

// LoadPatterns implements [PatternStore].
func (s *KVStore) LoadPatterns(ctx context.Context, instance string) ([]byte, error) {
	if s.patterns == nil {
		return nil, nil
	}
	r, err := s.patterns.Get(ctx, instance)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	return io.ReadAll(r)
}
