package ingest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/jetmon/jetmon/pkg/events"
)

// eachItem splits body into items and calls fn with each one's decoded
// event or error, in order; it reports false for a body without any.
//
//   - A body that is one JSON value is one event, however it is laid out
//     (pretty-printed included), or an array of events.
//   - Anything else is NDJSON: one event per line, blank lines skipped. A
//     line that is too long or malformed is rejected alone, and the lines
//     after it are still read.
//
// Items are decoded one at a time: memory does not grow with their number.
func (h *Handler) eachItem(body []byte, fn func(i int, ev events.Event, err error)) bool {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a byte order mark
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return false
	}
	if body[0] == '[' {
		h.eachInArray(body, fn)
		return true
	}
	if bytes.IndexByte(body, '\n') < 0 {
		ev, err := h.decodeOne(body)
		fn(0, ev, err)
		return true
	}
	// Several lines: one pretty-printed event, or NDJSON. Only the first
	// object of NDJSON decodes before "unexpected data after the event"
	// stops the probe, so the probe costs one event.
	if ev, err := h.probes.Decode(body); !errors.Is(err, events.ErrMalformed) {
		if err == nil && len(body) > h.o.MaxEvent {
			ev, err = nil, h.tooLarge(len(body))
		}
		fn(0, ev, err)
		return true
	}
	i := 0
	for len(body) > 0 {
		var line []byte
		line, body, _ = bytes.Cut(body, []byte{'\n'})
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		ev, err := h.decodeOne(line)
		fn(i, ev, err)
		i++
	}
	return true
}

// decodeOne decodes one event, refusing it when it is over MaxEvent.
func (h *Handler) decodeOne(data []byte) (events.Event, error) {
	if len(data) > h.o.MaxEvent {
		return nil, h.tooLarge(len(data))
	}
	return h.dec.Decode(data)
}

// eachInArray calls fn with every item of a JSON array. Broken array
// syntax, after which items cannot be told apart, is one more rejected item.
func (h *Handler) eachInArray(body []byte, fn func(i int, ev events.Event, err error)) {
	n := 0
	err := h.probes.EachInBatch(body, func(it events.BatchItem) {
		n++
		if it.Err == nil && len(it.Raw) > h.o.MaxEvent {
			it.Event, it.Err = nil, h.tooLarge(len(it.Raw))
		}
		fn(it.Index, it.Event, it.Err)
	})
	if err != nil {
		fn(n, nil, fmt.Errorf("the array breaks off here: %w", err))
	}
}

func (h *Handler) tooLarge(size int) error {
	return fmt.Errorf("%w: the event is %d bytes, over the limit of %d bytes", events.ErrPayloadTooLarge, size, h.o.MaxEvent)
}
