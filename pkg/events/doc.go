// Package events is jetmon's event model and bus contract.
//
// It holds the typed events of the taxonomy ([PerformanceEvent],
// [HealthEvent], [ControlEvent], [ValidationEvent], [SystemEvent]) with their
// type constants, ids and W3C trace context; the wire codec (one flat JSON
// object per event, a JSON array per batch; see docs/wire-format.md); the bus
// interfaces ([Publisher], [Subscriber], [Bus], [Handler], [Middleware], and
// [StoringPublisher] for a door that may answer "stored" only once the
// transport has the events) with
// NATS-style pattern matching ([Match]); and two buses: [MemoryBus], a
// faithful in-process bus for tests and single-process use, and [NoopBus] for
// the Disabled mode. Sub-packages implement the same [Bus] on JetStream and
// Redis; package eventstest is the conformance suite all of them pass.
//
// Validation bounds every number, string and label set (docs/wire-format.md,
// "Limits"); [PipelineOnly] names the types a client-facing door refuses
// without a grant.
//
// Guarantees every bus gives: Publish validates before sending and never
// keeps a reference to the event; a handler's error or panic is contained and
// counted, never fatal to the bus; options a bus cannot honour are rejected
// with [ErrUnsupported], never ignored.
package events
