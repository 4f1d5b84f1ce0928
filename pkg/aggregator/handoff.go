package aggregator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
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

// handOff lets the partition go cleanly: it records what it is about to
// emit for the next owner, then emits every open window and amendment, so
// that every input message it holds is acknowledged. It reports false when
// it cannot — the connection was lost within the consumer's AckWait (the
// held messages may have gone to another instance meanwhile), the record
// cannot be written, or publishing fails — and the caller hands the held
// messages back instead.
//
// The record goes first: windows emitted early that no record announces
// would be recomputed by the next owner under the same ids from what comes
// later, and the server's deduplication would drop those windows with the
// new events in them (a compose run lost 1,051 events to records that
// could not be written after the windows were out). Without the record
// nothing is emitted: the next owner recomputes the windows from the input
// handed back. When publishing fails after the record was written, the
// record stays (taking it back would make the next owner recompute the
// windows that did get out, and lose their later events the same way): the
// input whose windows are all stored is acknowledged, the rest is handed
// back, and the next owner counts it in amendments — including, twice, the
// events of a stored window that share a message with one that is not.
func (p *partition) handOff() bool {
	s := p.s
	if s.handoffKV == nil || !s.cfg.Bus.Conn().IsConnected() || time.Now().Before(p.reconnectHold) || p.lease.gone(time.Now()) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), handoffTimeout)
	defer cancel()
	s.mu.Lock()
	closed := p.agg.Flush()
	through := p.agg.ClosedThrough()
	s.mu.Unlock()
	if err := s.recordHandoff(ctx, p.id, through); err != nil {
		s.m.handoffs.WithLabelValues("unrecorded").Inc()
		s.log.Warn().Err(err).Int("partition", p.id).Msg("handoff: recording it failed; handing the input back instead")
		return false
	}
	unstored, err := p.store(ctx, closed)
	p.settle(without(closed, unstored), unstored)
	if ferr := s.cfg.Bus.Conn().FlushWithContext(ctx); ferr != nil {
		s.log.Warn().Err(ferr).Int("partition", p.id).Msg("handoff: the acknowledgements may not have reached the server")
	}
	if len(unstored) > 0 {
		s.m.handoffs.WithLabelValues("partly_emitted").Inc()
		s.log.Warn().Err(err).Int("partition", p.id).Int("windows", len(closed)).Int("not_stored", len(unstored)).
			Msg("handoff: not every open window was stored; the input of the stored ones is acknowledged, the rest handed back")
		return false
	}
	s.m.handoffs.WithLabelValues("emitted").Inc()
	s.log.Info().Int("partition", p.id).Int("windows", len(closed)).Int("sources", len(through)).Msg("handed the partition over: open windows emitted, input acknowledged")
	return true
}

// without returns windows minus those in drop (windows itself when drop is
// empty).
func without(windows, drop []*events.AggregateEvent) []*events.AggregateEvent {
	if len(drop) == 0 {
		return windows
	}
	gone := make(map[*events.AggregateEvent]bool, len(drop))
	for _, w := range drop {
		gone[w] = true
	}
	out := make([]*events.AggregateEvent, 0, len(windows)-len(drop))
	for _, w := range windows {
		if !gone[w] {
			out = append(out, w)
		}
	}
	return out
}

// recordHandoff stores the partition's handoff record, merged with the one
// it replaces (the latest window start per source wins), compare-and-set: an
// owner that held the partition too briefly to adopt its predecessor's
// record must not erase what that record says (a compose run lost 715
// events to records that did).
func (s *Service) recordHandoff(ctx context.Context, partition int, through map[string]time.Time) error {
	key := handoffKey(partition)
	for attempt := 1; ; attempt++ {
		rec := handoff{Instance: s.cfg.Instance, At: time.Now().UTC(), ClosedThrough: maps.Clone(through)}
		if rec.ClosedThrough == nil {
			rec.ClosedThrough = map[string]time.Time{}
		}
		var rev uint64
		e, err := s.handoffKV.Get(ctx, key)
		switch {
		case err == nil:
			rev = e.Revision()
			var prev handoff
			if json.Unmarshal(e.Value(), &prev) == nil {
				for src, t := range prev.ClosedThrough {
					if t.After(rec.ClosedThrough[src]) {
						rec.ClosedThrough[src] = t
					}
				}
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return err
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.handoffKV.Create(ctx, key, data)
		} else {
			_, err = s.handoffKV.Update(ctx, key, data, rev)
		}
		if err == nil || attempt == 5 || ctx.Err() != nil {
			return err
		}
		// Someone else wrote it meanwhile: merge with theirs.
	}
}

// watchHandoff watches the partition's handoff record. Before the
// partition's first message it adopts the record the watch holds now,
// retrying until it has: consuming without it would recompute the windows
// the previous owner emitted, under the same ids, and the server's
// deduplication would drop them with the later events in them (a compose
// run lost 118 events to a watch that timed out). It gives up only when
// ctx ends or the lease is gone; the watch is nil then, and when there is no
// bucket (unpartitioned). Once the record was adopted (a consumer
// re-created later), a watch that fails is not waited for: the record
// cannot have changed while this instance held the lease. stop ends the
// watch.
func (p *partition) watchHandoff(ctx context.Context) (w jetstream.KeyWatcher, stop func()) {
	s := p.s
	if p.id < 0 || s.handoffKV == nil {
		return nil, nil
	}
	if p.handoffAdopted {
		w, stop, err := p.openHandoffWatch(ctx)
		if err != nil {
			return nil, nil
		}
		return w, stop
	}
	s.mu.Lock()
	p.awaitingHandoff = time.Now()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		p.awaitingHandoff = time.Time{}
		s.mu.Unlock()
		p.handoffAdopted = w != nil
	}()
	for attempt, wait := 1, 250*time.Millisecond; ; attempt, wait = attempt+1, min(2*wait, 5*time.Second) {
		w, stop, err := p.openHandoffWatch(ctx)
		if err == nil {
			if p.adoptInitial(w.Updates()) {
				return w, stop
			}
			stop()
			err = fmt.Errorf("the record did not arrive within %v", handoffInitialWait)
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn().Err(err).Int("partition", p.id).Int("attempt", attempt).Msg("cannot read the partition's handoff record; waiting for it before consuming")
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(wait):
		}
		if p.lease.gone(time.Now()) {
			return nil, nil
		}
	}
}

// openHandoffWatch watches the partition's handoff record in a context of
// its own, which stop ends with the watch: a watch given up on leaves
// nothing behind.
func (p *partition) openHandoffWatch(ctx context.Context) (jetstream.KeyWatcher, func(), error) {
	if f := p.s.handoffWatchFault; f != nil {
		if err := f(); err != nil {
			return nil, nil, err
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := p.s.handoffKV.Watch(wctx, handoffKey(p.id))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return w, func() { _ = w.Stop(); cancel() }, nil
}

// adoptInitial adopts the record the watch holds now; it waits at most
// handoffInitialWait for the watch to say it has delivered what there is,
// and reports whether it did.
func (p *partition) adoptInitial(updates <-chan jetstream.KeyValueEntry) bool {
	t := time.NewTimer(handoffInitialWait)
	defer t.Stop()
	for {
		select {
		case e, ok := <-updates:
			if !ok {
				return false
			}
			if e == nil { // the watch's marker: everything there was has come
				return true
			}
			p.adopt(e)
		case <-t.C:
			return false
		}
	}
}

// handoffInitialWait bounds adoptInitial.
const handoffInitialWait = 5 * time.Second

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
