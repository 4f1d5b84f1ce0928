// Package monitor assembles what a service needs to monitor itself over one
// bus — a circuit-breaking publisher, a switchable coordinator and a health
// manager — with one lifecycle: [Start] builds and starts them, and
// [Monitor.Close] stops them in the one order that loses nothing.
//
// The parts stay available (and usable on their own, see pkg/breaker,
// pkg/coordinator, pkg/health); the monitor only owns their wiring and their
// shutdown.
package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/coordinator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/health"
)

// Options configures a [Monitor]. Zero values mean the defaults.
type Options struct {
	// Source names the service in every event it emits (required).
	Source string
	// Mode is the coordinator's starting mode (default
	// [coordinator.EventDriven]).
	Mode coordinator.MonitoringMode
	// FollowControl makes the coordinator follow the fleet's control events
	// (monitoring.mode.switched, monitoring.sampled, monitoring.enabled and
	// monitoring.disabled; see [coordinator.Control]).
	FollowControl bool

	// Breaker, Coordinator and Health configure the parts. An empty Source
	// in any of them is the monitor's Source; the health manager publishes
	// through the breaker.
	Breaker     breaker.Options
	Coordinator coordinator.Options
	Health      health.Options
}

// Validate reports the first bad field, by name.
func (o Options) Validate() error {
	if o.Source == "" {
		return errors.New("monitor: Source is required")
	}
	if err := o.Breaker.Validate(); err != nil {
		return fmt.Errorf("monitor: Breaker: %w", err)
	}
	if err := o.Coordinator.Validate(); err != nil {
		return fmt.Errorf("monitor: Coordinator: %w", err)
	}
	if err := o.Health.Validate(); err != nil {
		return fmt.Errorf("monitor: Health: %w", err)
	}
	return nil
}

// Monitor is a service's monitoring over one bus. Its fields are the parts,
// for direct use: publish through Publisher, time code with Coordinator,
// register checks with Health (also while it runs) and mount its handlers,
// subscribe on Bus. Close stops all of them, the bus included.
type Monitor struct {
	// Bus is the bus Start was given; the monitor closes it.
	Bus events.Bus
	// Publisher publishes through a circuit breaker that never blocks or
	// fails the caller for long; it spools what the bus cannot take, and
	// the bus's asynchronous failures too.
	Publisher *breaker.Publisher
	// Coordinator times calls; its events go through Publisher.
	Coordinator *coordinator.Switchable
	// Health runs the registered checks (from Start until Close) and
	// publishes their events through Publisher.
	Health *health.Manager

	control   events.Subscription // nil unless FollowControl
	stopCheck context.CancelFunc
	checks    sync.WaitGroup
	healthErr error // Health.Run's result, read after checks.Wait

	closeOnce sync.Once
	closeErr  error
}

// Start builds the monitor over bus and starts its background work: the
// coordinator's publisher, the breaker's drainer, the health checks and, with
// FollowControl, the control subscription. From here on the monitor owns
// bus: Close closes it. On error nothing is left running and bus is not
// closed. ctx bounds Start itself, not the monitor's life.
func Start(ctx context.Context, bus events.Bus, o Options) (*Monitor, error) {
	if bus == nil {
		return nil, errors.New("monitor: nil bus")
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.Breaker.Source = cmp.Or(o.Breaker.Source, o.Source)
	o.Breaker.Name = cmp.Or(o.Breaker.Name, o.Source)
	o.Coordinator.Source = cmp.Or(o.Coordinator.Source, o.Source)
	o.Health.Source = cmp.Or(o.Health.Source, o.Source)
	if o.Mode == "" {
		o.Mode = coordinator.EventDriven
	}

	pub, err := breaker.New(bus, o.Breaker)
	if err != nil {
		return nil, err
	}
	coord, err := coordinator.NewSwitchable(o.Mode, pub, o.Coordinator)
	if err != nil {
		return nil, errors.Join(err, pub.Close())
	}
	m := &Monitor{Bus: bus, Publisher: pub, Coordinator: coord}
	if o.FollowControl {
		if m.control, err = coordinator.Control(ctx, bus, coord, o.Source); err != nil {
			return nil, errors.Join(fmt.Errorf("monitor: follow control events: %w", err), coord.Close(ctx), pub.Close())
		}
	}
	o.Health.Publisher = pub
	m.Health = health.NewManager(o.Health)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopCheck = cancel
	m.checks.Go(func() { m.healthErr = m.Health.Run(runCtx) })
	return m, nil
}

// Close stops everything, in the one order that loses nothing, and returns
// the errors of every step joined:
//
//  1. the health checks and the control subscription stop;
//  2. the coordinator publishes what it has queued (into the breaker);
//  3. the bus settles what it accepted ([events.Flusher]): acks arrive, and
//     a publish that failed goes back into the breaker's spool;
//  4. the breaker drains its spool into the bus and closes (a disk spool
//     keeps what is left for the next start; a memory spool's leftovers are
//     reported as an error);
//  5. the bus closes (flushing what the drain sent).
//
// ctx bounds steps 2–4; when it ends, Close goes on with the next step, so
// the monitor is always closed when Close returns. It is idempotent.
func (m *Monitor) Close(ctx context.Context) error {
	m.closeOnce.Do(func() { m.closeErr = m.close(ctx) })
	return m.closeErr
}

func (m *Monitor) close(ctx context.Context) error {
	var errs []error
	add := func(step string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("monitor: close: %s: %w", step, err))
		}
	}
	m.stopCheck()
	m.checks.Wait()
	if !errors.Is(m.healthErr, context.Canceled) {
		add("health", m.healthErr)
	}
	if m.control != nil {
		add("control subscription", m.control.Unsubscribe())
	}
	add("coordinator", m.Coordinator.Close(ctx))
	if f, ok := m.Bus.(events.Flusher); ok {
		add("bus flush", f.Flush(ctx))
	}
	if err := m.Publisher.WaitDrained(ctx); err != nil {
		add("breaker drain", err)
	}
	add("breaker", m.Publisher.Close())
	add("bus", m.Bus.Close())
	return errors.Join(errs...)
}
