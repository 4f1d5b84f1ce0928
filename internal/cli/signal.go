package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// OnSIGHUP calls fn, on a goroutine of its own, for every SIGHUP the process
// receives until ctx ends or stop is called (stop also unregisters the
// signal). fn runs one call at a time.
func OnSIGHUP(ctx context.Context, fn func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				fn()
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
	}
}
