package console

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

// maxAlerts bounds the alerts read from the alert state bucket per request.
const maxAlerts = 1000

// maxConsumers bounds the consumers listed per stream.
const maxConsumers = 100

// StreamStat is one stream's size, recent rate and consumers.
type StreamStat struct {
	Stream   string `json:"stream"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// PerSecond is the messages stored over the last minute, per second.
	PerSecond float64       `json:"per_second"`
	Consumers []ConsumerLag `json:"consumers"`
}

// ConsumerLag is a durable consumer's backlog.
type ConsumerLag struct {
	Name string `json:"name"`
	// Pending counts the stored messages not yet delivered; AckPending
	// those delivered and not yet acknowledged.
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
}

// Overview is the overview page: rates per family, system status, alerts,
// consumer lag.
type Overview struct {
	Now     time.Time    `json:"now"`
	Streams []StreamStat `json:"streams"`
	// System is the last system status event, if any.
	System  *SystemStatus     `json:"system,omitempty"`
	Alerts  []*alerting.Alert `json:"alerts"`
	Firing  int               `json:"firing"`
	Pending int               `json:"pending"`
}

// SystemStatus is the last health.system.status event.
type SystemStatus struct {
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
	Status  string    `json:"status"`
	Message string    `json:"message,omitempty"`
}

// overviewStreams are the streams the overview shows.
var overviewStreams = []string{streams.Performance, streams.Health, streams.Validation, streams.System, streams.Monitoring, streams.Alerts, streams.Windows, streams.DeadLetter}

// Overview computes the overview from the streams and the alert state.
func (c *Console) Overview(ctx context.Context) (*Overview, error) {
	now := c.o.Now()
	js := c.o.Bus.JetStream()
	ov := &Overview{Now: now.UTC(), Streams: []StreamStat{}}
	for _, name := range overviewStreams {
		st, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info := st.CachedInfo()
		s := StreamStat{Stream: name, Messages: info.State.Msgs, Bytes: info.State.Bytes, Consumers: []ConsumerLag{}}
		if seq, ok := c.firstSeqSince(ctx, name, now.Add(-time.Minute)); ok && info.State.LastSeq >= seq {
			s.PerSecond = float64(info.State.LastSeq-seq+1) / 60
		}
		lister := st.ListConsumers(ctx)
		for ci := range lister.Info() {
			if ci.Config.Durable == "" || len(s.Consumers) == maxConsumers {
				continue // ordered readers (tail, replay, history) have no lag worth showing
			}
			s.Consumers = append(s.Consumers, ConsumerLag{Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending})
		}
		ov.Streams = append(ov.Streams, s)
	}
	if st, err := js.Stream(ctx, streams.Health); err == nil {
		if m, err := st.GetLastMsgForSubject(ctx, events.FilterSubject(string(events.SystemStatus))); err == nil {
			if ev, err := events.Decode(m.Data); err == nil {
				if h, ok := ev.(*events.HealthEvent); ok {
					ov.System = &SystemStatus{At: h.Timestamp.UTC(), Source: h.Source, Status: h.Status, Message: h.Message}
				}
			}
		}
	}
	alerts, err := c.Alerts(ctx)
	if err != nil {
		return nil, err
	}
	ov.Alerts = alerts
	for _, a := range alerts {
		switch a.State {
		case alerting.StateFiring:
			ov.Firing++
		case alerting.StatePending:
			ov.Pending++
		}
	}
	return ov, nil
}

// firstSeqSince returns the sequence of the first message of stream stored
// at or after t, with one direct get (no consumer).
func (c *Console) firstSeqSince(ctx context.Context, stream string, t time.Time) (uint64, bool) {
	req, _ := json.Marshal(map[string]any{"start_time": t.UTC()})
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := c.o.Bus.Conn().RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, req)
	if err != nil {
		return 0, false
	}
	seq, err := strconv.ParseUint(msg.Header.Get("Nats-Sequence"), 10, 64)
	return seq, err == nil
}

// Alerts returns the pending, firing and recently resolved alerts from the
// alert managers' state bucket (none when there is no bucket yet), firing
// first, at most 1,000.
func (c *Console) Alerts(ctx context.Context) ([]*alerting.Alert, error) {
	out, err := readBucket[alerting.Alert](ctx, c.o.Bus.JetStream(), alerting.BucketAlerts, maxAlerts)
	if err != nil {
		return nil, err
	}
	rank := map[alerting.State]int{alerting.StateFiring: 0, alerting.StatePending: 1}
	slices.SortStableFunc(out, func(a, b *alerting.Alert) int {
		ra, oka := rank[a.State]
		rb, okb := rank[b.State]
		if !oka {
			ra = 2
		}
		if !okb {
			rb = 2
		}
		if ra != rb {
			return ra - rb
		}
		return a.ActiveAt.Compare(b.ActiveAt)
	})
	return out, nil
}
