package breaker

import (
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/redact"
)

// rateLog logs monitoring failures at most once per kind per interval, with
// the number of occurrences since the last line, with any URL credentials in
// the error masked (see [redact.Error]). It is safe for concurrent use.
type rateLog struct {
	log      zerolog.Logger
	interval time.Duration
	mu       sync.Mutex
	kinds    map[string]*rateEntry
}

type rateEntry struct {
	last       time.Time
	suppressed int
}

func newRateLog(log zerolog.Logger, interval time.Duration) *rateLog {
	return &rateLog{log: log, interval: interval, kinds: map[string]*rateEntry{}}
}

// report notes one failure of kind; it logs if the kind's last line is older
// than the interval.
func (r *rateLog) report(kind string, err error) {
	now := time.Now()
	r.mu.Lock()
	e := r.kinds[kind]
	if e == nil {
		e = &rateEntry{}
		r.kinds[kind] = e
	}
	if !e.last.IsZero() && now.Sub(e.last) < r.interval {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	n := e.suppressed + 1
	e.last, e.suppressed = now, 0
	r.mu.Unlock()
	r.log.Warn().Err(redact.Error(err)).Str("kind", kind).Int("count", n).Dur("interval", r.interval).Msg("monitoring failure")
}
