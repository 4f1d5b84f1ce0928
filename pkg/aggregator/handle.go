package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/windowing"
	"github.com/jetmon/jetmon/streams"
)

// handle aggregates one message (an event or a batch).
func (p *partition) handle(msg jetstream.Msg) {
	s := p.s
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	if d := md.Sequence.Consumer; p.lastDelivery != 0 && d != p.lastDelivery+1 {
		p.holdForRedelivery(time.Now(), fmt.Sprintf("delivery %d after %d", d, p.lastDelivery))
	}
	p.lastDelivery = md.Sequence.Consumer
	s.mu.Lock()
	s.stats.Messages++
	p.lastProgress = time.Now()
	p.lastSeq = max(p.lastSeq, md.Sequence.Stream)
	if md.Timestamp.After(p.lastStored) {
		p.lastStored = md.Timestamp
	}
	if pm := p.inFlight[md.Sequence.Stream]; pm != nil {
		// Redelivered while we hold it: already counted; its ack goes to
		// the latest delivery (a re-created consumer knows no other).
		pm.msg = msg
		s.stats.Redelivered++
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	var feeds []feed
	dec := events.Decoder{MaxPayload: -1}
	each := func(it events.BatchItem) {
		if it.Err != nil {
			s.bad(msg, md, it.Raw, it.Index, it.Err)
			return
		}
		s.mu.Lock()
		r := p.agg.AggregateInput(it.Event, md.Timestamp, md.Sequence.Stream)
		s.stats.Events++
		switch r.Outcome {
		case windowing.Added:
			feeds = addFeed(feeds, r.Series.Source, r.WindowStart)
			s.m.events.WithLabelValues("added").Inc()
			s.m.series(r.Series).Inc()
			if r.Series.Type != events.MetricRecorded {
				s.m.durations.Observe(value(it.Event) / 1000) // ms on the wire, seconds in Prometheus
			}
			if r.Overflow != windowing.NoOverflow {
				s.overflowed(r.Overflow, it.Event.Metadata().Source)
			}
		case windowing.Amended:
			// Its window was emitted: it goes out in an amendment window,
			// and the message waits for that like for any window.
			feeds = addFeed(feeds, r.Series.Source, r.WindowStart)
			fallthrough
		case windowing.Late:
			s.stats.Late++
			s.m.events.WithLabelValues("late").Inc()
		case windowing.Duplicate:
			s.stats.Duplicates++
			s.m.events.WithLabelValues("duplicate").Inc()
		case windowing.Rejected:
			s.mu.Unlock()
			s.bad(msg, md, it.Raw, it.Index, r.Err)
			return
		default:
			s.stats.NotAggregated++
			s.m.events.WithLabelValues("not_aggregated").Inc()
		}
		s.mu.Unlock()
	}
	if err := dec.EachInBatch(msg.Data(), each); err != nil {
		s.bad(msg, md, msg.Data(), -1, err)
	}
	if len(feeds) == 0 {
		_ = msg.Ack() // nothing waits on a window
		return
	}
	s.mu.Lock()
	pm := &pendingMsg{msg: msg, seq: md.Sequence.Stream, feeds: feeds, open: len(feeds)}
	p.inFlight[pm.seq] = pm
	for _, f := range feeds {
		p.bySource[f.source] = append(p.bySource[f.source], pm)
	}
	s.mu.Unlock()
}

func value(ev events.Event) float64 {
	_, v, _, _ := windowing.SeriesOf(ev)
	return v
}

// addFeed records that a message fed the window of source starting at
// start; a message holds one source's events unless someone sent it raw.
func addFeed(feeds []feed, source string, start time.Time) []feed {
	for i := range feeds {
		if feeds[i].source == source {
			if start.After(feeds[i].start) {
				feeds[i].start = start
			}
			return feeds
		}
	}
	return append(feeds, feed{source, start})
}

// overflowed counts an event of source that went to an overflow series.
// Caller holds s.mu.
func (s *Service) overflowed(o windowing.Overflow, source string) {
	s.stats.Overflowed++
	scope := "source"
	if o == windowing.GlobalOverflow {
		scope = "global"
	}
	label := capLabel(source)
	if !s.overflowSources[label] {
		if len(s.overflowSources) >= maxOverflowSources {
			label = otherSource
		} else {
			s.overflowSources[label] = true
			s.log.Warn().Str("source", label).Str("scope", scope).Msg("series limit reached; further series of the source go to an overflow series")
		}
	}
	s.m.overflow.WithLabelValues(scope, label).Inc()
}

// emit publishes closed windows, waits for the server to store them (or
// dead-letters those it refuses for good), then acknowledges the input
// messages whose windows are all closed.
func (p *partition) emit(ctx context.Context, closed []*events.AggregateEvent) error {
	if unstored, err := p.store(ctx, closed); len(unstored) > 0 {
		return err
	}
	p.settle(closed, nil)
	return nil
}

// store publishes windows until the server has every one (or dead-lettered
// those it refuses for good), ctx ends or the lease is lost; it returns
// those it does not know to be stored, and why.
func (p *partition) store(ctx context.Context, windows []*events.AggregateEvent) ([]*events.AggregateEvent, error) {
	s := p.s
	if len(windows) > 0 {
		s.mu.Lock()
		p.emitting = true
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			p.emitting = false
			s.mu.Unlock()
		}()
	}
	// The windows have left the aggregator: publish them until the server
	// has them (or the service stops, and they are recomputed).
	// Only while the lease is held: past it another instance may own the
	// partition and compute these windows under the same ids.
	todo := windows
	for wait, attempt := 100*time.Millisecond, 1; len(todo) > 0; wait, attempt = min(2*wait, 5*time.Second), attempt+1 {
		if err := p.lease.await(ctx); err != nil {
			return todo, err
		}
		var err error
		if todo, err = p.publish(ctx, todo); len(todo) == 0 {
			break
		} else if errors.Is(err, errLeaseInDoubt) {
			continue // awaited above
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn().Err(err).Int("windows", len(todo)).Int("attempt", attempt).Msg("publishing windows failed; retrying")
		}
		if noStream(err) {
			for _, name := range []string{streamOfWindows, streams.Windows} {
				if _, serr := s.ensureStream(ctx, name); serr != nil {
					s.log.Warn().Err(serr).Str("stream", name).Msg("cannot re-create the stream of the windows")
				}
			}
		}
		select {
		case <-ctx.Done():
			return todo, err
		case <-time.After(wait):
		}
	}
	return nil, nil
}

// settle counts stored windows as emitted and acknowledges the input
// messages that no window waits on any more: every window they fed is
// closed and, for each source, starts before the first of unstored (the
// windows of a failed handoff that may not have reached the server).
func (p *partition) settle(stored, unstored []*events.AggregateEvent) {
	s := p.s
	firstUnstored := map[string]time.Time{}
	for _, w := range unstored {
		if t, ok := firstUnstored[w.Source]; !ok || w.WindowStart.Before(t) {
			firstUnstored[w.Source] = w.WindowStart
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Emitted += uint64(len(stored))
	s.m.emitted.Add(float64(len(stored)))
	s.recent = append(s.recent, stored...)
	if over := len(s.recent) - s.cfg.Recent; over > 0 {
		s.recent = append(s.recent[:0], s.recent[over:]...)
	}
	acked := 0
	for src := range sourcesOf(stored) {
		first, waits := firstUnstored[src]
		list := p.bySource[src]
		keep := list[:0]
		for _, m := range list {
			if f := m.feedOf(src); !p.agg.IsClosed(src, f) || (waits && !f.Before(first)) {
				keep = append(keep, m)
				continue
			}
			if m.open--; m.open == 0 {
				_ = m.msg.Ack()
				delete(p.inFlight, m.seq)
				acked++
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(p.bySource, src)
		} else {
			p.bySource[src] = keep
		}
	}
	if acked > 0 || len(stored) > 0 {
		p.lastProgress = time.Now()
	}
}

func (m *pendingMsg) feedOf(source string) time.Time {
	for _, f := range m.feeds {
		if f.source == source {
			return f.start
		}
	}
	return time.Time{}
}

// sourcesOf returns the sources of windows.
func sourcesOf(windows []*events.AggregateEvent) map[string]struct{} {
	out := map[string]struct{}{}
	for _, w := range windows {
		out[w.Source] = struct{}{}
	}
	return out
}
