package windowing

import (
	"cmp"
	"errors"
	"math"
	"slices"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/jetmon/jetmon/pkg/events"
)

// ErrNotFinite is returned by [Merge] when the parts' sums, minima or
// maxima are not finite numbers, or their sum overflows: windows from the
// wire are not trusted.
var ErrNotFinite = errors.New("aggregate: merged values are not finite")

// DecodeSketch decodes an aggregate's sketch, for merging.
func DecodeSketch(b []byte) (*ddsketch.DDSketch, error) {
	return ddsketch.DecodeDDSketch(b, store.DefaultProvider, nil)
}

// Merge combines aggregates of one series and window (from several
// partitions or instances) into one, with quantiles from the merged sketch.
// It returns nil for an empty input, and [ErrNotFinite] for parts whose
// values are not finite or whose sums overflow.
func Merge(parts []*events.AggregateEvent) (*events.AggregateEvent, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	first := parts[0]
	out := events.NewAggregateEvent(first.AggregatedType, first.Source, first.Name(), first.WindowStart, first.WindowEnd)
	var merged *ddsketch.DDSketch
	var sum kahan
	for i, p := range parts {
		if !finite(p.Sum) || !finite(p.Min) || !finite(p.Max) {
			return nil, ErrNotFinite
		}
		sk, err := DecodeSketch(p.Sketch)
		if err != nil {
			return nil, err
		}
		if merged == nil {
			merged = sk
		} else if err := merged.MergeWith(sk); err != nil {
			return nil, err
		}
		out.Count += p.Count
		out.ErrorCount += p.ErrorCount
		out.LateCount += p.LateCount
		sum.add(p.Sum)
		if i == 0 || p.Min < out.Min {
			out.Min = p.Min
		}
		if i == 0 || p.Max > out.Max {
			out.Max = p.Max
		}
	}
	out.Sum = sum.value()
	if !finite(out.Sum) {
		return nil, ErrNotFinite
	}
	if out.Count > 0 {
		out.Avg = out.Sum / float64(out.Count)
	}
	if qs, err := merged.GetValuesAtQuantiles([]float64{0.5, 0.9, 0.95, 0.99}); err == nil {
		clamp := func(v float64) float64 { return min(max(v, out.Min), out.Max) }
		out.P50, out.P90, out.P95, out.P99 = clamp(qs[0]), clamp(qs[1]), clamp(qs[2]), clamp(qs[3])
	}
	merged.Encode(&out.Sketch, false)
	out.SlowestTraceIDs = mergeSlowest(parts)
	return out, nil
}

// mergeSlowest names the slowest traces of merged parts: each part's list,
// parts with the larger Max first, without repeats, at most SlowestTraces.
// The first is the trace of the merged maximum; the rest are approximate
// (parts keep their order but not their values).
func mergeSlowest(parts []*events.AggregateEvent) []events.TraceID {
	order := make([]*events.AggregateEvent, len(parts))
	copy(order, parts)
	slices.SortStableFunc(order, func(a, b *events.AggregateEvent) int { return cmp.Compare(b.Max, a.Max) })
	var out []events.TraceID
	for _, p := range order {
		for _, id := range p.SlowestTraceIDs {
			if len(out) < SlowestTraces && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// kahan is a compensated (Neumaier) sum: the rounding error of each addition
// is carried, so that a sum of many small values next to large ones stays
// exact to the last bits.
type kahan struct{ sum, c float64 }

func (k *kahan) add(v float64) {
	t := k.sum + v
	if math.Abs(k.sum) >= math.Abs(v) {
		k.c += (k.sum - t) + v
	} else {
		k.c += (v - t) + k.sum
	}
	k.sum = t
}

func (k *kahan) value() float64 {
	if v := k.sum + k.c; finite(v) {
		return v
	}
	return k.sum
}
