package history

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

// HealthQuery selects health events: component statuses (health.component.*,
// health.check.completed) and system statuses (health.system.status).
type HealthQuery struct {
	// Component, if set, keeps the events about this component only (the
	// system status has component "").
	Component string
	From, To  time.Time
	// Limit is the most events in the answer, the newest ones (default and
	// most: 5,000).
	Limit int
}

// HealthPoint is one health event.
type HealthPoint struct {
	At        time.Time `json:"at"`
	Type      string    `json:"type"`
	Source    string    `json:"source"`
	Component string    `json:"component,omitempty"`
	Status    string    `json:"status"`
	Message   string    `json:"message,omitempty"`
}

// HealthResult answers a [HealthQuery] in time order.
type HealthResult struct {
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Scanned int           `json:"scanned"`
	Events  []HealthPoint `json:"events"`
	// Omitted counts the older matching events left out beyond Limit.
	Omitted int `json:"omitted,omitempty"`
}

// MaxHealthEvents is the most events a [HealthResult] carries.
const MaxHealthEvents = 5000

// Health answers q from the HEALTH stream. Errors about q wrap
// [ErrBadQuery]; reading more than MaxScan messages fails with [ErrTooMuch].
func (r *Reader) Health(ctx context.Context, q HealthQuery) (*HealthResult, error) {
	if err := r.checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	switch {
	case q.Limit < 0 || q.Limit > MaxHealthEvents:
		return nil, bad("limit must be between 1 and %d", MaxHealthEvents)
	case len(q.Component) > 256:
		return nil, bad("component is longer than 256 bytes")
	}
	limit := q.Limit
	if limit == 0 {
		limit = MaxHealthEvents
	}
	res := &HealthResult{From: q.From.UTC(), To: q.To.UTC()}
	kept := newest[HealthPoint]{n: limit}
	filters := []string{"health.component.>", "health.check.completed.*", "health.system.status.*"}
	if q.Component != "" {
		filters = filters[:2]
	}
	err := scan(ctx, r.js, streams.Health, filters, q.From, q.To, r.o.MaxScan, func(m jetstream.Msg) error {
		res.Scanned++
		evs, err := events.DecodeBatch(m.Data())
		if err != nil && len(evs) == 0 {
			return nil
		}
		for _, ev := range evs {
			h, ok := ev.(*events.HealthEvent)
			if !ok || h.Timestamp.Before(q.From) || !h.Timestamp.Before(q.To) || (q.Component != "" && h.Component != q.Component) {
				continue
			}
			kept.add(HealthPoint{
				At: h.Timestamp.UTC(), Type: string(h.Type), Source: h.Source, Component: h.Component, Status: h.Status, Message: h.Message,
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Events, res.Omitted = kept.values(), kept.dropped
	return res, nil
}
