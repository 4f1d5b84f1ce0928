package breaker

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
)

// Options configures a [Publisher]. Zero values mean the defaults.
type Options struct {
	// Name labels the metrics and the monitoring events (default "jetmon").
	Name string
	// Source is the source of the monitoring events the breaker emits
	// (default "jetmon-breaker").
	Source string

	// ConsecutiveFailures opens the circuit after this many failures in a
	// row (default 5).
	ConsecutiveFailures uint32
	// FailureRatio, when positive, also opens the circuit when this share of
	// at least MinRequests requests in Interval failed.
	FailureRatio float64
	MinRequests  uint32        // default 20
	Interval     time.Duration // window of the closed-state counts (default 60 s)
	// OpenTimeout is how long the circuit stays open before a probe (default 5 s).
	OpenTimeout time.Duration
	// HalfOpenProbes successful probes close the circuit (default 1).
	HalfOpenProbes uint32

	// PublishBudget bounds the time one Publish spends retrying before it
	// spools the event (default 20 ms). InitialBackoff is the first retry
	// delay (default 1 ms); delays double with ±50% jitter.
	PublishBudget  time.Duration
	InitialBackoff time.Duration

	// SpoolMaxEvents bounds the memory spool (default 10,000 events).
	SpoolMaxEvents int
	// SpoolMaxBytes bounds the spool's bytes (default 16 MiB in memory,
	// 256 MiB on disk).
	SpoolMaxBytes int64
	// SpoolDir, when set, keeps the spool on disk in this directory, where
	// it survives a restart: a new Publisher on the same directory sends
	// what an earlier process left. One process per directory.
	SpoolDir string

	// Logger receives monitoring failures — kept apart from the
	// application's logs — at most one line per kind per LogInterval
	// (default 10 s), with counts. nil discards them.
	Logger      *zerolog.Logger
	LogInterval time.Duration
	// Registerer, when set, registers the metrics (see [Publisher.Collectors]).
	Registerer prometheus.Registerer
	// LatencySampleEvery measures one Publish in this many (default 16):
	// reading the clock twice per call would cost more than the breaker.
	LatencySampleEvery int

	// MaxEventBytes is the largest encoded event the breaker spools. An
	// event it would have to spool that is larger can never cross NATS
	// (whose default max_payload is 1 MiB, headers included) and is
	// discarded as too_large instead. 0 means [DefaultMaxEventBytes]; a
	// negative value means the disk spool's own record limit (64 MiB).
	MaxEventBytes int
	// MaxAsyncFailures bounds how often one event reported through
	// [Publisher.Failed] is spooled for a re-send: its next asynchronous
	// failure discards it as retries_exhausted (default 10). The count is
	// kept per event id for the most recent SpoolMaxEvents failing ids, in
	// memory only.
	MaxAsyncFailures int
}

// DefaultMaxEventBytes is the default [Options.MaxEventBytes]: NATS' default
// max_payload of 1 MiB less 4 KiB for the message headers.
const DefaultMaxEventBytes = events.DefaultMaxPayload - 4<<10

func (o Options) withDefaults() Options {
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Name == "" {
		o.Name = "jetmon"
	}
	if o.Source == "" {
		o.Source = "jetmon-breaker"
	}
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = 5
	}
	if o.MinRequests == 0 {
		o.MinRequests = 20
	}
	if o.HalfOpenProbes == 0 {
		o.HalfOpenProbes = 1
	}
	set(&o.Interval, time.Minute)
	set(&o.OpenTimeout, 5*time.Second)
	set(&o.PublishBudget, 20*time.Millisecond)
	set(&o.InitialBackoff, time.Millisecond)
	set(&o.LogInterval, 10*time.Second)
	if o.SpoolMaxEvents <= 0 {
		o.SpoolMaxEvents = 10_000
	}
	if o.SpoolMaxBytes <= 0 {
		o.SpoolMaxBytes = 16 << 20
		if o.SpoolDir != "" {
			o.SpoolMaxBytes = 256 << 20
		}
	}
	if o.LatencySampleEvery <= 0 {
		o.LatencySampleEvery = 16
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.MaxEventBytes < 0 || o.MaxEventBytes > maxRecord {
		o.MaxEventBytes = maxRecord
	}
	if o.MaxAsyncFailures <= 0 {
		o.MaxAsyncFailures = 10
	}
	return o
}

// Validate reports the first bad option, by name. Zero means the default;
// a negative duration or count is refused rather than silently replaced by
// the default (MaxEventBytes aside, where negative has a meaning).
func (o Options) Validate() error {
	if o.FailureRatio < 0 || o.FailureRatio > 1 {
		return fmt.Errorf("breaker options: FailureRatio %v: must be between 0 and 1", o.FailureRatio)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Interval", o.Interval},
		{"OpenTimeout", o.OpenTimeout},
		{"PublishBudget", o.PublishBudget},
		{"InitialBackoff", o.InitialBackoff},
		{"LogInterval", o.LogInterval},
	} {
		if d.v < 0 {
			return fmt.Errorf("breaker options: %s %v: must not be negative", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"SpoolMaxEvents", int64(o.SpoolMaxEvents)},
		{"SpoolMaxBytes", o.SpoolMaxBytes},
		{"LatencySampleEvery", int64(o.LatencySampleEvery)},
		{"MaxAsyncFailures", int64(o.MaxAsyncFailures)},
	} {
		if n.v < 0 {
			return fmt.Errorf("breaker options: %s %d: must not be negative", n.name, n.v)
		}
	}
	return nil
}
