package windowing

import (
	"math"
	"time"
)

// ClosedThrough returns, per source, the start of the latest window already
// emitted: what a next owner of this aggregator's input passes to Adopt.
func (a *Aggregator) ClosedThrough() map[string]time.Time {
	out := make(map[string]time.Time, len(a.sources))
	for name, src := range a.sources {
		if src.closedThrough != math.MinInt64 {
			out[name] = time.Unix(0, src.closedThrough).UTC()
		}
	}
	return out
}

// Adopt takes over from a previous owner of the input that emitted every
// window of source starting at or before through: they are closed here too.
// Their later events go to amendments (with AmendLate; Late otherwise), and a
// window among them still open here — events this aggregator counted before
// it learnt of the previous owner — becomes an amendment, emitted at the
// next collection. The source is remembered for at least SeriesTTL, even
// without series. Adopt returns how many open windows became amendments.
func (a *Aggregator) Adopt(source string, through time.Time) int {
	src := a.sources[source]
	if src == nil {
		src = &sourceState{name: source, watermark: math.MinInt64, closedThrough: math.MinInt64, oldestOpen: math.MaxInt64, series: map[seriesKey]*seriesState{}}
		a.sources[source] = src
	}
	src.keepUntil = max(src.keepUntil, a.o.Now().UnixNano()+int64(a.o.SeriesTTL))
	tn := through.UnixNano()
	if tn <= src.closedThrough {
		return 0
	}
	src.closedThrough = tn
	moved := 0
	src.oldestOpen = math.MaxInt64
	for sk, ss := range src.series {
		for key, w := range ss.windows {
			if key > tn {
				src.oldestOpen = min(src.oldestOpen, key)
				continue
			}
			// No amendment of this window exists: it was open, so
			// closedThrough was before it until now.
			if src.amends == nil {
				src.amends = map[amendKey]*window{}
			}
			src.amends[amendKey{sk, key}] = w
			delete(ss.windows, key)
			a.open--
			src.open--
			moved++
		}
	}
	if moved > 0 && !src.due {
		src.due = true
		a.due = append(a.due, src)
	}
	return moved
}
