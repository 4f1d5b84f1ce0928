package windowing

import "sync/atomic"

// SeriesLimit is a budget of series that several Aggregators share (the
// partitions one instance runs), so that their series together stay within
// it. It is safe for concurrent use.
type SeriesLimit struct {
	max  int64
	used atomic.Int64
}

// NewSeriesLimit returns a budget of n series (n <= 0: DefaultMaxSeries).
func NewSeriesLimit(n int) *SeriesLimit {
	if n <= 0 {
		n = DefaultMaxSeries
	}
	return &SeriesLimit{max: int64(n)}
}

// Used returns the series taken from the budget.
func (l *SeriesLimit) Used() int { return int(l.used.Load()) }

// Max returns the budget's size.
func (l *SeriesLimit) Max() int { return int(l.max) }

func (l *SeriesLimit) take() bool {
	if l.used.Add(1) > l.max {
		l.used.Add(-1)
		return false
	}
	return true
}

func (l *SeriesLimit) release(n int) { l.used.Add(-int64(n)) }
