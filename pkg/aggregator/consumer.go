package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/streams"
)

// unpartitionedConsumer finds or creates the durable consumer on the
// PERFORMANCE stream. A consumer found with messages delivered but not
// acknowledged — held by a previous run that crashed — is rewound to its ack
// floor, so that those messages come back at once and in order, before any
// window they belong to can close. Messages acked above the floor come back
// too; their windows were published, and a recomputation is dropped by dedup.
// A missing consumer starts after the last stored message (or at the first
// with FromBeginning), or at resumeAt when it is positive: a consumer
// re-created under a running service.
func (s *Service) unpartitionedConsumer(ctx context.Context, resumeAt uint64) (jetstream.Consumer, error) {
	js := s.cfg.Bus.JetStream()
	cons, err := js.Consumer(ctx, streams.Performance, s.cfg.Name)
	switch {
	case err == nil:
		info := cons.CachedInfo()
		if info.NumAckPending == 0 || resumeAt > 0 {
			return cons, nil
		}
		start := info.AckFloor.Stream + 1
		if info.AckFloor.Stream == 0 {
			start = max(info.Config.OptStartSeq, 1)
		}
		cfg := info.Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, start, nil
		if err := js.DeleteConsumer(ctx, streams.Performance, s.cfg.Name); err != nil {
			return nil, fmt.Errorf("aggregator: rewind consumer %s: %w", s.cfg.Name, err)
		}
		s.log.Info().Uint64("from_seq", start).Int("unacked", info.NumAckPending).Msg("rewound the consumer to its ack floor")
		cons, err = js.CreateConsumer(ctx, streams.Performance, cfg)
	case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
		// Start after the last stored message (or at the first), recorded as
		// a sequence so that a rewind knows where the consumer began.
		stream, serr := s.ensureStream(ctx, streams.Performance)
		if serr != nil {
			return nil, serr
		}
		start := resumeAt
		if start == 0 {
			start = stream.CachedInfo().State.LastSeq + 1
			if s.cfg.FromBeginning {
				start = 1
			}
		}
		cons, err = js.CreateConsumer(ctx, streams.Performance, jetstream.ConsumerConfig{
			Durable: s.cfg.Name, Description: "jetmon aggregator", FilterSubjects: InputSubjects,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: max(5*time.Minute, 4*(s.cfg.Window+s.cfg.Lateness)),
			MaxAckPending: s.cfg.MaxPending, MaxDeliver: -1,
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("aggregator: consumer %s on %s: %w", s.cfg.Name, streams.Performance, err)
	}
	return cons, nil
}

// ensureStream returns stream name, creating it from its definition in
// package streams when the server has lost it.
func (s *Service) ensureStream(ctx context.Context, name string) (jetstream.Stream, error) {
	js := s.cfg.Bus.JetStream()
	st, err := js.Stream(ctx, name)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		if err != nil {
			return nil, fmt.Errorf("aggregator: stream %s: %w", name, err)
		}
		return st, nil
	}
	defs, err := streams.Definitions()
	if err != nil {
		return nil, fmt.Errorf("aggregator: stream %s: %w", name, err)
	}
	for _, d := range defs {
		if d.Config.Name != name {
			continue
		}
		if _, err := streams.Apply(ctx, js, []streams.Definition{d}, streams.Options{Replicas: s.cfg.Bus.StreamReplicas()}); err != nil {
			return nil, fmt.Errorf("aggregator: re-create stream %s: %w", name, err)
		}
		s.log.Warn().Str("stream", name).Msg("the stream was missing; re-created it from its definition")
		if st, err = js.Stream(ctx, name); err != nil {
			return nil, fmt.Errorf("aggregator: stream %s: %w", name, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("aggregator: stream %s: no definition", name)
}

// reconnect finds or re-creates the partition's consumer (and its stream)
// after the server lost it. It reports whether the stream is another one
// than before (deleted and re-created): its sequences start afresh.
func (p *partition) reconnect(ctx context.Context) (jetstream.Consumer, bool, error) {
	s := p.s
	var created time.Time
	if p.id < 0 {
		st, err := s.ensureStream(ctx, streams.Performance)
		if err != nil {
			return nil, false, err
		}
		created = st.CachedInfo().Created
	} else {
		if err := s.ensureInput(ctx); err != nil {
			return nil, false, err
		}
		st, err := s.cfg.Bus.JetStream().Stream(ctx, InputStream)
		if err != nil {
			return nil, false, err
		}
		created = st.CachedInfo().Created
	}
	reset := !created.Equal(p.streamCreated)
	var cons jetstream.Consumer
	var err error
	if p.id < 0 {
		resumeAt := uint64(1)
		if !reset {
			resumeAt = p.resumeSeq()
		}
		cons, err = s.unpartitionedConsumer(ctx, resumeAt)
	} else {
		cons, err = s.partitionConsumer(ctx, p.id)
	}
	if err != nil {
		return nil, false, err
	}
	p.streamCreated = created
	return cons, reset, nil
}

// resumeSeq is where a re-created consumer on the same stream starts: at the
// first message held, or after the last one received. Messages acked after
// that come back too; they are duplicates (or late) by then.
func (p *partition) resumeSeq() uint64 {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	start := p.lastSeq + 1
	for _, m := range p.inFlight {
		start = min(start, m.seq)
	}
	return max(start, 1)
}
