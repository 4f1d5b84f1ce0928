package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// HandoffBucket is the key-value bucket where the last owner of a partition
// records, when it lets the partition go, which windows it emitted (a
// handoff record, key p<partition>), so that the next owner counts what
// comes later for those windows in amendments instead of recomputing windows
// the server already holds (whose ids its deduplication would drop, with
// the new events in them).
const HandoffBucket = "jetmon_aggregator_handoff"

// handoffTTL is how long a handoff record is kept: far longer than the pin
// of a partition takes to move.
const handoffTTL = 10 * time.Minute

// handoffTimeout bounds a handoff: emitting the open windows, flushing the
// acknowledgements and recording it. Deployments give a stopping aggregator
// more than this (compose: stop_grace_period 30 s).
const handoffTimeout = 10 * time.Second

// handoff is a handoff record.
type handoff struct {
	Instance string    `json:"instance"`
	At       time.Time `json:"at"`
	// ClosedThrough maps each source to the start of the latest window
	// emitted: every window of the source starting at or before it was.
	ClosedThrough map[string]time.Time `json:"closed_through"`
}

func handoffKey(partition int) string { return fmt.Sprintf("p%d", partition) }

// handOff lets the partition go cleanly: it emits every open window and
// amendment, so that every input message it holds is acknowledged, and
// records what it emitted for the next owner. It reports false when it
// cannot — the connection was lost within the consumer's AckWait (the held
// messages may have gone to another instance meanwhile), or publishing
// fails — and the caller hands the held messages back instead; the next
// owner then recomputes their windows, and the server drops those it holds.
func (p *partition) handOff() bool {
	s := p.s
	if s.handoffKV == nil || !s.cfg.Bus.Conn().IsConnected() || time.Now().Before(p.reconnectHold) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), handoffTimeout)
	defer cancel()
	s.mu.Lock()
	closed := p.agg.Flush()
	through := p.agg.ClosedThrough()
	s.mu.Unlock()
	if err := p.emit(ctx, closed); err != nil {
		s.log.Warn().Err(err).Int("partition", p.id).Msg("handoff: emitting the open windows failed; handing the input back instead")
		return false
	}
	if err := s.cfg.Bus.Conn().FlushWithContext(ctx); err != nil {
		s.log.Warn().Err(err).Int("partition", p.id).Msg("handoff: the acknowledgements may not have reached the server")
	}
	rec, err := json.Marshal(handoff{Instance: s.cfg.Instance, At: time.Now().UTC(), ClosedThrough: through})
	if err == nil {
		_, err = s.handoffKV.Put(ctx, handoffKey(p.id), rec)
	}
	if err != nil {
		// The windows are stored and the input acknowledged: the next
		// owner recomputes none of them, only what comes back late.
		s.log.Warn().Err(err).Int("partition", p.id).Msg("handoff: recording it failed")
	}
	s.log.Info().Int("partition", p.id).Int("windows", len(closed)).Int("sources", len(through)).Msg("handed the partition over: open windows emitted, input acknowledged")
	return true
}

// watchHandoff watches the partition's handoff record; nil when there is no
// bucket (unpartitioned) or the watch fails (then windows another owner
// emitted are recomputed, and the server drops them).
func (p *partition) watchHandoff(ctx context.Context) jetstream.KeyWatcher {
	if p.id < 0 || p.s.handoffKV == nil {
		return nil
	}
	w, err := p.s.handoffKV.Watch(ctx, handoffKey(p.id))
	if err != nil {
		p.s.log.Warn().Err(err).Int("partition", p.id).Msg("cannot watch the partition's handoff record")
		return nil
	}
	return w
}

// pollHandoff adopts the next handoff record, if one is waiting; it returns
// the channel to poll next time (nil once the watch ended).
func (p *partition) pollHandoff(updates <-chan jetstream.KeyValueEntry) <-chan jetstream.KeyValueEntry {
	select {
	case e, ok := <-updates:
		if !ok {
			return nil
		}
		p.adopt(e)
	default:
	}
	return updates
}

// adopt applies a handoff record: the windows the previous owner emitted
// are closed here too.
func (p *partition) adopt(e jetstream.KeyValueEntry) {
	if e == nil || e.Operation() != jetstream.KeyValuePut {
		return
	}
	var h handoff
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		p.s.log.Warn().Err(err).Int("partition", p.id).Msg("ignoring a handoff record that does not decode")
		return
	}
	moved := 0
	p.s.mu.Lock()
	for source, through := range h.ClosedThrough {
		moved += p.agg.Adopt(source, through)
	}
	p.s.mu.Unlock()
	p.s.log.Info().Int("partition", p.id).Str("from", h.Instance).Time("handed_over", h.At).Int("sources", len(h.ClosedThrough)).
		Int("windows_amended", moved).Msg("adopted the previous owner's handoff")
}
