package aggregator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// OwnersBucket is the key-value bucket of partition leases: key p<N> names
// the one instance that may consume partition N and publish its windows.
// Membership (MembersBucket) only says who should own a partition; the
// lease says who does. An instance takes a partition only once it holds
// the lease, and an owner stops emitting the moment it cannot be sure it
// still holds it — so two instances never compute windows of one partition
// at the same time, even while their views of the membership disagree (a
// live instance its peers took for dead). Without this fence the second of
// two windows computed under one id was dropped by the server's
// deduplication, with the events only it held.
const OwnersBucket = "jetmon_aggregator_owners"

// errLeaseLost ends a partition whose lease this instance no longer holds
// for sure: nothing more may be emitted, and what it holds is handed back.
var errLeaseLost = errors.New("the partition's lease is lost")

// errLeaseInDoubt stops a publish when the lease is no longer valid for
// sure; the emit waits for it to be renewed (or gone) before trying again.
var errLeaseInDoubt = errors.New("the partition's lease is in doubt")

// lease is one instance's hold on one partition, kept in [OwnersBucket],
// whose entries expire after the bucket's TTL (MemberTTL) unless renewed.
//
// The guarantee rests on two clocks that only move forward: the server
// expires an entry no earlier than TTL after it stored the renewal, and the
// holder counts its lease valid only until validFor after it sent that
// renewal (validFor < TTL). Every emit checks valid first, so an owner that
// is cut off, stalled or slow stops emitting before any peer can take the
// key over. Between validFor and TTL the lease is in doubt: the owner
// pauses (a renewal under its own revision proves that nobody took the key
// meanwhile, and it carries on); past TTL, or once another instance wrote
// the key, it is gone. A nil *lease (unpartitioned mode) is always valid.
type lease struct {
	kv            jetstream.KeyValue
	key           string
	instance      []byte
	every         time.Duration // between renewals
	validFor, ttl time.Duration // after a renewal was sent
	base          time.Time     // the monotonic origin of lastSent
	// lastSent is when the latest renewal that the server stored was sent,
	// in nanoseconds since base. Written by the keeper, read by the
	// partition.
	lastSent atomic.Int64
	lost     atomic.Bool // another instance wrote the key, or it was released
	rev      uint64      // the revision of the latest write; keeper only
}

// leaseTimings derive a lease's renewal period and validity from the
// bucket's TTL: renewed six times per TTL, valid for two thirds of it after
// each renewal is sent — two renewals may fail (a leader election) before
// the owner stops, and a third of the TTL is left as the margin for a
// publish still in flight when validity ends.
func leaseTimings(ttl time.Duration) (every, validFor time.Duration) {
	return max(ttl/6, 50*time.Millisecond), ttl * 2 / 3
}

func leaseKey(partition int) string { return fmt.Sprintf("p%d", partition) }

// acquireLease takes the lease of partition p if it is free (never held,
// released, or expired) or already this instance's; it returns nil, nil
// when another instance holds it.
func (s *Service) acquireLease(ctx context.Context, p int) (*lease, error) {
	every, validFor := leaseTimings(s.cfg.MemberTTL)
	l := &lease{
		kv: s.ownersKV, key: leaseKey(p), instance: []byte(s.cfg.Instance), every: every, validFor: validFor,
		ttl: s.cfg.MemberTTL, base: time.Now(),
	}
	ctx, cancel := context.WithTimeout(ctx, every)
	defer cancel()
	sent := time.Now()
	rev, err := l.kv.Create(ctx, l.key, l.instance)
	if errors.Is(err, jetstream.ErrKeyExists) {
		var e jetstream.KeyValueEntry
		if e, err = l.kv.Get(ctx, l.key); err != nil {
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil, nil // it expired just now: next time
			}
			return nil, err
		}
		if string(e.Value()) != s.cfg.Instance {
			return nil, nil
		}
		// Ours from before (a partition that ended and is taken again
		// within the TTL): renew it under its revision.
		sent = time.Now()
		if rev, err = l.kv.Update(ctx, l.key, l.instance, e.Revision()); errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	l.rev = rev
	l.lastSent.Store(int64(sent.Sub(l.base)))
	return l, nil
}

// valid reports whether the lease is held for sure at now: windows may be
// emitted.
func (l *lease) valid(now time.Time) bool {
	if l == nil {
		return true
	}
	return !l.lost.Load() && now.Sub(l.base) < time.Duration(l.lastSent.Load())+l.validFor
}

// gone reports whether the lease is lost at now: another instance may hold
// it (or soon will).
func (l *lease) gone(now time.Time) bool {
	if l == nil {
		return false
	}
	return l.lost.Load() || now.Sub(l.base) >= time.Duration(l.lastSent.Load())+l.ttl
}

// await waits until the lease is valid (nil), gone ([errLeaseLost]) or ctx
// ends.
func (l *lease) await(ctx context.Context) error {
	for {
		now := time.Now()
		switch {
		case l.valid(now):
			return nil
		case l.gone(now):
			return errLeaseLost
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// keep renews the lease every l.every until ctx ends or the lease is lost
// (another instance wrote the key: it expired under us). A renewal that
// fails for another reason (a timeout, a leader election) is retried at the
// next tick; validity simply runs out if none succeeds.
func (l *lease) keep(ctx context.Context) {
	if l == nil {
		return
	}
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !l.renew(ctx) {
			return
		}
	}
}

// renew writes the key once under its revision; false when the lease is
// lost for good.
func (l *lease) renew(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, l.every)
	defer cancel()
	sent := time.Now()
	rev, err := l.kv.Update(ctx, l.key, l.instance, l.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Either someone else holds it now, or an earlier renewal that
		// timed out was stored after all: then the key still names us, and
		// the next renewal goes under its revision.
		e, gerr := l.kv.Get(ctx, l.key)
		switch {
		case gerr == nil && string(e.Value()) == string(l.instance):
			l.rev = e.Revision()
			return true
		case gerr == nil || errors.Is(gerr, jetstream.ErrKeyNotFound):
			l.lost.Store(true)
			return false
		}
		return true // cannot tell now; validity runs out unless a renewal succeeds
	}
	if err == nil {
		l.rev = rev
		l.lastSent.Store(int64(sent.Sub(l.base)))
	}
	return true
}

// release gives the lease up, so that the next owner need not wait for it
// to expire. It deletes the key only under the revision this instance
// wrote last: a key someone else holds by now is left alone.
func (l *lease) release() {
	if l == nil {
		return
	}
	l.lost.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), l.every)
	defer cancel()
	_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
}
