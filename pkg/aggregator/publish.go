package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

// streamOfWindows stores the published windows.
const streamOfWindows = streams.Performance

// publishChunk is how many windows are in flight at once (nats.go stalls
// async publishes beyond 4000 pending).
const publishChunk = 1000

// permanent reports whether publishing a window failed for good: it is
// invalid or too large, and trying again cannot help.
func permanent(err error) bool {
	return errors.Is(err, events.ErrInvalid) || errors.Is(err, events.ErrPayloadTooLarge) || errors.Is(err, nats.ErrMaxPayload)
}

// noStream reports whether a publish failed because no stream takes the
// subject (deleted under us).
func noStream(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}

// publish publishes windows and waits for the server's acknowledgements. A
// window refused for good is dead-lettered; it returns the windows that
// failed otherwise (to retry) and the last such error.
func (p *partition) publish(ctx context.Context, windows []*events.AggregateEvent) ([]*events.AggregateEvent, error) {
	var retry []*events.AggregateEvent
	var lastErr error
	fail := func(w *events.AggregateEvent, err error) {
		if permanent(err) {
			dlErr := p.s.deadLetterWindow(ctx, w, err)
			if dlErr == nil {
				return
			}
			err = dlErr
		}
		retry, lastErr = append(retry, w), err
	}
	maxPayload := int(p.s.cfg.Bus.Conn().MaxPayload())
	for len(windows) > 0 {
		if !p.lease.valid(time.Now()) {
			return append(retry, windows...), errLeaseInDoubt
		}
		chunk := windows[:min(len(windows), publishChunk)]
		windows = windows[len(chunk):]
		// Each window goes to PERFORMANCE (its event subject); once stored
		// there, its copy is queued for WINDOWS (its series' subject, for
		// the history API), off the input's path. Both carry the window's
		// id, so a retry is deduplicated by either stream.
		futures := make([]jetstream.PubAckFuture, len(chunk))
		msgs := make([]*nats.Msg, len(chunk))
		for i, w := range chunk {
			msg, err := jsbus.NewMsg(w)
			if err == nil && len(msg.Data)+headerBytes(msg) > maxPayload {
				err = fmt.Errorf("window %s: %w: %d bytes, the server takes %d", w.ID, events.ErrPayloadTooLarge, len(msg.Data), maxPayload)
			}
			if err == nil && p.s.publishFault != nil {
				err = p.s.publishFault(w)
			}
			if err == nil {
				msgs[i] = msg
				futures[i], err = p.s.js.PublishMsgAsync(msg)
			}
			if err != nil {
				futures[i] = nil
				fail(w, err)
			}
		}
		for i, f := range futures {
			if f == nil {
				continue
			}
			select {
			case ack := <-f.Ok():
				if ack != nil && ack.Duplicate {
					p.s.m.deduplicated.Inc()
				}
			case err := <-f.Err():
				fail(chunk[i], err)
				continue
			case <-ctx.Done():
				// Neither those waiting for their acknowledgement nor the
				// chunks not sent yet are known to be stored.
				return append(append(retry, chunk[i:]...), windows...), ctx.Err()
			}
			p.s.copyToHistory(seriesMsg(msgs[i], chunk[i]))
			p.progress()
		}
	}
	return retry, lastErr
}

// seriesMsg returns the copy of a window's message stored in
// [streams.Windows], under its series' subject.
func seriesMsg(m *nats.Msg, w *events.AggregateEvent) *nats.Msg {
	return &nats.Msg{Subject: streams.WindowSubject(w.AggregatedType, w.Source, w.Name()), Header: m.Header, Data: m.Data}
}

func headerBytes(m *nats.Msg) int {
	n := len(m.Subject) + 16
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// deadLetterWindow stores a window the server refuses for good on
// deadletter.performance.metric.aggregated.<source>, with the reason, so
// that the input it was computed from can be acknowledged. A window too
// large goes without its sketch (and, if still too large, truncated).
func (s *Service) deadLetterWindow(ctx context.Context, w *events.AggregateEvent, cause error) error {
	subject := events.Subject(w.Type, w.Source)
	data := w.AppendJSON(nil)
	limit := int(s.cfg.Bus.Conn().MaxPayload()) - 2048
	if len(data) > limit {
		c := *w
		c.Sketch = nil
		data = c.AppendJSON(nil)
		data = data[:min(len(data), max(limit, 0))]
	}
	reason := cause.Error()
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	h := nats.Header{}
	h.Set(jsbus.HeaderDeadReason, reason)
	h.Set(jsbus.HeaderOriginalSubject, subject)
	h.Set(jsbus.HeaderOriginalStream, streamOfWindows)
	h.Set(jsbus.HeaderMsgID, "dl-"+w.ID)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: streams.DeadLetterPrefix + subject, Data: data, Header: h}); err != nil {
		return fmt.Errorf("dead-letter window %s: %w", w.ID, err)
	}
	label := "too_large"
	if ve, ok := errors.AsType[*events.ValidationError](cause); ok {
		label = "invalid_" + ve.Field
	}
	s.mu.Lock()
	s.stats.WindowsDeadLettered++
	s.mu.Unlock()
	s.m.deadWindows.WithLabelValues(label).Inc()
	s.log.Error().Err(cause).Str("window", w.ID).Str("source", w.Source).Str("series", w.Name()).
		Time("window_start", w.WindowStart).Msg("the server refuses the window for good; dead-lettered it, its input is acknowledged")
	return nil
}
