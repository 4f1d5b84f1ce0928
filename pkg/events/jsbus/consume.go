package jsbus

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

// Headers of a dead-lettered message (besides the original ones).
const (
	HeaderDeadReason      = "Jetmon-Dead-Reason"
	HeaderOriginalSubject = "Jetmon-Original-Subject"
	HeaderOriginalStream  = "Jetmon-Original-Stream"
	HeaderOriginalSeq     = "Jetmon-Original-Sequence"
	HeaderDeliveries      = "Jetmon-Deliveries"
	HeaderBatchIndex      = "Jetmon-Batch-Index"
)

// eventStreams are the streams a pattern starting with a wildcard spans.
var eventStreams = []string{streams.Health, streams.Monitoring, streams.Performance, streams.System, streams.Validation}

// streamsFor returns the streams whose subjects a pattern can match.
func streamsFor(pattern string) ([]string, error) {
	first, _, _ := strings.Cut(pattern, ".")
	switch first {
	case "*", ">":
		return eventStreams, nil
	case "alerts":
		return []string{streams.Alerts}, nil
	case "deadletter":
		return []string{streams.DeadLetter}, nil
	}
	switch fam := events.Family(first); fam {
	case events.FamilyPerformance, events.FamilyHealth, events.FamilyMonitoring, events.FamilyValidation, events.FamilySystem:
		return []string{streams.ForFamily(fam)}, nil
	}
	return nil, fmt.Errorf("jsbus: subscribe %q: no stream stores subjects starting with %q: %w", pattern, first, events.ErrInvalidPattern)
}

// subscription is one Subscribe: a consumer run per stream the pattern spans.
type subscription struct {
	b          *Bus
	id         string
	pattern    string
	cfg        events.SubscribeConfig
	h          events.Handler
	maxDeliver int
	ctx        context.Context // handlers' context; cancelled by stop
	cancel     context.CancelFunc
	runs       []*consumerRun
	stopped    atomic.Bool
}

var subSeq atomic.Uint64

// Subscribe starts pull consumers for pattern on every stream it spans. See
// [events.Subscriber]. StartAtSequence needs a pattern within one stream.
func (b *Bus) Subscribe(ctx context.Context, pattern string, h events.Handler, opts ...events.SubscribeOption) (events.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("jsbus: subscribe %q: %w", pattern, err)
	}
	if b.isClosed.Load() {
		return nil, fmt.Errorf("jsbus: subscribe %q: %w", pattern, events.ErrClosed)
	}
	if err := events.ValidatePattern(pattern); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("jsbus: subscribe %q: %w: nil handler", pattern, events.ErrInvalidOption)
	}
	cfg, err := events.NewSubscribeConfig(opts...)
	if err != nil {
		return nil, err
	}
	names, err := streamsFor(pattern)
	if err != nil {
		return nil, err
	}
	if cfg.Start == events.StartSequence && len(names) > 1 {
		return nil, fmt.Errorf("jsbus: subscribe %q: %w: StartAtSequence needs a pattern within one stream; %q spans %d",
			pattern, events.ErrInvalidOption, pattern, len(names))
	}
	sub := &subscription{
		b: b, id: "js-" + strconv.FormatUint(subSeq.Add(1), 10), pattern: pattern, cfg: cfg, h: h,
		maxDeliver: cmp.Or(cfg.MaxDeliver, b.cfg.MaxDeliver), // events.MaxDeliver only allows >= 1
	}
	sub.ctx, sub.cancel = context.WithCancel(context.Background())
	for _, stream := range names {
		run, err := sub.start(ctx, stream)
		if err != nil {
			sub.stop(ctx, true)
			return nil, err
		}
		sub.runs = append(sub.runs, run)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		sub.stop(ctx, true)
		return nil, fmt.Errorf("jsbus: subscribe %q: %w", pattern, events.ErrClosed)
	}
	b.subs[sub] = struct{}{}
	b.mu.Unlock()
	return sub, nil
}

func (s *subscription) ID() string      { return s.id }
func (s *subscription) Pattern() string { return s.pattern }

// Unsubscribe stops delivery. An ephemeral consumer is deleted; a durable or
// group consumer stays for a later Subscribe with the same name.
func (s *subscription) Unsubscribe() error {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.b.cfg.PublishTimeout)
	defer cancel()
	s.stop(ctx, false)
	return nil
}

// stop stops every run, waiting (bounded by ctx) for handlers in progress
// unless called from one. Ephemeral consumers are deleted.
func (s *subscription) stop(ctx context.Context, _ bool) {
	if !s.stopped.CompareAndSwap(false, true) {
		return
	}
	for _, r := range s.runs {
		r.stop(ctx)
	}
	s.cancel()
}

// consumerRun consumes one stream for a subscription, and recreates the
// consumer if the server loses it.
type consumerRun struct {
	sub        *subscription
	stream     string
	filter     string
	name       string // durable or group name; "" for ephemeral
	mu         sync.Mutex
	serverName string // server-side consumer name (assigned for ephemerals)
	cc         jetstream.ConsumeContext
	lastSeq    atomic.Uint64 // stream sequence of the last message acked
	// handled remembers, for batch messages awaiting redelivery, which items
	// already succeeded, so a redelivery to this instance skips them.
	handledMu sync.Mutex
	handled   map[uint64][]bool
	recreate  chan struct{}
	done      chan struct{}
	inHandler atomic.Int32 // > 0 while the application's handler runs
}

func (s *subscription) start(ctx context.Context, stream string) (*consumerRun, error) {
	r := &consumerRun{
		sub: s, stream: stream, filter: events.FilterSubject(s.pattern), name: s.cfg.ConsumerName(),
		recreate: make(chan struct{}, 1), done: make(chan struct{}),
	}
	cons, err := r.findOrCreate(ctx, 0)
	if err != nil {
		return nil, err
	}
	if err := r.consume(cons); err != nil {
		return nil, err
	}
	s.b.wg.Go(r.supervise)
	return r, nil
}

// findOrCreate finds or creates the server-side consumer. resumeAfter > 0 starts
// a recreated consumer after that stream sequence.
func (r *consumerRun) findOrCreate(ctx context.Context, resumeAfter uint64) (jetstream.Consumer, error) {
	b, s := r.sub.b, r.sub
	if r.name != "" {
		if err := r.checkNameElsewhere(ctx); err != nil {
			return nil, err
		}
		cons, err := b.js.Consumer(ctx, r.stream, r.name)
		switch {
		case err == nil:
			if have := cons.CachedInfo().Config.FilterSubject; have != r.filter {
				return nil, fmt.Errorf("jsbus: subscribe %q as %q on %s: %w (it filters %q)",
					s.pattern, r.name, r.stream, events.ErrConsumerConflict, have)
			}
			r.setName(cons)
			return cons, nil
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			return nil, fmt.Errorf("jsbus: subscribe %q: look up consumer %s on %s: %w", s.pattern, r.name, r.stream, err)
		}
	}
	cc := jetstream.ConsumerConfig{
		Description:   "jetmon subscription to " + s.pattern,
		FilterSubject: r.filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxDeliver:    s.maxDeliver,
		MaxAckPending: b.cfg.MaxAckPending,
	}
	switch {
	case s.cfg.Durable != "":
		cc.Durable = s.cfg.Durable
	case s.cfg.Group != "":
		cc.Name, cc.InactiveThreshold = s.cfg.Group, time.Hour
	default:
		cc.InactiveThreshold = time.Minute
	}
	switch {
	case resumeAfter > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, resumeAfter+1
	case s.cfg.Start == events.StartAll:
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	case s.cfg.Start == events.StartTime:
		t := s.cfg.StartAt
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case s.cfg.Start == events.StartSequence:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.cfg.StartSeq
	default:
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	cons, err := b.js.CreateConsumer(ctx, r.stream, cc)
	if errors.Is(err, jetstream.ErrConsumerExists) && r.name != "" {
		return r.findOrCreate(ctx, resumeAfter) // created concurrently by another member
	}
	if err != nil {
		return nil, fmt.Errorf("jsbus: subscribe %q: create consumer on %s: %w", s.pattern, r.stream, err)
	}
	r.setName(cons)
	return cons, nil
}

// checkNameElsewhere enforces that a durable or group name means one pattern
// bus-wide, although JetStream scopes consumer names per stream.
func (r *consumerRun) checkNameElsewhere(ctx context.Context) error {
	b := r.sub.b
	for _, stream := range append(eventStreams, streams.Alerts, streams.DeadLetter) {
		if stream == r.stream {
			continue
		}
		cons, err := b.js.Consumer(ctx, stream, r.name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("jsbus: subscribe %q: look up consumer %s on %s: %w", r.sub.pattern, r.name, stream, err)
		}
		if have := cons.CachedInfo().Config.FilterSubject; have != r.filter {
			return fmt.Errorf("jsbus: subscribe %q as %q: %w (on %s it filters %q)",
				r.sub.pattern, r.name, events.ErrConsumerConflict, stream, have)
		}
	}
	return nil
}

func (r *consumerRun) setName(cons jetstream.Consumer) {
	r.mu.Lock()
	r.serverName = cons.CachedInfo().Name
	r.mu.Unlock()
}

func (r *consumerRun) consume(cons jetstream.Consumer) error {
	cc, err := cons.Consume(r.handle,
		jetstream.PullMaxMessages(pullSize(r.sub.b.cfg)),
		jetstream.PullExpiry(10*time.Second),
		jetstream.ConsumeErrHandler(r.onError))
	if err != nil {
		return fmt.Errorf("jsbus: subscribe %q: consume %s: %w", r.sub.pattern, r.stream, err)
	}
	r.mu.Lock()
	r.cc = cc
	r.mu.Unlock()
	return nil
}

// pullSize is how many messages one member of a consumer asks for: PullBatch,
// but at most a quarter of MaxAckPending.
//
// Pull size is not what spreads a group's work: the server serves the pull
// requests waiting on a consumer round-robin, one message at a time (a request
// with messages still to come goes back to the end of the queue), so every
// member with a pull outstanding gets an equal share of a backlog whatever its
// size. What the size bounds is how many messages a member can hold unacked
// in its buffer — taken from the consumer's MaxAckPending window, which all
// members share. A quarter of the window leaves at least three quarters to
// the others while one member is slow. Small pulls (the earlier 16) bought
// nothing for sharing and cost a pull request per 8 messages, which made
// durable consumers run at a fraction of a raw one.
func pullSize(c Config) int {
	return max(1, min(c.PullBatch, c.MaxAckPending/4))
}

// onError counts consumer errors and asks the supervisor to check the
// consumer when it may be gone.
func (r *consumerRun) onError(_ jetstream.ConsumeContext, err error) {
	b := r.sub.b
	b.stats.consumeErrors.Add(1)
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) {
		select {
		case r.recreate <- struct{}{}:
		default:
		}
	}
	if !r.sub.stopped.Load() {
		b.log.Debug().Err(err).Str("stream", r.stream).Str("pattern", r.sub.pattern).Msg("consumer error")
	}
}

// supervise recreates the consumer when the server lost it (deleted, or
// gone with a leader that did not come back), resuming after the last acked
// message.
func (r *consumerRun) supervise() {
	b := r.sub.b
	for {
		select {
		case <-r.done:
			return
		case <-b.done:
			return
		case <-r.recreate:
		}
		for attempt := 0; !r.sub.stopped.Load(); attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
			err := r.recover(ctx)
			cancel()
			if err == nil {
				break
			}
			b.log.Warn().Err(err).Str("stream", r.stream).Msg("consumer recovery failed; retrying")
			if !b.sleep(context.Background(), min(time.Second<<min(attempt, 5), 30*time.Second)) {
				return
			}
		}
	}
}

func (r *consumerRun) recover(ctx context.Context) error {
	b := r.sub.b
	r.mu.Lock()
	name := r.serverName
	r.mu.Unlock()
	_, err := b.js.Consumer(ctx, r.stream, name)
	if err == nil {
		return nil // still there; nats.go re-pulls on its own
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	r.mu.Lock()
	old := r.cc
	r.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	cons, err := r.findOrCreate(ctx, r.lastSeq.Load())
	if err != nil {
		return err
	}
	if err := r.consume(cons); err != nil {
		return err
	}
	b.stats.consumersRecreated.Add(1)
	b.log.Info().Str("stream", r.stream).Str("pattern", r.sub.pattern).Uint64("resume_after", r.lastSeq.Load()).Msg("consumer recreated")
	return nil
}

func (r *consumerRun) stop(ctx context.Context) {
	close(r.done)
	r.mu.Lock()
	cc, name := r.cc, r.serverName
	r.mu.Unlock()
	if cc != nil {
		cc.Stop()
		// nats.go unsubscribes the pull inbox in the background; until the
		// server knows, it may hand new messages to the stale pull request,
		// and they would wait out AckWait. Wait for it — unless a handler is
		// running, which may be the caller itself.
		if r.inHandler.Load() == 0 {
			select {
			case <-cc.Closed():
			case <-ctx.Done():
			}
		}
	}
	if r.name == "" && name != "" && !r.sub.b.isClosed.Load() {
		_ = r.sub.b.js.DeleteConsumer(ctx, r.stream, name) // the server would after InactiveThreshold anyway
	}
}

// handle processes one message: decode (a batch or one event), call the
// handler, then ack, nak with a delay, or dead-letter and terminate.
func (r *consumerRun) handle(msg jetstream.Msg) {
	s, b := r.sub, r.sub.b
	if s.stopped.Load() {
		_ = msg.Nak() // redelivered at once to whoever consumes next
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	attempt := int(md.NumDelivered)
	ctx := events.ContextWithDelivery(s.ctx, events.Delivery{
		SubscriptionID: s.id, Subject: msg.Subject(), Sequence: md.Sequence.Stream, Attempt: attempt, Published: md.Timestamp,
	})
	data := msg.Data()
	if isBatch(msg) {
		r.handleBatch(ctx, msg, md)
		return
	}
	ev, err := b.decoder.Decode(data)
	if err != nil {
		b.stats.decodeErrors.Add(1)
		if dlErr := b.deadLetter(msg, md, data, -1, "undecodable: "+err.Error()); dlErr != nil {
			_ = msg.NakWithDelay(r.delay(attempt))
			return
		}
		_ = msg.Term()
		r.advance(md.Sequence.Stream)
		return
	}
	herr := r.call(ctx, ev)
	switch {
	case herr == nil:
		_ = msg.Ack()
		r.advance(md.Sequence.Stream)
	case attempt >= s.maxDeliver:
		if dlErr := b.deadLetter(msg, md, data, -1, fmt.Sprintf("handler failed %d times: %v", attempt, herr)); dlErr != nil {
			_ = msg.NakWithDelay(r.delay(attempt))
			return
		}
		_ = msg.TermWithReason("dead-lettered")
		r.advance(md.Sequence.Stream)
	default:
		_ = msg.NakWithDelay(r.delay(attempt))
	}
}

// handleBatch gives every item of a batch message its own chance: a failing
// or undecodable item does not stop the others. Undecodable items are
// dead-lettered at once; if any handler failed, the message is redelivered,
// and items that already succeeded here are skipped; when deliveries run out,
// only the failed items are dead-lettered.
func (r *consumerRun) handleBatch(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) {
	s, b := r.sub, r.sub.b
	seq, attempt := md.Sequence.Stream, int(md.NumDelivered)
	r.handledMu.Lock()
	done := r.handled[seq]
	r.handledMu.Unlock()
	type failure struct {
		idx int
		raw []byte
		err error
	}
	var failed []failure
	var progress []bool
	err := b.decoder.EachInBatch(msg.Data(), func(it events.BatchItem) {
		progress = append(progress, false)
		if it.Index < len(done) && done[it.Index] {
			progress[it.Index] = true
			return
		}
		if it.Err != nil {
			b.stats.decodeErrors.Add(1)
			if dlErr := b.deadLetter(msg, md, it.Raw, it.Index, "undecodable batch item: "+it.Err.Error()); dlErr != nil {
				failed = append(failed, failure{it.Index, bytes.Clone(it.Raw), dlErr})
				return
			}
			progress[it.Index] = true
			return
		}
		if herr := r.call(ctx, it.Event); herr != nil {
			failed = append(failed, failure{it.Index, bytes.Clone(it.Raw), herr})
			return
		}
		progress[it.Index] = true
	})
	if err != nil { // the array itself is broken: nothing can be told apart
		b.stats.decodeErrors.Add(1)
		if dlErr := b.deadLetter(msg, md, msg.Data(), -1, "undecodable batch: "+err.Error()); dlErr != nil {
			_ = msg.NakWithDelay(r.delay(attempt))
			return
		}
		r.forget(seq)
		_ = msg.Term()
		r.advance(seq)
		return
	}
	if len(failed) == 0 {
		r.forget(seq)
		_ = msg.Ack()
		r.advance(seq)
		return
	}
	if attempt < s.maxDeliver {
		r.handledMu.Lock()
		if r.handled == nil {
			r.handled = map[uint64][]bool{}
		}
		r.handled[seq] = progress
		r.handledMu.Unlock()
		_ = msg.NakWithDelay(r.delay(attempt))
		return
	}
	for _, f := range failed {
		if dlErr := b.deadLetter(msg, md, f.raw, f.idx, fmt.Sprintf("handler failed %d times: %v", attempt, f.err)); dlErr != nil {
			_ = msg.NakWithDelay(r.delay(attempt))
			return
		}
	}
	r.forget(seq)
	_ = msg.TermWithReason("dead-lettered")
	r.advance(seq)
}

func (r *consumerRun) forget(seq uint64) {
	r.handledMu.Lock()
	delete(r.handled, seq)
	r.handledMu.Unlock()
}

func (r *consumerRun) advance(seq uint64) {
	for {
		cur := r.lastSeq.Load()
		if seq <= cur || r.lastSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// call runs the handler with panics contained, and counts the outcome.
func (r *consumerRun) call(ctx context.Context, ev events.Event) error {
	b := r.sub.b
	r.inHandler.Add(1)
	err := events.SafeHandle(ctx, r.sub.h, ev)
	r.inHandler.Add(-1)
	if err == nil {
		b.stats.delivered.Add(1)
		return nil
	}
	b.stats.handlerErrors.Add(1)
	if _, ok := errors.AsType[*events.PanicError](err); ok {
		b.stats.panics.Add(1)
	}
	return err
}

// delay is the wait before redelivery number attempt+1: RedeliveryDelay,
// doubling per attempt, at most 30 s.
func (r *consumerRun) delay(attempt int) time.Duration {
	d := r.sub.b.cfg.RedeliveryDelay << min(max(attempt-1, 0), 10)
	return min(d, 30*time.Second)
}

func isBatch(msg jetstream.Msg) bool {
	if h := msg.Headers(); h != nil && h.Get(HeaderBatch) != "" {
		return true
	}
	for _, c := range msg.Data() {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '[':
			return true
		}
		return false
	}
	return false
}

// DeadLetter stores data — msg's payload, or item idx of its batch (idx -1
// for the whole message) — on "deadletter.<subject>" with the reason, the
// original subject, stream, sequence and delivery count in headers, and waits
// for the server to store it. Consumers that drive JetStream themselves (the
// aggregator) use it to dead-letter like the bus does.
func (b *Bus) DeadLetter(msg jetstream.Msg, md *jetstream.MsgMetadata, data []byte, idx int, reason string) error {
	return b.deadLetter(msg, md, data, idx, reason)
}

func (b *Bus) deadLetter(msg jetstream.Msg, md *jetstream.MsgMetadata, data []byte, idx int, reason string) error {
	h := nats.Header{}
	for k, v := range msg.Headers() {
		if k != HeaderMsgID {
			h[k] = v
		}
	}
	h.Set(HeaderDeadReason, reason)
	h.Set(HeaderOriginalSubject, msg.Subject())
	h.Set(HeaderOriginalStream, md.Stream)
	h.Set(HeaderOriginalSeq, strconv.FormatUint(md.Sequence.Stream, 10))
	h.Set(HeaderDeliveries, strconv.FormatUint(md.NumDelivered, 10))
	if idx >= 0 {
		h.Set(HeaderBatchIndex, strconv.Itoa(idx))
	}
	h.Set(HeaderMsgID, fmt.Sprintf("dl-%s-%d-%d", md.Stream, md.Sequence.Stream, idx))
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel()
	if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: streams.DeadLetterPrefix + msg.Subject(), Data: data, Header: h}); err != nil {
		b.log.Error().Err(err).Str("subject", msg.Subject()).Msg("dead-lettering failed; the message will be redelivered")
		return err
	}
	b.stats.deadLettered.Add(1)
	b.log.Warn().Str("subject", msg.Subject()).Uint64("seq", md.Sequence.Stream).Str("reason", reason).Msg("dead-lettered")
	return nil
}
