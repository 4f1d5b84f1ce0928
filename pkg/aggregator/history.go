package aggregator

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/streams"
)

// historyQueue bounds the window copies waiting for the WINDOWS stream; a
// copy beyond it is dropped and counted.
const historyQueue = 10_000

// historyFlush bounds how long a stopping service still tries to store the
// copies it has queued.
const historyFlush = 5 * time.Second

// copyToHistory queues the copy of a stored window for [streams.Windows]
// (its series' subject, for the history API). The window's input does not
// wait for it: an emission waits for one stream only, so that a WINDOWS
// leader election cannot hold the input past its AckWait (which sent
// messages back after their windows had closed). A copy that cannot be
// queued is dropped and counted; the window itself is stored.
func (s *Service) copyToHistory(m *nats.Msg) {
	select {
	case s.copies <- m:
	default:
		s.m.copies.WithLabelValues("dropped").Inc()
		if n := s.droppedCopies.Add(1); n == 1 || n%1000 == 0 {
			s.log.Warn().Uint64("dropped", n).Str("stream", streams.Windows).Msg("the history copy queue is full; dropping window copies (the windows themselves are stored)")
		}
	}
}

// storeCopies stores queued window copies until in is closed and drained,
// or ctx ends (what is left is counted as dropped).
func (s *Service) storeCopies(ctx context.Context, in <-chan *nats.Msg) {
	batch := make([]*nats.Msg, 0, publishChunk)
	for {
		var m *nats.Msg
		var ok bool
		select {
		case m, ok = <-in:
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
		batch = append(batch[:0], m)
	fill:
		for len(batch) < publishChunk {
			select {
			case m, ok = <-in:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		s.storeBatch(ctx, batch)
	}
}

// storeBatch publishes copies and retries those that fail until they are
// stored, refused for good, or ctx ends.
func (s *Service) storeBatch(ctx context.Context, batch []*nats.Msg) {
	todo := batch
	for wait, attempt := 100*time.Millisecond, 1; ; wait, attempt = min(2*wait, 5*time.Second), attempt+1 {
		futures := make([]jetstream.PubAckFuture, len(todo))
		var retry []*nats.Msg
		var lastErr error
		failed := func(m *nats.Msg, err error) {
			if permanent(err) {
				s.m.copies.WithLabelValues("dropped").Inc()
				s.log.Error().Err(err).Str("subject", m.Subject).Msg("the server refuses a window copy for good; dropped it (the window itself is stored)")
				return
			}
			retry, lastErr = append(retry, m), err
		}
		for i, m := range todo {
			var err error
			if futures[i], err = s.js.PublishMsgAsync(m); err != nil {
				failed(m, err)
			}
		}
		for i, f := range futures {
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
				s.m.copies.WithLabelValues("stored").Inc()
			case err := <-f.Err():
				failed(todo[i], err)
			case <-ctx.Done():
				s.m.copies.WithLabelValues("dropped").Add(float64(len(todo) - i))
				return
			}
		}
		if len(retry) == 0 {
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn().Err(lastErr).Int("copies", len(retry)).Int("attempt", attempt).Msg("storing window copies in the history failed; retrying")
		}
		if noStream(lastErr) {
			if _, err := s.ensureStream(ctx, streams.Windows); err != nil {
				s.log.Warn().Err(err).Str("stream", streams.Windows).Msg("cannot re-create the stream of the window copies")
			}
		}
		select {
		case <-ctx.Done():
			s.m.copies.WithLabelValues("dropped").Add(float64(len(retry)))
			return
		case <-time.After(wait):
		}
		todo = retry
	}
}

// runHistory starts storing window copies for one Run and returns the
// function that stops it: it lets the queued copies be stored for up to
// historyFlush, then gives up on the rest.
func (s *Service) runHistory() (stop func()) {
	in := make(chan *nats.Msg, historyQueue)
	s.copies = in
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.storeCopies(ctx, in)
	}()
	return func() {
		close(in)
		t := time.AfterFunc(historyFlush, cancel)
		<-done
		t.Stop()
		cancel()
		if left := len(in); left > 0 {
			s.m.copies.WithLabelValues("dropped").Add(float64(left))
		}
	}
}
