package windowing

import (
	"fmt"
	"time"
)

// Bounds on the values an Aggregator takes. They match the bounds the door
// (event validation) enforces, but the aggregator checks them itself: events
// can reach its stream without passing the door. Within them no sum of a
// window can overflow: 2^64 events of 1e15 sum to about 1.8e34.
const (
	// MaxDurationMS is the largest duration_ms aggregated (about 116 days).
	MaxDurationMS = 1e10
	// MaxAbsValue bounds the absolute value of an aggregated metric.
	MaxAbsValue = 1e15
)

// Defaults of [Options].
const (
	DefaultWindow             = 10 * time.Second
	DefaultLateness           = 5 * time.Second
	DefaultRelativeAccuracy   = 0.01
	DefaultMaxSeriesPerSource = 1000
	DefaultMaxSeries          = 10_000
	DefaultMaxFutureSkew      = 5 * time.Minute
	DefaultSeriesTTL          = 5 * time.Minute
	DefaultDedupWindow        = 2 * time.Minute
	DefaultMaxDedupIDs        = 200_000
)

// Options configures an Aggregator. Zero values mean the defaults.
type Options struct {
	// Window is the tumbling window's length (default 10 s).
	Window time.Duration
	// Lateness is how long after its end a window still takes events
	// (default 5 s; negative: none).
	Lateness time.Duration
	// RelativeAccuracy of the quantiles (default 0.01).
	RelativeAccuracy float64
	// MaxSeriesPerSource bounds the series of one source (default 1000);
	// further series of that source are aggregated as OverflowName, still
	// under the source.
	MaxSeriesPerSource int
	// MaxSeries bounds the series of the aggregator (default 10,000), the
	// overflow series of sources included; further series go to the global
	// overflow series (source OverflowSource, name OverflowName). Limit,
	// when set, replaces it with a budget shared by several aggregators.
	MaxSeries int
	// Limit is a series budget shared with other aggregators (the
	// partitions of one instance); nil: an own budget of MaxSeries.
	Limit *SeriesLimit
	// OverflowSource is the source of the global overflow series (default
	// OverflowName). Aggregators whose windows meet downstream (partitions)
	// need distinct ones, or their global overflow windows share ids.
	OverflowSource string
	// MaxFutureSkew is how far ahead of the clock (Now) an event's timestamp
	// may lie (default 5 min). A later event is rejected: it would move its
	// source's event time past the windows still to come.
	MaxFutureSkew time.Duration
	// SeriesTTL: a series with no open window and no event for this long
	// (by Now) is forgotten (default 5 min), and so is a source whose
	// series are all gone, including which of its windows were emitted; an
	// event for such a window that arrives later starts it afresh (with
	// the id its input gives: see [events.WindowID]). It must be at least
	// Window + Lateness.
	SeriesTTL time.Duration
	// DedupWindow is how long (by Now) an event id is remembered, so that
	// the same event (same source and id) sent again is counted once
	// (default 2 min, the streams' duplicate window; negative: off).
	DedupWindow time.Duration
	// MaxDedupIDs bounds the ids remembered (default 200,000, about 40 bytes
	// each); beyond it the oldest are forgotten early, and counted.
	MaxDedupIDs int
	// Now is the clock for MaxFutureSkew, SeriesTTL and DedupWindow
	// (default time.Now).
	Now func() time.Time
	// AmendLate: an event for a window already emitted goes to an
	// amendment window of its series and window start (outcome Amended),
	// emitted at the next Closed, AdvanceIdle or Flush with Amendment set,
	// instead of being only counted (Late). Readers that sum or merge the
	// windows of one series and start then count every event once.
	AmendLate bool
	// OnEvict, when set, is called with each series the aggregator forgets
	// (idle, or at Close), on the goroutine that calls the aggregator.
	OnEvict func(Series)
}

// DefaultOptions returns the options with every default filled in.
func DefaultOptions() Options { return Options{}.withDefaults() }

// Validate reports the first option that is out of range, naming it. Zero
// values are fine (they mean the defaults).
func (o Options) Validate() error {
	switch {
	case o.Window < 0:
		return fmt.Errorf("aggregate: Window %s: must not be negative", o.Window)
	case o.RelativeAccuracy < 0 || o.RelativeAccuracy >= 1:
		return fmt.Errorf("aggregate: RelativeAccuracy %g: must be in [0, 1)", o.RelativeAccuracy)
	case o.MaxSeriesPerSource < 0:
		return fmt.Errorf("aggregate: MaxSeriesPerSource %d: must not be negative", o.MaxSeriesPerSource)
	case o.MaxSeries < 0:
		return fmt.Errorf("aggregate: MaxSeries %d: must not be negative", o.MaxSeries)
	case o.MaxFutureSkew < 0:
		return fmt.Errorf("aggregate: MaxFutureSkew %s: must not be negative", o.MaxFutureSkew)
	case o.SeriesTTL < 0:
		return fmt.Errorf("aggregate: SeriesTTL %s: must not be negative", o.SeriesTTL)
	case o.MaxDedupIDs < 0:
		return fmt.Errorf("aggregate: MaxDedupIDs %d: must not be negative", o.MaxDedupIDs)
	}
	d := o.withDefaults()
	if d.SeriesTTL < d.Window+d.Lateness {
		return fmt.Errorf("aggregate: SeriesTTL %s: must be at least Window + Lateness (%s)", d.SeriesTTL, d.Window+d.Lateness)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Lateness < 0 {
		o.Lateness = 0
	} else if o.Lateness == 0 {
		o.Lateness = DefaultLateness
	}
	if o.RelativeAccuracy <= 0 {
		o.RelativeAccuracy = DefaultRelativeAccuracy
	}
	if o.MaxSeriesPerSource <= 0 {
		o.MaxSeriesPerSource = DefaultMaxSeriesPerSource
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.OverflowSource == "" {
		o.OverflowSource = OverflowName
	}
	if o.MaxFutureSkew <= 0 {
		o.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if o.SeriesTTL <= 0 {
		o.SeriesTTL = max(DefaultSeriesTTL, o.Window+o.Lateness)
	}
	if o.DedupWindow == 0 {
		o.DedupWindow = DefaultDedupWindow
	}
	if o.MaxDedupIDs <= 0 {
		o.MaxDedupIDs = DefaultMaxDedupIDs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
