// The spool side of the breaker: asynchronous failures in, the drainer out.

package breaker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/jetmon/jetmon/pkg/events"
)

// Failed reports that a publish which earlier returned nil failed
// asynchronously (e.g. its JetStream ack never came): the failure counts
// against the circuit, and ev goes to the spool with its original id. Such an
// event may in fact have been stored (only its ack was lost); re-sending it
// is harmless (server-side dedup), but if the spool is full it is counted as
// dropped although it may have arrived. Wire
// it to the transport's asynchronous error hook (jsbus.Config.OnPublishError
// through jsbus.ReportFailedEvents).
//
// A permanent err ([events.ErrInvalid], [events.ErrPayloadTooLarge],
// [events.ErrUnsupported]), an invalid or oversized ev, and an ev that has
// already failed [Options.MaxAsyncFailures] times are discarded and counted
// instead: re-sending them would only fail again, forever.
func (p *Publisher) Failed(ev events.Event, err error) {
	if p.closed.Load() || ev == nil {
		return
	}
	m := ev.Metadata()
	if permanent(err) {
		p.discard(m.Type, m.ID, reasonOf(err), err)
		return
	}
	if verr := ev.Validate(); verr != nil {
		p.discard(m.Type, m.ID, reasonOf(verr), verr)
		return
	}
	p.failures.Add(1)
	p.m.failures.WithLabelValues("async").Inc()
	p.flog.report("async publish", err)
	_, _ = p.cb.Execute(func() (struct{}, error) { return struct{}{}, err })
	p.mu.Lock()
	n := p.asyncFails.inc(m.ID)
	p.mu.Unlock()
	if n > p.o.MaxAsyncFailures {
		p.discard(m.Type, m.ID, reasonExhausted, fmt.Errorf("failed asynchronously %d times, last: %w", n, err))
		return
	}
	_ = p.enqueue(ev, err, false)
}

// enqueue puts ev in the spool, or counts it as dropped. internal marks the
// breaker's own events: they are few (one per state change) and are kept
// even in a full spool, so that the drop count is the application's alone.
func (p *Publisher) enqueue(ev events.Event, cause error, internal bool) error {
	data := ev.AppendJSON(nil)
	if len(data) > p.o.MaxEventBytes {
		m := ev.Metadata()
		err := fmt.Errorf("breaker: %s %s: %w: %d bytes encoded, the limit is %d (Options.MaxEventBytes)",
			m.Type, m.ID, events.ErrPayloadTooLarge, len(data), p.o.MaxEventBytes)
		p.discard(m.Type, m.ID, reasonTooLarge, err)
		return err
	}
	p.mu.Lock()
	ok, err := p.spool.push(data, internal)
	if ok {
		p.spooling.Store(true)
	} else {
		p.drops[ev.Metadata().Type]++
	}
	p.mu.Unlock()
	if err != nil {
		p.flog.report("spool", err)
	}
	if !ok {
		p.dropped.Add(1)
		p.m.dropped.WithLabelValues(string(ev.Metadata().Type)).Inc()
		if cause == nil {
			cause = errors.New("circuit open")
		}
		p.flog.report("drop", fmt.Errorf("%w (%s): %w", ErrDropped, ev.Metadata().Type, cause))
		return fmt.Errorf("breaker: %s %s: %w", ev.Metadata().Type, ev.Metadata().ID, ErrDropped)
	}
	p.spooled.Add(1)
	p.m.spooled.Inc()
	p.signal()
	return nil
}

func (p *Publisher) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// drainLoop sends spooled events whenever the circuit lets it. After a
// failure it waits InitialBackoff, doubling up to a quarter of OpenTimeout;
// while the circuit is open it waits for the probe time.
func (p *Publisher) drainLoop() {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	wait := p.o.InitialBackoff
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		case <-retry.C:
		}
		if !p.drain() {
			wait = p.o.InitialBackoff
			continue
		}
		if p.cb.State() == gobreaker.StateOpen {
			retry.Reset(p.untilProbe())
			continue
		}
		retry.Reset(wait)
		wait = min(2*wait, max(p.o.OpenTimeout/4, p.o.InitialBackoff))
	}
}

// untilProbe is how long the open circuit stays open: gobreaker does not
// say, so poll at a tenth of the timeout.
func (p *Publisher) untilProbe() time.Duration { return max(p.o.OpenTimeout/10, time.Millisecond) }

// drain sends spooled events in order until the spool is empty (false) or a
// send fails (true).
func (p *Publisher) drain() bool {
	ctx := p.closing
	for {
		if p.cb.State() == gobreaker.StateOpen {
			return true
		}
		p.mu.Lock()
		data, ok, err := p.spool.peek()
		p.mu.Unlock()
		if err != nil {
			p.flog.report("spool", err)
			return true
		}
		if !ok {
			return p.finishDrain(ctx)
		}
		ev, derr := p.decoder.Decode(data)
		if derr != nil { // a damaged disk spool, or an event a newer version wrote
			p.popSpool()
			p.discard("", "", reasonCorrupt, fmt.Errorf("undecodable spooled event: %w", derr))
			continue
		}
		if len(data) > p.o.MaxEventBytes { // spooled by a process with a larger limit
			p.popSpool()
			p.discard(ev.Metadata().Type, ev.Metadata().ID, reasonTooLarge,
				fmt.Errorf("%w: %d bytes spooled, the limit is %d", events.ErrPayloadTooLarge, len(data), p.o.MaxEventBytes))
			continue
		}
		_, err = p.cb.Execute(func() (struct{}, error) { return struct{}{}, p.attempt(ctx, ev) })
		if err != nil && !permanent(err) {
			return ctx.Err() == nil
		}
		p.popSpool()
		if err == nil {
			p.drained.Add(1)
		} else {
			p.discard(ev.Metadata().Type, ev.Metadata().ID, reasonOf(err), err)
		}
	}
}

func (p *Publisher) popSpool() {
	p.mu.Lock()
	if err := p.spool.pop(); err != nil {
		p.flog.report("spool", err)
	}
	p.mu.Unlock()
}

// finishDrain marks the spool empty and reports drops since the last report.
func (p *Publisher) finishDrain(ctx context.Context) bool {
	p.mu.Lock()
	if p.spool.len() > 0 {
		p.mu.Unlock()
		return false // an event arrived meanwhile; the kick is pending
	}
	p.spooling.Store(false)
	drops := p.drops
	p.drops = map[events.Type]uint64{}
	p.mu.Unlock()
	if len(drops) == 0 {
		return false
	}
	ev := events.NewControlEvent(events.ConfigChanged, p.o.Source)
	ev.Reason = "monitoring events were dropped while the bus was unavailable"
	ev.Config = map[string]string{"component": "breaker", "publisher": p.o.Name}
	var total uint64
	for t, n := range drops {
		ev.Config["dropped."+string(t)] = strconv.FormatUint(n, 10)
		total += n
	}
	ev.Config["dropped_total"] = strconv.FormatUint(total, 10)
	if err := p.Publish(ctx, ev); err != nil {
		p.flog.report("drop report", err)
	}
	return false
}

// WaitDrained waits until the spool is empty, or ctx ends.
func (p *Publisher) WaitDrained(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for p.spooling.Load() {
		p.signal()
		select {
		case <-ctx.Done():
			return fmt.Errorf("breaker: %d events still spooled: %w", p.Stats().SpoolDepth, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
