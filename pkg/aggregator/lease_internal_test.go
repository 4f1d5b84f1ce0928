package aggregator

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestLeaseValidInDoubtGone walks a lease whose renewals stop: valid for
// validFor after the last renewal was sent, then in doubt (no emitting,
// nothing lost yet) until the TTL, when the server may give the key to
// another instance, then gone; a renewal that lands while in doubt makes it
// valid again.
func TestLeaseValidInDoubtGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		every, validFor := leaseTimings(15 * time.Second)
		if every != 2500*time.Millisecond || validFor != 10*time.Second {
			t.Fatalf("timings for a 15 s TTL: renew every %v, valid for %v; want 2.5s and 10s", every, validFor)
		}
		l := &lease{validFor: validFor, ttl: 15 * time.Second, base: time.Now()}
		start := time.Now()
		check := func(at time.Duration, valid, gone bool) {
			t.Helper()
			now := start.Add(at)
			if l.valid(now) != valid || l.gone(now) != gone {
				t.Fatalf("at %v: valid %v, gone %v; want %v, %v", at, l.valid(now), l.gone(now), valid, gone)
			}
		}
		check(0, true, false)
		check(validFor-time.Nanosecond, true, false)
		check(validFor, false, false) // in doubt
		check(15*time.Second-time.Nanosecond, false, false)
		check(15*time.Second, false, true)

		// In doubt, await blocks until a renewal lands.
		time.Sleep(12 * time.Second)
		done := make(chan error, 1)
		go func() { done <- l.await(context.Background()) }()
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("await returned %v while the lease was in doubt", err)
		default:
		}
		l.lastSent.Store(int64(time.Since(l.base))) // a renewal stored
		if err := <-done; err != nil {
			t.Fatalf("await after a renewal: %v", err)
		}

		// No renewal for the TTL: await says it is lost.
		time.Sleep(10 * time.Second)
		if err := l.await(context.Background()); !errors.Is(err, errLeaseLost) {
			t.Fatalf("await past the TTL: %v, want errLeaseLost", err)
		}

		// Written by someone else: gone at once, whatever the clock says.
		l.lastSent.Store(int64(time.Since(l.base)))
		l.lost.Store(true)
		if l.valid(time.Now()) || !l.gone(time.Now()) {
			t.Fatal("a lost lease is still valid")
		}
		var none *lease
		if !none.valid(time.Now()) || none.gone(time.Now()) || none.await(context.Background()) != nil {
			t.Fatal("the nil lease (unpartitioned) must always be valid")
		}
	})
}
