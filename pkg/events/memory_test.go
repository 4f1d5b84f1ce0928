package events_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryBusConformance(t *testing.T) {
	eventstest.Run(t, eventstest.Harness{
		NewBackend: func(*testing.T) events.Bus {
			return events.NewMemoryBus(events.MemoryOptions{RedeliveryDelay: 5_000_000, MaxPayload: 64 << 10})
		},
		MaxPayload: 64 << 10,
		Features: eventstest.Features{
			Replay: true, Durable: true, Groups: true, OrderedPerSubject: true, Redelivery: true,
		},
	})
}
