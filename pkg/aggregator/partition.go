package aggregator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/windowing"
)

// partition consumes one consumer into one aggregator. Its fields below
// "under s.mu" are shared with Stats, Ready and the gauges.
type partition struct {
	s    *Service
	id   int
	cons jetstream.Consumer
	// lease is this instance's hold on the partition: nothing is emitted
	// while it is not valid, and the partition ends once it is lost (nil,
	// always valid, when unpartitioned).
	lease   *lease
	holdFor time.Duration // from the first message on, no window closes for this long
	hold    time.Time     // the end of the hold, set by the first message
	// reconnects is the connection's reconnect count last seen; after a
	// reconnect (or while disconnected) no window closes until reconnectHold:
	// messages the server sent that were lost with the connection come back
	// only after the consumer's AckWait, and must still find their windows.
	reconnects    uint64
	reconnectHold time.Time
	// lastDelivery is the consumer (delivery) sequence of the latest message
	// received. A gap means deliveries lost in flight — to a consumer leader
	// that moved, a pull that timed out, another instance's pull — which come
	// back only after AckWait: it starts the same hold as a reconnect.
	lastDelivery uint64
	// streamCreated tells a re-created stream from the one the consumer read.
	streamCreated time.Time
	// lastStored is when the server stored the latest message received.
	lastStored time.Time
	// handoffAdopted: the handoff record was adopted before the first
	// message (a re-created consumer need not wait for it again).
	handoffAdopted bool

	// under s.mu
	agg          *windowing.Aggregator
	inFlight     map[uint64]*pendingMsg   // input held unacknowledged, by stream sequence
	bySource     map[string][]*pendingMsg // the same, by the sources whose windows they wait for
	lastSeq      uint64                   // the latest stream sequence received
	lastProgress time.Time                // the last message received, window published or input acked
	backlog      uint64                   // messages waiting on the server (sampled)
	// inputQuiet: at the last look (every second) the server had nothing
	// waiting for this consumer. Only then may the wall clock close windows
	// of quiet sources: a delivery stall (a leader election, a pin that
	// has not moved yet) is no proof that nothing more comes.
	inputQuiet bool
	emitting   bool  // windows are being published
	lost       error // the consumer is gone and not re-created yet
	// awaitingHandoff is when the partition began to wait for its handoff
	// record before its first message (zero when not waiting).
	awaitingHandoff time.Time
}

// pendingMsg is an input message held until the windows it fed are closed.
type pendingMsg struct {
	msg   jetstream.Msg // its latest delivery
	seq   uint64
	feeds []feed
	open  int // feeds whose window is not closed yet
}

// feed is the latest window start of one source a message contributed to:
// per source, because each source has its own event time.
type feed struct {
	source string
	start  time.Time
}

func (s *Service) newPartition(id int, cons jetstream.Consumer, holdFor time.Duration, l *lease) *partition {
	overflow := windowing.OverflowName
	if id >= 0 {
		overflow += "-p" + fmt.Sprint(id)
	}
	o := s.cfg.aggOptions(overflow)
	o.Limit = s.limit
	o.OnEvict = s.m.forgetSeries
	p := &partition{
		s: s, id: id, cons: cons, lease: l, holdFor: holdFor, inFlight: map[uint64]*pendingMsg{}, bySource: map[string][]*pendingMsg{},
		agg: windowing.New(o), lastProgress: time.Now(),
	}
	if info := cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if st, err := s.cfg.Bus.JetStream().Stream(ctx, info.Stream); err == nil {
			p.streamCreated = st.CachedInfo().Created
		}
		cancel()
	}
	s.mu.Lock()
	s.parts[id] = p
	s.mu.Unlock()
	return p
}

// holding reports whether windows must stay open at now: a taken-over
// partition holds them until holdFor after its first message.
func (p *partition) holding(now time.Time) bool {
	if now.Before(p.reconnectHold) {
		return true
	}
	return p.holdFor > 0 && (p.hold.IsZero() || now.Before(p.hold))
}

// pullSilentAfter: with messages waiting on the server and none received
// for this long, the pull is started afresh. A pull request the server lost
// (its consumer's leader moved) is never answered; nats.go would notice
// through missed heartbeats, but it watches them only within one Next call,
// and this loop's calls last 250 ms — a compose run had a partition's
// iterator stay silent for minutes on a healthy connection.
const pullSilentAfter = 10 * time.Second

// maxReconnectHold bounds the hold after a reconnect (a consumer's AckWait
// may be minutes).
const maxReconnectHold = 2 * time.Minute

// holdForRedelivery holds every window open until the consumer's AckWait
// (plus a margin, at most maxReconnectHold) has passed, so that messages the
// server will redeliver then still find their windows.
func (p *partition) holdForRedelivery(now time.Time, why string) {
	hold := min(p.cons.CachedInfo().Config.AckWait+2*time.Second, maxReconnectHold)
	if until := now.Add(hold); until.After(p.reconnectHold) {
		if !now.Before(p.reconnectHold) { // a new hold, not an extension
			p.s.log.Info().Int("partition", p.id).Dur("hold", hold).Str("why", why).Msg("holding windows open for messages lost in flight")
		}
		p.s.mu.Lock() // unhealthy reads it under s.mu; only this goroutine writes it
		p.reconnectHold = until
		p.s.mu.Unlock()
	}
}

// watchConnection starts a hold of the consumer's AckWait when the
// connection was lost since the last look, or is down. It reads the
// connection's statistics under its lock: call it once a second, not per
// message.
func (p *partition) watchConnection(now time.Time) {
	nc := p.s.cfg.Bus.Conn()
	n := nc.Stats().Reconnects
	if n == p.reconnects && nc.IsConnected() {
		return
	}
	why := "disconnected"
	if n != p.reconnects {
		why = "reconnected"
	}
	p.reconnects = n
	p.holdForRedelivery(now, why)
}

// unhealthy says why the partition is not making progress at now, or "".
// Caller holds s.mu.
func (p *partition) unhealthy(now time.Time) string {
	switch {
	case p.lost != nil:
		return "consumer lost: " + p.lost.Error()
	case !p.awaitingHandoff.IsZero() && now.Sub(p.awaitingHandoff) > p.s.cfg.StallAfter:
		return "waiting for the handoff record for " + now.Sub(p.awaitingHandoff).Round(time.Second).String()
	case (len(p.inFlight) > 0 || p.backlog > 0 || p.emitting) && now.Sub(p.lastProgress) > p.s.cfg.StallAfter && !p.holding(now):
		return "no progress for " + now.Sub(p.lastProgress).Round(time.Second).String()
	}
	return ""
}

func (p *partition) progress() {
	p.s.mu.Lock()
	p.lastProgress = time.Now()
	p.s.mu.Unlock()
}

// run consumes until ctx ends, re-creating the consumer whenever the server
// loses it; then it hands back what it holds.
func (p *partition) run(ctx context.Context) error {
	s := p.s
	defer func() {
		s.mu.Lock()
		p.agg.Close()
		s.mu.Unlock()
	}()
	defer p.release()
	s.log.Info().Int("partition", p.id).Dur("window", s.cfg.Window).Dur("lateness", s.cfg.Lateness).Msg("aggregating")
	for {
		err := p.consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errLeaseLost) {
			s.m.leasesLost.Inc()
			s.log.Warn().Int("partition", p.id).Msg("no longer sure to hold the partition's lease; letting the partition go without emitting")
			return err
		}
		s.mu.Lock()
		p.lost = err
		s.mu.Unlock()
		s.log.Warn().Err(err).Int("partition", p.id).Msg("the consumer is gone; re-creating it")
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			cons, reset, rerr := p.reconnect(ctx)
			if rerr == nil {
				p.cons = cons
				p.lastDelivery = 0 // a new consumer counts its deliveries afresh
				s.mu.Lock()
				if reset {
					// The stream is another one: the held messages are gone
					// with the old one (their windows are still published),
					// and its sequences start afresh.
					p.inFlight, p.bySource, p.lastSeq = map[uint64]*pendingMsg{}, map[string][]*pendingMsg{}, 0
				}
				p.lost = nil
				p.lastProgress = time.Now()
				s.stats.ConsumersRecreated++
				s.mu.Unlock()
				s.m.recreated.Inc()
				s.log.Info().Int("partition", p.id).Bool("new_stream", reset).Msg("consumer re-created; consuming again")
				break
			}
			s.log.Warn().Err(rerr).Int("partition", p.id).Msg("re-creating the consumer failed; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// gone reports whether err says the consumer or its stream no longer exists.
func gone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrMsgIteratorClosed)
}

// consume reads the consumer until ctx ends (nil) or the consumer is lost
// (the error).
func (p *partition) consume(ctx context.Context) error {
	s := p.s
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(512)}
	if p.id >= 0 {
		opts = append(opts, jetstream.PullPriorityGroup(PriorityGroup))
	}
	// The handoff record before the first pull: what is pulled waits
	// unacknowledged, and no message may be handled without the record.
	var handoffs <-chan jetstream.KeyValueEntry
	if w, stopWatch := p.watchHandoff(ctx); w != nil {
		defer stopWatch()
		handoffs = w.Updates()
	}
	first, err := p.cons.Messages(opts...)
	if err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	it := &pull{it: first}
	defer it.stop()
	// At the end, stop pulling but keep what was pulled: it is handed back
	// below rather than left for the server to redeliver after AckWait.
	stop := context.AfterFunc(ctx, it.drain)
	defer stop()
	lastMsg := time.Now()
	p.reconnects = s.cfg.Bus.Conn().Stats().Reconnects
	started := time.Now()
	lastInfo, lastIdle, lastKeep := time.Time{}, time.Time{}, started
	consumeErrors := 0
	leaseInDoubt := false
	for {
		msg, err := it.current().Next(jetstream.NextMaxWait(250 * time.Millisecond))
		if ctx.Err() != nil {
			p.handBack(it.current(), msg)
			return nil
		}
		if p.lease.gone(time.Now()) {
			it.drain() // or what is handed back comes back to this pull
			p.handBack(it.current(), msg)
			return errLeaseLost
		}
		leaseInDoubt = p.noteLease(time.Now(), leaseInDoubt)
		timeout := errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
		switch {
		case timeout:
		case err != nil:
			if gone(err) {
				if _, ierr := p.cons.Info(ctx); ierr != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return err
				}
			}
			if consumeErrors++; consumeErrors == 1 || consumeErrors%100 == 0 {
				s.log.Warn().Err(err).Int("partition", p.id).Int("count", consumeErrors).Msg("consume error")
			}
			time.Sleep(100 * time.Millisecond)
		default:
			lastMsg = time.Now()
			p.onMessage(ctx, msg, started)
		}
		handoffs = p.pollHandoff(handoffs)
		now := time.Now()
		if now.Sub(lastInfo) >= time.Second {
			lastInfo = now
			silent, err := p.lookAtServer(ctx, now, lastMsg)
			if err != nil {
				return err
			}
			if silent {
				fresh, ferr := p.cons.Messages(opts...)
				if ferr != nil {
					return fmt.Errorf("aggregator: %w", ferr)
				}
				it.replace(fresh) // what the old one buffered comes back after AckWait, into held windows (a delivery gap)
				if ctx.Err() != nil {
					it.drain()
				}
				s.m.pullsRenewed.Inc()
				lastMsg = now
			}
		}
		// Sources quiet for IdleAfter have their windows closed by the
		// clock. Quiet is judged by the stream's clock (when the server
		// stored the messages): against the latest message while messages
		// flow, so that a consumer that falls behind does not take sources
		// whose messages wait for it for quiet ones; against the wall clock
		// when nothing comes.
		if ((timeout && p.inputQuiet) || (!timeout && now.Sub(lastIdle) >= 250*time.Millisecond)) && !p.holding(now) && p.lease.valid(now) {
			lastIdle = now
			at := now
			if !timeout {
				at = p.lastStored
			}
			s.mu.Lock()
			closed := p.agg.AdvanceIdle(at, s.cfg.IdleAfter)
			s.mu.Unlock()
			if len(closed) > 0 {
				if err := p.emit(ctx, closed); err != nil && !errors.Is(err, errLeaseLost) && ctx.Err() == nil {
					s.log.Warn().Err(err).Msg("emitting windows failed")
				}
			}
		}
		if p.id >= 0 && now.Sub(lastKeep) > s.cfg.AckWait/3 {
			lastKeep = now
			p.keepAlive()
		}
	}
}

// pull is the partition's message iterator, replaced when it goes silent
// (see pullSilentAfter); its lock guards the swap against the drain at the
// end, which runs on another goroutine.
type pull struct {
	mu sync.Mutex
	it jetstream.MessagesContext
}

// current is the iterator; only the goroutine that replaces it calls it.
func (p *pull) current() jetstream.MessagesContext { return p.it }

func (p *pull) replace(fresh jetstream.MessagesContext) {
	p.mu.Lock()
	p.it.Stop()
	p.it = fresh
	p.mu.Unlock()
}

func (p *pull) drain() { p.mu.Lock(); p.it.Drain(); p.mu.Unlock() }
func (p *pull) stop()  { p.mu.Lock(); p.it.Stop(); p.mu.Unlock() }

// noteLease logs when the lease goes in doubt and when it is renewed; it
// returns whether it is in doubt at now.
func (p *partition) noteLease(now time.Time, wasInDoubt bool) bool {
	doubt := !p.lease.valid(now)
	switch {
	case doubt && !wasInDoubt:
		p.s.log.Warn().Int("partition", p.id).Msg("the partition's lease is in doubt (no renewal reached the server lately); its windows stay open until it is renewed")
	case !doubt && wasInDoubt:
		p.s.log.Info().Int("partition", p.id).Msg("the partition's lease is renewed; emitting again")
	}
	return doubt
}

// onMessage aggregates msg and emits the windows that closed, while the
// lease is held for sure (in doubt they stay open, and the input held,
// until it is renewed or gone).
func (p *partition) onMessage(ctx context.Context, msg jetstream.Msg, started time.Time) {
	s := p.s
	now := time.Now()
	if p.holdFor > 0 && p.hold.IsZero() {
		s.mu.Lock()
		p.hold = now.Add(p.holdFor)
		s.mu.Unlock()
		s.log.Info().Int("partition", p.id).Dur("after", now.Sub(started)).Msg("first message of the partition; holding windows open")
	}
	p.handle(msg)
	if p.holding(now) || !p.lease.valid(now) {
		return
	}
	s.mu.Lock()
	closed := p.agg.Closed()
	s.mu.Unlock()
	if len(closed) == 0 {
		return
	}
	// A lease lost meanwhile ends the consume loop at its top.
	if err := p.emit(ctx, closed); err != nil && !errors.Is(err, errLeaseLost) && ctx.Err() == nil {
		s.log.Warn().Err(err).Msg("emitting windows failed")
	}
}

// lookAtServer samples the consumer's state (call it once a second): the
// backlog, whether the input is quiet, whether the connection was lost. It
// reports whether the pull went silent — messages waiting on the server, a
// pull allowed, none received for pullSilentAfter since lastMsg — and the
// error when the consumer is gone.
func (p *partition) lookAtServer(ctx context.Context, now, lastMsg time.Time) (silent bool, err error) {
	s := p.s
	// Once a second is soon enough: what a lost connection took comes
	// back only after AckWait, and while it is down the consumer's
	// info fails, so inputQuiet keeps the clock from closing windows.
	p.watchConnection(now)
	info, err := p.cons.Info(ctx)
	switch {
	case err == nil:
		s.mu.Lock()
		p.backlog = info.NumPending
		s.mu.Unlock()
	case gone(err) && ctx.Err() == nil:
		return false, err
	}
	// Quiet also means every delivery the server awaits an ack for is one
	// this partition holds: more is a delivery lost in flight, which comes
	// back after AckWait.
	s.mu.Lock()
	held := len(p.inFlight)
	s.mu.Unlock()
	known := err == nil // the info came
	p.inputQuiet = known && info.NumPending == 0 && info.NumAckPending <= held
	if !known || info.NumPending == 0 || info.NumAckPending >= info.Config.MaxAckPending || now.Sub(lastMsg) <= pullSilentAfter {
		return false, nil
	}
	s.log.Warn().Int("partition", p.id).Uint64("waiting", info.NumPending).Dur("silent_for", now.Sub(lastMsg)).
		Msg("messages wait on the server but the pull went silent (a pull request the server lost); pulling afresh")
	return true, nil
}

// handBack negatively acknowledges msg (if any) and every message the
// draining iterator still buffers, so the next owner gets them at once.
func (p *partition) handBack(it jetstream.MessagesContext, msg jetstream.Msg) {
	if msg != nil {
		_ = msg.Nak()
	}
	for {
		m, err := it.Next(jetstream.NextMaxWait(100 * time.Millisecond))
		if err != nil {
			return
		}
		_ = m.Nak()
	}
}

// keepAlive tells the server the held messages are still being worked on,
// so they are not redelivered while their windows are open.
func (p *partition) keepAlive() {
	if !p.lease.valid(time.Now()) {
		return // the next owner is to get them
	}
	p.s.mu.Lock()
	held := make([]jetstream.Msg, 0, len(p.inFlight))
	for _, m := range p.inFlight {
		held = append(held, m.msg)
	}
	p.s.mu.Unlock()
	for _, m := range held {
		_ = m.InProgress()
	}
}

// release lets the partition go: it hands it off (see handOff) or, when it
// cannot, hands held messages back (negative acknowledgement) so that the
// next owner of the partition gets them at once. Unpartitioned, the consumer
// is rewound at the next start instead.
func (p *partition) release() {
	s := p.s
	if p.id >= 0 {
		p.handOff() // on success nothing is held any more
	}
	s.mu.Lock()
	held := p.inFlight
	p.inFlight, p.bySource = map[uint64]*pendingMsg{}, map[string][]*pendingMsg{}
	s.mu.Unlock()
	if p.id < 0 {
		return
	}
	for _, m := range held {
		_ = m.msg.Nak()
	}
	// The partition is not unpinned here: the server would pin the next
	// waiting pull request, which may be one this instance left behind, and
	// the compose test then saw a partition stay unconsumed for minutes.
	// The pin of a stopped instance expires after PinnedTTL.
}
