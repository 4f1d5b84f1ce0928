package coordinator

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

// DirectCoordinator aggregates in the process, for immediate feedback:
// per operation (and per phase, named "phase:<name>") the count, error
// count, average, p50/p95/p99 (1% relative accuracy) and maximum duration;
// per metric the count, sum, min, max and last value; per resource the
// amount in use. It is safe for concurrent use.
type DirectCoordinator struct {
	mu        sync.RWMutex
	ops       map[string]*opStats
	metrics   map[string]*metricStats
	resources map[string]*resourceStats
}

type opStats struct {
	mu            sync.Mutex
	count, errors uint64
	sumMS, maxMS  float64
	sketch        *ddsketch.DDSketch
}

type metricStats struct {
	mu                  sync.Mutex
	count               uint64
	sum, min, max, last float64
	unit                string
}

type resourceStats struct {
	mu                         sync.Mutex
	allocated, released, inUse float64
}

var _ Coordinator = (*DirectCoordinator)(nil)

// NewDirect returns an empty DirectCoordinator.
func NewDirect() *DirectCoordinator {
	return &DirectCoordinator{ops: map[string]*opStats{}, metrics: map[string]*metricStats{}, resources: map[string]*resourceStats{}}
}

// sketchAccuracy is the relative accuracy of the quantiles.
const sketchAccuracy = 0.01

func (c *DirectCoordinator) op(name string) *opStats {
	c.mu.RLock()
	s := c.ops[name]
	c.mu.RUnlock()
	if s != nil {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s = c.ops[name]; s == nil {
		sk, _ := ddsketch.NewDefaultDDSketch(sketchAccuracy)
		s = &opStats{sketch: sk}
		c.ops[name] = s
	}
	return s
}

func (c *DirectCoordinator) record(name string, d time.Duration, failed bool) {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 0 {
		ms = 0
	}
	s := c.op(name)
	s.mu.Lock()
	s.count++
	if failed {
		s.errors++
	}
	s.sumMS += ms
	s.maxMS = max(s.maxMS, ms)
	_ = s.sketch.Add(ms)
	s.mu.Unlock()
}

// PhaseStart does nothing: a phase is aggregated when it ends.
func (c *DirectCoordinator) PhaseStart(context.Context, string, string) {}

// PhaseEnd aggregates the phase's duration under "phase:<phase>".
func (c *DirectCoordinator) PhaseEnd(_ context.Context, phase, _ string, d time.Duration, status string) {
	c.record("phase:"+phase, d, status == "failure" || status == "failed")
}

// OperationComplete aggregates a success.
func (c *DirectCoordinator) OperationComplete(_ context.Context, op string, d time.Duration) {
	c.record(op, d, false)
}

// OperationFailed aggregates a failure.
func (c *DirectCoordinator) OperationFailed(_ context.Context, op string, d time.Duration, _ error) {
	c.record(op, d, true)
}

// RecordMetric aggregates a metric value.
func (c *DirectCoordinator) RecordMetric(_ context.Context, name string, value float64, unit string) {
	c.mu.RLock()
	m := c.metrics[name]
	c.mu.RUnlock()
	if m == nil {
		c.mu.Lock()
		if m = c.metrics[name]; m == nil {
			m = &metricStats{min: value, max: value, unit: unit}
			c.metrics[name] = m
		}
		c.mu.Unlock()
	}
	m.mu.Lock()
	m.count++
	m.sum += value
	m.min, m.max, m.last = min(m.min, value), max(m.max, value), value
	m.mu.Unlock()
}

func (c *DirectCoordinator) resource(name string) *resourceStats {
	c.mu.RLock()
	r := c.resources[name]
	c.mu.RUnlock()
	if r != nil {
		return r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r = c.resources[name]; r == nil {
		r = &resourceStats{}
		c.resources[name] = r
	}
	return r
}

// ResourceAllocated adds amount to the resource in use.
func (c *DirectCoordinator) ResourceAllocated(_ context.Context, resource string, amount float64) {
	r := c.resource(resource)
	r.mu.Lock()
	r.allocated += amount
	r.inUse += amount
	r.mu.Unlock()
}

// ResourceReleased subtracts amount from the resource in use.
func (c *DirectCoordinator) ResourceReleased(_ context.Context, resource string, amount float64) {
	r := c.resource(resource)
	r.mu.Lock()
	r.released += amount
	r.inUse -= amount
	r.mu.Unlock()
}

// Time times op; the returned function records it as complete.
func (c *DirectCoordinator) Time(_ context.Context, op string) func() {
	start := time.Now()
	return func() { c.record(op, time.Since(start), false) }
}

// Enabled reports true.
func (c *DirectCoordinator) Enabled() bool { return true }

// OperationStats is one operation's (or phase's) aggregate; durations in ms.
type OperationStats struct {
	Name      string  `json:"name"`
	Count     uint64  `json:"count"`
	Errors    uint64  `json:"error_count"`
	ErrorRate float64 `json:"error_rate"`
	AvgMS     float64 `json:"avg_duration"`
	P50MS     float64 `json:"p50_duration"`
	P95MS     float64 `json:"p95_duration"`
	P99MS     float64 `json:"p99_duration"`
	MaxMS     float64 `json:"max_duration"`
}

// MetricStats is one metric's aggregate.
type MetricStats struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit,omitempty"`
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Last  float64 `json:"last"`
}

// ResourceStats is one resource's balance.
type ResourceStats struct {
	Name      string  `json:"name"`
	Allocated float64 `json:"allocated"`
	Released  float64 `json:"released"`
	InUse     float64 `json:"in_use"`
}

// Snapshot is a consistent-per-entry copy of everything aggregated so far,
// sorted by name.
type Snapshot struct {
	Operations []OperationStats `json:"operations"`
	Metrics    []MetricStats    `json:"metrics"`
	Resources  []ResourceStats  `json:"resources"`
}

// Operation returns the stats of one operation, if recorded.
func (s Snapshot) Operation(name string) (OperationStats, bool) {
	for _, o := range s.Operations {
		if o.Name == name {
			return o, true
		}
	}
	return OperationStats{}, false
}

// Snapshot returns the current aggregates.
func (c *DirectCoordinator) Snapshot() Snapshot {
	var snap Snapshot
	c.mu.RLock()
	defer c.mu.RUnlock()
	for name, s := range c.ops {
		s.mu.Lock()
		o := OperationStats{Name: name, Count: s.count, Errors: s.errors, MaxMS: s.maxMS}
		if s.count > 0 {
			o.AvgMS = s.sumMS / float64(s.count)
			o.ErrorRate = float64(s.errors) / float64(s.count)
			qs, err := s.sketch.GetValuesAtQuantiles([]float64{0.5, 0.95, 0.99})
			if err == nil {
				o.P50MS, o.P95MS, o.P99MS = qs[0], qs[1], qs[2]
			}
		}
		s.mu.Unlock()
		snap.Operations = append(snap.Operations, o)
	}
	for name, m := range c.metrics {
		m.mu.Lock()
		snap.Metrics = append(snap.Metrics, MetricStats{Name: name, Unit: m.unit, Count: m.count, Sum: m.sum, Min: m.min, Max: m.max, Last: m.last})
		m.mu.Unlock()
	}
	for name, r := range c.resources {
		r.mu.Lock()
		snap.Resources = append(snap.Resources, ResourceStats{Name: name, Allocated: r.allocated, Released: r.released, InUse: r.inUse})
		r.mu.Unlock()
	}
	sort.Slice(snap.Operations, func(i, j int) bool { return snap.Operations[i].Name < snap.Operations[j].Name })
	sort.Slice(snap.Metrics, func(i, j int) bool { return snap.Metrics[i].Name < snap.Metrics[j].Name })
	sort.Slice(snap.Resources, func(i, j int) bool { return snap.Resources[i].Name < snap.Resources[j].Name })
	return snap
}

// Reset forgets every aggregate.
func (c *DirectCoordinator) Reset() {
	c.mu.Lock()
	c.ops, c.metrics, c.resources = map[string]*opStats{}, map[string]*metricStats{}, map[string]*resourceStats{}
	c.mu.Unlock()
}
