package history

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/streams"
)

// AlertQuery selects alert transitions from the ALERTS stream.
type AlertQuery struct {
	// Rule, if set, keeps the transitions of this rule only.
	Rule     string
	From, To time.Time
	// Limit is the most transitions in the answer, the newest ones
	// (default and most: 5,000).
	Limit int
}

// AlertResult answers an [AlertQuery] in time order.
type AlertResult struct {
	From        time.Time               `json:"from"`
	To          time.Time               `json:"to"`
	Scanned     int                     `json:"scanned"`
	Transitions []*alerting.AlertRecord `json:"transitions"`
	Omitted     int                     `json:"omitted,omitempty"`
}

// MaxAlertRecords is the most transitions an [AlertResult] carries.
const MaxAlertRecords = 5000

// Alerts answers q from the ALERTS stream. Errors about q wrap
// [ErrBadQuery]; reading more than MaxScan messages fails with [ErrTooMuch].
func (r *Reader) Alerts(ctx context.Context, q AlertQuery) (*AlertResult, error) {
	if err := r.checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	switch {
	case q.Limit < 0 || q.Limit > MaxAlertRecords:
		return nil, bad("limit must be between 1 and %d", MaxAlertRecords)
	case len(q.Rule) > 256:
		return nil, bad("rule is longer than 256 bytes")
	}
	limit := q.Limit
	if limit == 0 {
		limit = MaxAlertRecords
	}
	res := &AlertResult{From: q.From.UTC(), To: q.To.UTC()}
	kept := newest[*alerting.AlertRecord]{n: limit}
	err := scan(ctx, r.js, streams.Alerts, []string{"alerts.>"}, q.From, q.To, r.o.MaxScan, func(m jetstream.Msg) error {
		res.Scanned++
		if rec := decodeRecord(m.Data()); rec != nil && (q.Rule == "" || rec.Alert.Rule == q.Rule) {
			kept.add(rec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Transitions, res.Omitted = kept.values(), kept.dropped
	return res, nil
}

// decodeRecord returns the alert record in data, or nil.
func decodeRecord(data []byte) *alerting.AlertRecord {
	var rec alerting.AlertRecord
	if json.Unmarshal(data, &rec) != nil || rec.Alert == nil {
		return nil
	}
	return &rec
}
