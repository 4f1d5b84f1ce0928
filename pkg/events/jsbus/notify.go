package jsbus

import (
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/jetmon/jetmon/pkg/events"
)

var (
	_ events.AsyncFailureNotifier = (*Bus)(nil)
	_ events.Flusher              = (*Bus)(nil)
)

// failureHandlers are the functions registered with
// [Bus.NotifyAsyncFailure]. The zero value has none.
type failureHandlers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(events.Event, error)
}

func (h *failureHandlers) add(fn func(events.Event, error)) (stop func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fns == nil {
		h.fns = map[int]func(events.Event, error){}
	}
	id := h.next
	h.next++
	h.fns[id] = fn
	return sync.OnceFunc(func() {
		h.mu.Lock()
		delete(h.fns, id)
		h.mu.Unlock()
	})
}

// any reports whether a handler is registered.
func (h *failureHandlers) any() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.fns) > 0
}

// report decodes msg (one event or a batch) and passes each event to every
// handler.
func (h *failureHandlers) report(msg *nats.Msg, err error) {
	h.mu.Lock()
	fns := make([]func(events.Event, error), 0, len(h.fns))
	for _, fn := range h.fns {
		fns = append(fns, fn)
	}
	h.mu.Unlock()
	if len(fns) == 0 {
		return
	}
	ReportFailedEvents(func(ev events.Event, err error) {
		for _, fn := range fns {
			fn(ev, err)
		}
	})(msg, err)
}

// NotifyAsyncFailure registers fn for the events of async publishes that
// failed for good (see [events.AsyncFailureNotifier]); each batched event is
// passed on its own, with its original id, so that a re-send is deduplicated
// by the server. While a handler is registered, a failed publish goes to it
// at once: the bus's own re-sends (Config.PublishRetries) apply only when
// nobody is registered. [Config.OnPublishError] is called as well.
// [breaker.New] registers itself here.
func (b *Bus) NotifyAsyncFailure(fn func(ev events.Event, err error)) (stop func()) {
	if fn == nil {
		return func() {}
	}
	return b.failures.add(fn)
}
