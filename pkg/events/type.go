package events

import (
	"maps"
	"slices"
	"strings"
)

// Type is an event type name such as "performance.phase.start". It is also the
// first part of every subject the event travels on, token for token.
type Type string

// Family is the first token of an event type. Each family has its own Go type
// and its own stream.
type Family string

// The event families.
const (
	FamilyPerformance Family = "performance"
	FamilyHealth      Family = "health"
	FamilyMonitoring  Family = "monitoring"
	FamilyValidation  Family = "validation"
	FamilySystem      Family = "system"
)

// Performance event types, carried by [PerformanceEvent].
const (
	PhaseStart        Type = "performance.phase.start"
	PhaseEnd          Type = "performance.phase.end"
	OperationComplete Type = "performance.operation.complete"
	OperationFailed   Type = "performance.operation.failed"
	MetricRecorded    Type = "performance.metric.recorded"
	MetricAggregated  Type = "performance.metric.aggregated"
	ResourceAllocated Type = "performance.resource.allocated"
	ResourceReleased  Type = "performance.resource.released"
)

// Health event types, carried by [HealthEvent].
const (
	ComponentHealthy   Type = "health.component.healthy"
	ComponentDegraded  Type = "health.component.degraded"
	ComponentFailed    Type = "health.component.failed"
	CheckCompleted     Type = "health.check.completed"
	SystemCheck        Type = "health.system.check"
	SystemStatus       Type = "health.system.status"
	ThresholdExceeded  Type = "health.threshold.exceeded"
	ThresholdRecovered Type = "health.threshold.recovered"
)

// Monitoring control event types, carried by [ControlEvent].
const (
	ConfigChanged      Type = "monitoring.config.changed"
	ModeSwitched       Type = "monitoring.mode.switched"
	MonitoringEnabled  Type = "monitoring.enabled"
	MonitoringDisabled Type = "monitoring.disabled"
	MonitoringSampled  Type = "monitoring.sampled"
)

// Validation event types, carried by [ValidationEvent].
const (
	ValidationStarted   Type = "validation.started"
	ValidationCompleted Type = "validation.completed"
	ValidationFailed    Type = "validation.failed"
)

// System event types, carried by [SystemEvent].
const (
	SystemError Type = "system.error"
)

// knownTypes is the closed taxonomy. Decoding and validation reject any other type.
var knownTypes = map[Type]struct{}{
	PhaseStart: {}, PhaseEnd: {}, OperationComplete: {}, OperationFailed: {},
	MetricRecorded: {}, MetricAggregated: {}, ResourceAllocated: {}, ResourceReleased: {},
	ComponentHealthy: {}, ComponentDegraded: {}, ComponentFailed: {}, CheckCompleted: {},
	SystemCheck: {}, SystemStatus: {}, ThresholdExceeded: {}, ThresholdRecovered: {},
	ConfigChanged: {}, ModeSwitched: {}, MonitoringEnabled: {}, MonitoringDisabled: {},
	MonitoringSampled: {},
	ValidationStarted: {}, ValidationCompleted: {}, ValidationFailed: {},
	SystemError: {},
}

// Types returns every known event type, sorted.
func Types() []Type {
	return slices.Sorted(maps.Keys(knownTypes))
}

// Known reports whether t is part of the jetmon taxonomy.
func (t Type) Known() bool {
	_, ok := knownTypes[t]
	return ok
}

// PipelineOnly reports whether only the pipeline itself may emit events of
// type t: aggregated windows (performance.metric.aggregated, written by the
// aggregator and trusted by history and alerting), the monitoring.* control
// events (they switch monitoring off, change its mode or sampling) and the
// health.threshold.* events (written by alerting). A door facing clients
// refuses them unless the client holds a grant.
func PipelineOnly(t Type) bool {
	switch t {
	case MetricAggregated, ThresholdExceeded, ThresholdRecovered:
		return true
	}
	return t.Family() == FamilyMonitoring
}

// Family returns the first token of t.
func (t Type) Family() Family {
	fam, _, _ := strings.Cut(string(t), ".")
	return Family(fam)
}

// String returns t as a string.
func (t Type) String() string { return string(t) }
