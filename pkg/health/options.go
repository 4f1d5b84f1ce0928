package health

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
)

// Options configures a [Manager]. Zero values mean the defaults.
type Options struct {
	// Source is the source of the health events (default "health-agent").
	Source string
	// Publisher receives the health events; nil keeps them in the manager.
	Publisher events.Publisher
	// Interval between runs of a check (default 10 s), Timeout of one run
	// (default 5 s), Jitter spreading runs by up to this share of the
	// interval (default 0.1; negative: none).
	Interval, Timeout time.Duration
	Jitter            float64
	// Concurrency bounds the checks running at once (default 4).
	Concurrency int
	// StatusEvery is the interval of health.system.status (default Interval).
	StatusEvery time.Duration
	// Weighted computes the system status from weights (healthy 1, degraded
	// 0.5, failed 0; ≥ 0.9 healthy, ≥ 0.5 degraded) instead of worst-of.
	Weighted bool
	// Logger receives publish failures; nil discards them.
	Logger *zerolog.Logger
}

// Validate reports the first bad field, by name: zero means the default, a
// negative interval, timeout or concurrency is refused rather than silently
// replaced by it (Jitter aside, where negative means none).
func (o Options) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", o.Interval}, {"Timeout", o.Timeout}, {"StatusEvery", o.StatusEvery}} {
		if d.v < 0 {
			return fmt.Errorf("health options: %s %v: must not be negative", d.name, d.v)
		}
	}
	if o.Concurrency < 0 {
		return fmt.Errorf("health options: Concurrency %d: must not be negative", o.Concurrency)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Source == "" {
		o.Source = "health-agent"
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Jitter == 0 {
		o.Jitter = 0.1
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.StatusEvery <= 0 {
		o.StatusEvery = o.Interval
	}
	return o
}
