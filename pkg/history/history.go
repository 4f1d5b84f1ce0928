// Package history answers questions about the past from what the JetStream
// streams store, not from any process's memory: the windows of a series or
// of a filter over a time range, re-bucketed to a step by merging the stored
// DDSketches; the health history of components; the alert history.
//
// Windows are read from the WINDOWS stream, where the aggregator stores each
// window a second time under windows.<source>.<series digest> (see
// [streams.WindowSubject]): the history of one series is a server-side
// subject filter, so a day of one series reads that series' windows and no
// others'.
//
// Every query is bounded before it starts: its range ([Options].MaxRange),
// its buckets ([Options].MaxPoints) and the stored messages it may read
// ([Options].MaxScan, else [ErrTooMuch]). A [Reader] holds no state between
// queries and is safe for concurrent use.
package history

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Options bound the work of one query.
type Options struct {
	// MaxRange is the longest time range a query may cover (default 31 days).
	MaxRange time.Duration
	// MaxPoints is the most buckets ((to-from)/step) a query may ask for
	// (default 2,000).
	MaxPoints int
	// MaxScan is the most stored messages one query may read (default
	// 500,000); a query that would read more fails with [ErrTooMuch].
	MaxScan int
	// MaxSeries is the most series one answer carries (default 1,000); the
	// answer says when it left some out.
	MaxSeries int
	// Grace is how long after its window ends a window may still be stored
	// (lateness, publishing retries, takeovers); a query reads the stream
	// until to+Grace (default 2 min).
	Grace time.Duration
}

// DefaultOptions returns the defaults documented on [Options].
func DefaultOptions() Options {
	return Options{MaxRange: 31 * 24 * time.Hour, MaxPoints: 2000, MaxScan: 500_000, MaxSeries: 1000, Grace: 2 * time.Minute}
}

// Validate names the first field out of range.
func (o Options) Validate() error {
	switch {
	case o.MaxRange <= 0:
		return errors.New("history: MaxRange must be positive")
	case o.MaxPoints <= 0:
		return errors.New("history: MaxPoints must be positive")
	case o.MaxScan <= 0:
		return errors.New("history: MaxScan must be positive")
	case o.MaxSeries <= 0:
		return errors.New("history: MaxSeries must be positive")
	case o.Grace < 0:
		return errors.New("history: Grace must not be negative")
	}
	return nil
}

// Reader answers history queries from a JetStream connection. It is safe
// for concurrent use and keeps nothing between queries.
type Reader struct {
	js jetstream.JetStream
	o  Options
}

// New returns a Reader over js; o must pass [Options.Validate].
func New(js jetstream.JetStream, o Options) (*Reader, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Reader{js: js, o: o}, nil
}

// Options returns the reader's bounds.
func (r *Reader) Options() Options { return r.o }

// ErrBadQuery is wrapped by every error about a query's own values (a
// range, step or name out of bounds): the caller's mistake, a 400.
var ErrBadQuery = errors.New("history: bad query")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadQuery}, args...)...)
}

// checkRange validates a [from, to) range against the bounds.
func (r *Reader) checkRange(from, to time.Time) error {
	switch {
	case from.IsZero() || to.IsZero():
		return bad("from and to are required")
	case !to.After(from):
		return bad("to (%s) must be after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	case to.Sub(from) > r.o.MaxRange:
		return bad("the range %s is longer than the longest allowed, %s", to.Sub(from), r.o.MaxRange)
	case from.Year() < 1970 || to.Year() > 9999:
		return bad("from and to must be between 1970 and 9999")
	}
	return nil
}
