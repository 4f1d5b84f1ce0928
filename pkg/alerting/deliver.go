package alerting

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/jetmon/jetmon/internal/redact"
)

// startIntegrations starts one worker per receiver target.
func (s *Service) startIntegrations(cfg *Config) error {
	all := map[string][]*integration{}
	for _, r := range cfg.Receivers {
		ins, err := newIntegrations(r, s.opts.HTTPClient, &s.log, s.opts.ExternalURL)
		if err != nil {
			return err
		}
		if f := s.opts.Notify[r.Name]; f != nil {
			ins = append(ins, newIntegration(r.Name, len(ins), funcSender(f), true))
		}
		if len(ins) == 0 {
			return fmt.Errorf("receiver %q has no target", r.Name)
		}
		all[r.Name] = ins
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(s.runCtx))
	s.integrations, s.intCancel = all, cancel
	for _, ins := range all {
		for _, in := range ins {
			s.workers.Go(func() { s.work(ctx, in) })
		}
	}
	return nil
}

func (s *Service) stopIntegrations() {
	if s.intCancel != nil {
		s.intCancel()
	}
	s.workers.Wait()
}

// work delivers an integration's queued notifications one at a time.
func (s *Service) work(ctx context.Context, in *integration) {
	for {
		for n := in.pop(); n != nil; n = in.pop() {
			s.deliver(ctx, in, n)
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-in.wake:
		}
	}
}

// deliver sends n through in exactly once across instances: it claims the
// notification log entry with a compare-and-set, sends, and records what
// was sent. A peer's live claim defers the group for a second.
func (s *Service) deliver(ctx context.Context, in *integration, n *Notification) {
	key := nflogKey(in.receiver, in.idx, n.GroupKey)
	result := func(r string) {
		s.m.notifications.WithLabelValues(in.receiver, in.sender.kind(), r).Inc()
	}
	var claimRev uint64
	var prev NflogEntry
	var send *Notification
	for attempt := 0; ; attempt++ {
		e, rev, err := s.store.Nflog(ctx, key)
		if err != nil {
			s.log.Warn().Err(err).Str("receiver", in.receiver).Msg("notification log unavailable; retrying later")
			s.retryLater(n, time.Second)
			result("error")
			return
		}
		d, out := Decide(e, n, s.opts.Instance, time.Now())
		switch d {
		case Skip:
			result("skipped")
			return
		case Busy:
			s.retryLater(n, time.Second)
			result("busy")
			return
		}
		claim := e
		claim.ClaimedBy, claim.ClaimExpires = s.opts.Instance, time.Now().Add(s.opts.ClaimTTL)
		claimRev, err = s.store.PutNflog(ctx, key, claim, rev)
		if errors.Is(err, ErrConflict) && attempt < 3 {
			continue // a peer wrote in between: decide again on its entry
		}
		if err != nil {
			s.retryLater(n, time.Second)
			result("busy")
			return
		}
		prev, send = e, out
		break
	}
	toSend := *send
	if !in.sendResolved {
		toSend.Resolved = nil
	}
	start := time.Now()
	var err error
	if len(toSend.Firing)+len(toSend.Resolved) > 0 {
		err = s.sendWithRetry(ctx, in, &toSend)
	}
	s.m.latency.WithLabelValues(in.sender.kind()).Observe(time.Since(start).Seconds())
	entry := prev
	entry.ClaimedBy, entry.ClaimExpires = "", time.Time{}
	if err == nil {
		entry.Firing, entry.SentAt = fingerprints(send.Firing), time.Now()
	}
	if _, perr := s.store.PutNflog(context.WithoutCancel(ctx), key, entry, claimRev); perr != nil {
		s.log.Warn().Err(perr).Str("receiver", in.receiver).Msg("cannot record notification")
	}
	if err != nil {
		result("failed")
		s.log.Error().Err(redact.Error(err)).Str("receiver", in.receiver).Str("integration", in.sender.kind()).Str("group", n.GroupKey).Msg("notification failed")
		return
	}
	result("sent")
}

// sendWithRetry sends n through in's breaker, retrying with exponential
// backoff for at most RetryFor. A [RetryAfterError] (HTTP 429) makes the
// next attempt wait at least what the receiver asked; if that is past
// RetryFor the notification fails now. Permanent errors are not retried.
func (s *Service) sendWithRetry(ctx context.Context, in *integration, n *Notification) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 200*time.Millisecond, 10*time.Second, s.opts.RetryFor
	b.Reset()
	start := time.Now()
	for {
		_, err := in.breaker.Execute(func() (struct{}, error) { return struct{}{}, in.sender.send(ctx, n) })
		if err == nil {
			return nil
		}
		if perm, ok := errors.AsType[*backoff.PermanentError](err); ok {
			return perm.Err
		}
		s.log.Debug().Err(redact.Error(err)).Str("receiver", in.receiver).Msg("notification attempt failed")
		wait := b.NextBackOff()
		if ra, ok := errors.AsType[*RetryAfterError](err); ok {
			s.m.rateLimited.WithLabelValues(in.receiver, in.sender.kind()).Inc()
			wait = max(wait, ra.After)
			if time.Since(start)+wait > s.opts.RetryFor {
				return err
			}
		}
		if wait == backoff.Stop {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retryLater asks the loop to flush n's group again after d.
func (s *Service) retryLater(n *Notification, d time.Duration) {
	s.bg.Go(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.runCtx.Done():
			return
		}
		_ = s.do(context.Background(), func() { s.disp.Retry(n, time.Now()) })
	})
}
