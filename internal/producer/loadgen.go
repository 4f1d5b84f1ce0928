// Package producer is the producer daemon's runtime: the HTTP ingest and
// health agent of `producer serve`, and the load generator of
// `producer loadgen`.
package producer

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jetmon/jetmon/internal/cli"
	"github.com/jetmon/jetmon/pkg/events"
)

// LoadOptions configures a load run.
type LoadOptions struct {
	// Rate is requests per second (default 1000); each request emits one
	// operation event per service it crosses.
	Rate int
	// Duration bounds the run (default 10 s); Count, when positive, stops it
	// after that many requests instead.
	Duration time.Duration
	Count    int
	// Operations and Sources size the workload (defaults 5 and 3).
	Operations, Sources int
	// Depth is how many services a request crosses, as one trace with
	// parent/child spans (default 3).
	Depth int
	// ErrorRate is the share of failed operations (default 0.02).
	ErrorRate float64
	// MedianMS and Sigma shape the log-normal latency (defaults 20 ms and
	// 0.8); SlowOperation gets ten times the median (the demo's slow one).
	MedianMS, Sigma float64
	SlowOperation   string
	// Quiet turns the progress bar off.
	Quiet bool
}

func (o LoadOptions) withDefaults() LoadOptions {
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Operations <= 0 {
		o.Operations = 5
	}
	if o.Sources <= 0 {
		o.Sources = 3
	}
	if o.Depth <= 0 {
		o.Depth = 3
	}
	if o.ErrorRate == 0 {
		o.ErrorRate = 0.02
	}
	if o.MedianMS <= 0 {
		o.MedianMS = 20
	}
	if o.Sigma <= 0 {
		o.Sigma = 0.8
	}
	return o
}

// Validate reports the first bad option, by name.
func (o LoadOptions) Validate() error {
	switch {
	case o.Rate < 0 || o.Rate > 10_000_000:
		return fmt.Errorf("rate %d: must be between 1 and 10000000", o.Rate)
	case o.ErrorRate < 0 || o.ErrorRate > 1:
		return fmt.Errorf("error rate %v: must be between 0 and 1", o.ErrorRate)
	case o.Count < 0:
		return fmt.Errorf("count %d: must not be negative", o.Count)
	}
	return nil
}

// LoadReport is what a load run did.
type LoadReport struct {
	Requests, Sent, Failed int
	Elapsed                time.Duration
	P50, P99, Max          time.Duration // publish latency as the caller saw it
}

// Rate returns events sent per second.
func (r LoadReport) Rate() float64 { return float64(r.Sent) / max(r.Elapsed.Seconds(), 1e-9) }

func (r LoadReport) String() string {
	return fmt.Sprintf("sent %d events (%d requests, %d failed) in %s: %.0f events/s; publish latency p50 %s, p99 %s, max %s",
		r.Sent, r.Requests, r.Failed, r.Elapsed.Round(time.Millisecond), r.Rate(), r.P50, r.P99, r.Max)
}

// LoadGen publishes the workload on pub and draws a progress bar on progress
// (unless Quiet). It stops at the count, the duration or when ctx ends.
func LoadGen(ctx context.Context, pub events.Publisher, o LoadOptions, progress io.Writer) (LoadReport, error) {
	if err := o.Validate(); err != nil {
		return LoadReport{}, err
	}
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var rep LoadReport
	lat := make([]time.Duration, 0, 1<<16)
	start := time.Now()
	interval := time.Second / time.Duration(o.Rate)
	next := start
	bar := cli.NewProgress(progress, "loadgen", o.Quiet)
	for n := 0; o.Count == 0 || n < o.Count; n++ {
		if ctx.Err() != nil {
			break
		}
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			if ctx.Err() != nil {
				break
			}
		}
		next = next.Add(interval)
		trace := events.NewRootTrace()
		for d := range o.Depth {
			ev := request(n, d, o, trace)
			t0 := time.Now()
			err := pub.Publish(ctx, ev)
			if len(lat) < cap(lat) || n%16 == 0 {
				lat = append(lat, time.Since(t0))
			}
			if err != nil {
				rep.Failed++
			} else {
				rep.Sent++
			}
			trace = trace.Child()
		}
		rep.Requests++
		if bar.Due() {
			bar.Draw(loadProgress(rep, time.Since(start), o))
		}
	}
	rep.Elapsed = time.Since(start)
	bar.Done(loadProgress(rep, rep.Elapsed, o))
	if len(lat) > 0 {
		slices.Sort(lat)
		rep.P50, rep.P99, rep.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return rep, nil
}

// request returns the event of hop d of request n: an operation in one
// service, as a span of the request's trace.
func request(n, d int, o LoadOptions, tc events.TraceContext) *events.PerformanceEvent {
	op := fmt.Sprintf("op-%d", (n+d)%o.Operations)
	if d == 0 && o.SlowOperation != "" && n%o.Operations == 0 {
		op = o.SlowOperation
	}
	median := o.MedianMS
	if op == o.SlowOperation {
		median *= 10
	}
	typ, status := events.OperationComplete, events.StatusSuccess
	if rand.Float64() < o.ErrorRate {
		typ, status = events.OperationFailed, events.StatusFailure
	}
	ev := events.NewPerformanceEvent(typ, fmt.Sprintf("svc-%d", (n+d)%o.Sources))
	ev.SetTrace(tc)
	ev.Operation, ev.Status = op, status
	ev.DurationMS = math.Round(median*math.Exp(o.Sigma*rand.NormFloat64())*1000) / 1000
	if typ == events.OperationFailed {
		ev.Error = "simulated failure"
	}
	return ev
}

// loadProgress is the bar's fraction (of the count, or of the duration) and
// detail.
func loadProgress(rep LoadReport, elapsed time.Duration, o LoadOptions) (float64, string) {
	frac := elapsed.Seconds() / o.Duration.Seconds()
	if o.Count > 0 {
		frac = float64(rep.Requests) / float64(o.Count)
	}
	return frac, fmt.Sprintf("%d events  %.0f/s  %d failed", rep.Sent, float64(rep.Sent)/max(elapsed.Seconds(), 1e-9), rep.Failed)
}
