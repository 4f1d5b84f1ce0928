package aggregator

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/streams"
)

// Run consumes until ctx ends. A partition it lets go (at shutdown, or when
// membership moves it) is handed off: its open windows are emitted, its
// input acknowledged, and a record in HandoffBucket tells the next owner to
// count what comes later for those windows in amendments. When that cannot
// be done (the connection was lost within AckWait, or publishing fails),
// held messages are negatively acknowledged so that a peer takes them at
// once and recomputes their windows.
func (s *Service) Run(ctx context.Context) error {
	stopHistory := s.runHistory()
	defer stopHistory()
	if s.cfg.Partitions == 0 {
		cons, err := s.unpartitionedConsumer(ctx, 0)
		if err != nil {
			return err
		}
		p := s.newPartition(-1, cons, 0, nil)
		s.setReady(true)
		defer s.setReady(false)
		return p.run(ctx)
	}
	return s.runPartitioned(ctx)
}

// ensureInput creates the partitioned input stream if it is missing, and
// checks the partition count of an existing one.
func (s *Service) ensureInput(ctx context.Context) error {
	js := s.cfg.Bus.JetStream()
	n := s.cfg.Partitions
	want := jetstream.StreamConfig{
		Name: InputStream, Description: fmt.Sprintf("performance events to aggregate, in %d partitions by source", n),
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour,
		Replicas: max(s.cfg.Bus.StreamReplicas(), 1),
		Sources: []*jetstream.StreamSource{{
			Name:         streams.Performance,
			OptStartTime: new(time.Now()),
			SubjectTransforms: []jetstream.SubjectTransformConfig{
				{Source: "performance.operation.*.*", Destination: fmt.Sprintf("{{partition(%d,2)}}.performance.operation.{{wildcard(1)}}.{{wildcard(2)}}", n)},
				{Source: "performance.phase.end.*", Destination: fmt.Sprintf("{{partition(%d,1)}}.performance.phase.end.{{wildcard(1)}}", n)},
				{Source: "performance.metric.recorded.*", Destination: fmt.Sprintf("{{partition(%d,1)}}.performance.metric.recorded.{{wildcard(1)}}", n)},
			},
		}},
	}
	st, err := js.Stream(ctx, InputStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = js.CreateStream(ctx, want); err == nil {
			return nil
		}
		// A peer may have created it meanwhile (with its own start time).
		if st, err = js.Stream(ctx, InputStream); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if have := st.CachedInfo().Config.Description; have != want.Description {
		return fmt.Errorf("aggregator: stream %s exists with %w (%q); delete it to change Partitions", InputStream, ErrPartitioning, have)
	}
	return nil
}

// partitionConsumer finds or creates the durable consumer of partition p.
func (s *Service) partitionConsumer(ctx context.Context, p int) (jetstream.Consumer, error) {
	js := s.cfg.Bus.JetStream()
	cons, err := js.CreateOrUpdateConsumer(ctx, InputStream, jetstream.ConsumerConfig{
		Durable: fmt.Sprintf("%s-p%d", s.cfg.Name, p), Description: "jetmon aggregator partition " + strconv.Itoa(p),
		FilterSubject: strconv.Itoa(p) + ".>", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: s.cfg.AckWait, MaxAckPending: s.cfg.MaxPending, MaxDeliver: -1,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned, PinnedTTL: s.cfg.PinnedTTL, PriorityGroups: []string{PriorityGroup},
	})
	if err != nil {
		return nil, fmt.Errorf("aggregator: partition %d consumer: %w", p, err)
	}
	return cons, nil
}

// ErrPartitioning reports an input stream made for another number of
// partitions than Options.Partitions.
var ErrPartitioning = errors.New("another partitioning")

// runPartitioned announces this instance, and starts and stops partition
// runners as the membership changes, until ctx ends.
func (s *Service) runPartitioned(ctx context.Context) error {
	// A cluster that is forming or electing leaders may time these out:
	// retry (a configuration error, such as another partitioning, is not
	// retried), so that the process does not exit and get restarted.
	var kv jetstream.KeyValue
	setup := func() error {
		if err := s.ensureInput(ctx); err != nil {
			if errors.Is(err, ErrPartitioning) {
				return backoff.Permanent(err)
			}
			return fmt.Errorf("aggregator: input stream: %w", err)
		}
		// On file storage: a bucket kept only in memory is lost when its
		// servers restart one by one faster than its replicas catch up
		// (a compose rolling restart left every aggregator unable to
		// announce itself for minutes).
		js := s.cfg.Bus.JetStream()
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: MembersBucket, TTL: s.cfg.MemberTTL, Storage: jetstream.FileStorage, Replicas: max(s.cfg.Bus.StreamReplicas(), 1),
		})
		if err != nil {
			// A bucket an earlier version made in memory cannot change its
			// storage: go on with it as it is.
			if existing, gerr := js.KeyValue(ctx, MembersBucket); gerr == nil {
				kv, err = existing, nil
			}
		}
		if err != nil {
			return fmt.Errorf("aggregator: members bucket: %w", err)
		}
		hkv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: HandoffBucket, TTL: handoffTTL, Storage: jetstream.FileStorage, Replicas: max(s.cfg.Bus.StreamReplicas(), 1),
		})
		if err != nil {
			return fmt.Errorf("aggregator: handoff bucket: %w", err)
		}
		s.handoffKV = hkv
		okv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: OwnersBucket, TTL: s.cfg.MemberTTL, Storage: jetstream.FileStorage, Replicas: max(s.cfg.Bus.StreamReplicas(), 1),
		})
		if err != nil {
			return fmt.Errorf("aggregator: owners bucket: %w", err)
		}
		s.ownersKV = okv
		return nil
	}
	notify := func(err error, wait time.Duration) {
		s.log.Warn().Err(err).Dur("retry_in", wait).Msg("setting up the partitioned input failed; retrying")
	}
	if err := backoff.RetryNotify(setup, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(5*time.Minute)), ctx), notify); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	running := map[int]runner{}
	forget := func(p int) {
		delete(running, p)
		s.mu.Lock()
		delete(s.parts, p)
		s.mu.Unlock()
	}
	// stopRunners lets partitions go all at once: each hands off (which
	// may take seconds) in parallel with the others.
	stopRunners := func(ps []int) {
		for _, p := range ps {
			running[p].cancel()
		}
		for _, p := range ps {
			<-running[p].done
			forget(p)
		}
	}
	every := max(s.cfg.MemberTTL/3, 100*time.Millisecond)
	stopAnnouncing := s.announce(ctx, kv, every)
	// A lease let go wakes the loop, so that the next owner takes the
	// partition at once rather than at the next tick.
	freed, stopWatching := s.watchLeases(ctx)
	defer func() {
		stopRunners(slices.Collect(maps.Keys(running)))
		stopWatching()
		stopAnnouncing()
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = kv.Delete(dctx, s.cfg.Instance)
		cancel()
		s.setReady(false)
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	waiting := map[int]bool{} // partitions whose lease another instance holds (logged once)
	for {
		members, err := s.members(ctx, kv)
		// A partition that ended by itself (its lease was lost) is taken
		// again below if it is still ours, once its lease can be had.
		for _, p := range ended(running) {
			forget(p)
		}
		if err == nil {
			owned := Assign(s.cfg.Partitions, members, s.cfg.Instance)
			var leaving []int
			for p := range running {
				if !owned[p] {
					s.log.Info().Int("partition", p).Msg("handing the partition over")
					leaving = append(leaving, p)
				}
			}
			stopRunners(leaving)
			for p := range owned {
				if _, ok := running[p]; ok {
					continue
				}
				l := s.tryLease(ctx, p, waiting)
				if l == nil {
					continue
				}
				cons, err := s.partitionConsumer(ctx, p)
				if err != nil {
					l.release()
					s.log.Warn().Err(err).Int("partition", p).Msg("cannot take the partition; retrying")
					continue
				}
				running[p] = s.startPartition(ctx, p, cons, l)
			}
			s.setReady(true)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-freed:
		}
	}
}

// members lists the instances alive (this one alone when the bucket is
// empty), or the test's view of them.
func (s *Service) members(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	if s.membersView != nil {
		return s.membersView(), nil
	}
	members, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []string{s.cfg.Instance}, nil
	}
	return members, err
}

// tryLease takes partition p's lease, or returns nil; waiting marks the
// partitions whose wait was logged (once each).
func (s *Service) tryLease(ctx context.Context, p int, waiting map[int]bool) *lease {
	l, err := s.acquireLease(ctx, p)
	if err != nil || l == nil {
		if !waiting[p] {
			waiting[p] = true
			s.log.Info().Err(err).Int("partition", p).Msg("waiting for the partition's lease: its previous owner still holds it")
		}
		return nil
	}
	delete(waiting, p)
	return l
}

// ended returns the partitions whose runner has ended.
func ended(running map[int]runner) []int {
	var out []int
	for p, r := range running {
		select {
		case <-r.done:
			out = append(out, p)
		default:
		}
	}
	return out
}

// runner is a running partition: cancel ends it (it hands off first), done
// is closed once it has ended and its lease is let go.
type runner struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startPartition runs partition p, whose lease l this instance holds, until
// the returned runner is cancelled or the lease is lost.
func (s *Service) startPartition(ctx context.Context, p int, cons jetstream.Consumer, l *lease) runner {
	// Keep windows open a while after taking a partition: a
	// previous owner's handed-back messages arrive once the pin
	// moves (PinnedTTL), mixed with new ones; one that vanished
	// holding messages gets them redelivered within AckWait.
	// The hold counts from the first message: the pin of a
	// vanished owner may take longer than its membership to go.
	holdFor := s.cfg.PinnedTTL + 2*time.Second
	if info, err := cons.Info(ctx); err == nil && info.NumAckPending > 0 {
		holdFor = s.cfg.AckWait + 2*time.Second
	}
	pctx, cancel := context.WithCancel(ctx)
	r := runner{cancel: cancel, done: make(chan struct{})}
	part := s.newPartition(p, cons, holdFor, l)
	go func() {
		defer close(r.done)
		// The lease is kept through the handoff that ends
		// run, and let go only after it.
		lctx, stopKeeping := context.WithCancel(context.WithoutCancel(pctx))
		kept := make(chan struct{})
		go func() { defer close(kept); l.keep(lctx) }()
		if err := part.run(pctx); err != nil {
			s.log.Warn().Err(err).Int("partition", p).Msg("partition stopped")
		}
		stopKeeping()
		<-kept
		// Out of Stats before the lease goes: a partition is listed only
		// while this instance holds it.
		s.mu.Lock()
		if s.parts[p] == part {
			delete(s.parts, p)
		}
		s.mu.Unlock()
		l.release()
	}()
	s.log.Info().Int("partition", p).Dur("hold", holdFor).Msg("took the partition")
	return r
}

// watchLeases returns a channel that receives when a partition's lease is
// let go (deleted), until stop is called; a nil channel when the watch
// cannot be set up (the loop's tick then finds the lease free).
func (s *Service) watchLeases(ctx context.Context) (freed <-chan struct{}, stop func()) {
	w, err := s.ownersKV.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		s.log.Warn().Err(err).Msg("cannot watch the partition leases; taking free ones at the next tick")
		return nil, func() {}
	}
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case <-ctx.Done():
				return
			case e, ok = <-w.Updates():
			}
			if !ok {
				return
			}
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch, func() { _ = w.Stop(); <-done }
}

// announce puts this instance in the members bucket now and then every
// every, on its own goroutine, so that handing partitions off never delays
// an announcement past MemberTTL (which made its peers take it for dead and
// move partitions under it). It goes on after ctx ends, until the returned
// function is called: a stopping instance still owns what it hands off.
func (s *Service) announce(ctx context.Context, kv jetstream.KeyValue, every time.Duration) (stop func()) {
	put := func(ctx context.Context) {
		if _, err := kv.Put(ctx, s.cfg.Instance, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("announcing this instance failed")
		}
	}
	put(ctx)
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-actx.Done():
				return
			case <-t.C:
				put(actx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Assign returns the partitions that instance owns among members, by
// rendezvous hashing: every instance computes the same split, and a change of
// membership moves only the partitions of the instance that came or went.
func Assign(partitions int, members []string, instance string) map[int]bool {
	owned := map[int]bool{}
	for p := range partitions {
		best, bestScore := "", uint64(0)
		for _, m := range members {
			h := fnv.New64a()
			_, _ = h.Write([]byte(m))
			// FNV alone keeps the order of similar names across partitions;
			// the splitmix64 finaliser makes every (member, partition) pair
			// an independent draw.
			x := h.Sum64() ^ (uint64(p)+1)*0x9e3779b97f4a7c15
			x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
			x = (x ^ x>>27) * 0x94d049bb133111eb
			if score := x ^ x>>31; best == "" || score > bestScore || (score == bestScore && m < best) {
				best, bestScore = m, score
			}
		}
		if best == instance {
			owned[p] = true
		}
	}
	return owned
}
