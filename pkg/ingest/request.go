package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// request is the state of one POST /v1/events: the accepted events waiting
// to be published and the tally of results.
type request struct {
	h        *Handler
	ctx      context.Context
	granted  bool
	received time.Time

	pending []events.Event // accepted, not yet published
	index   []int          // their item indexes

	accepted, rejected              int
	tooLarge, forbidden, retryables int
	errs                            errorList
}

// take handles item i: its decoded event, or what is wrong with it.
func (rq *request) take(i int, ev events.Event, err error) {
	if err == nil && rq.h.o.AssignDefaults {
		md := ev.Metadata()
		if md.ID == "" {
			md.ID = events.NewID()
		}
		if md.Timestamp.IsZero() {
			md.Timestamp = rq.received
		}
		err = ev.Validate()
	}
	if err == nil && !rq.granted && events.PipelineOnly(ev.Metadata().Type) {
		err = &grantError{t: ev.Metadata().Type}
	}
	if err != nil {
		rq.reject(i, err, false)
		return
	}
	rq.pending = append(rq.pending, ev)
	rq.index = append(rq.index, i)
	if len(rq.pending) >= publishChunk {
		rq.flush()
	}
}

// flush publishes the pending events and records their results.
func (rq *request) flush() {
	if len(rq.pending) == 0 {
		return
	}
	if rq.h.store != nil {
		for k, err := range rq.h.store.PublishStored(rq.ctx, rq.pending) {
			rq.published(rq.index[k], err)
		}
	} else {
		for k, ev := range rq.pending {
			rq.published(rq.index[k], rq.h.o.Publisher.Publish(rq.ctx, ev))
		}
	}
	clear(rq.pending)
	rq.pending, rq.index = rq.pending[:0], rq.index[:0]
}

func (rq *request) published(i int, err error) {
	if err == nil {
		rq.accepted++
		return
	}
	permanent := errors.Is(err, events.ErrInvalid) || errors.Is(err, events.ErrPayloadTooLarge) || errors.Is(err, events.ErrUnsupported)
	rq.reject(i, err, !permanent)
}

// reject records item i as refused for err.
func (rq *request) reject(i int, err error, retry bool) {
	rq.rejected++
	status := http.StatusBadRequest
	switch {
	case retry:
		status = http.StatusServiceUnavailable
		rq.retryables++
	case errors.Is(err, events.ErrPayloadTooLarge):
		status = http.StatusRequestEntityTooLarge
		rq.tooLarge++
	case errors.Is(err, ErrNotGranted):
		status = http.StatusForbidden
		rq.forbidden++
	}
	rq.errs.add(i, func() ItemError {
		e := ItemError{Index: i, Error: err.Error(), Status: status, Retry: retry}
		if ve, ok := errors.AsType[*events.ValidationError](err); ok {
			e.Field = ve.Field
		} else if errors.Is(err, ErrNotGranted) {
			e.Field = "event_type"
		}
		return e
	})
}

func (rq *request) response() Response {
	items := rq.errs.sorted()
	return Response{
		Accepted: rq.accepted, Rejected: rq.rejected, Stored: rq.h.store != nil,
		Errors: items, ErrorsOmitted: rq.rejected - len(items),
	}
}

// status is the answer's HTTP status: 202 when every item was accepted, 207
// when some were, otherwise the status every rejected item shares or, for
// a mix, 503 if any may succeed on retry and 400 if none can.
func (rq *request) status() int {
	switch {
	case rq.rejected == 0:
		return http.StatusAccepted
	case rq.accepted > 0:
		return http.StatusMultiStatus
	case rq.retryables > 0:
		return http.StatusServiceUnavailable
	case rq.tooLarge == rq.rejected:
		return http.StatusRequestEntityTooLarge
	case rq.forbidden == rq.rejected:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// grantError refuses an event type only the pipeline emits.
type grantError struct{ t events.Type }

func (e *grantError) Error() string {
	return fmt.Sprintf("event_type %q is emitted only by the pipeline: publishing it needs the grant token", string(e.t))
}

func (e *grantError) Is(target error) bool { return target == ErrNotGranted }

// errorList keeps the item errors with the max lowest indexes. Items
// mostly come in index order, so beyond max a later item costs one
// comparison; only an earlier one (a publish failure reported after the
// decoding of later items) replaces the kept item with the highest index.
type errorList struct {
	max   int
	items []ItemError
	top   int // position in items of the highest index
}

// add offers item i; build makes its ItemError only when it is kept.
func (l *errorList) add(i int, build func() ItemError) {
	if len(l.items) < l.max {
		l.items = append(l.items, build())
		if i > l.items[l.top].Index {
			l.top = len(l.items) - 1
		}
		return
	}
	if l.max == 0 || i >= l.items[l.top].Index {
		return
	}
	l.items[l.top] = build()
	for k, it := range l.items {
		if it.Index > l.items[l.top].Index {
			l.top = k
		}
	}
}

func (l *errorList) sorted() []ItemError {
	slices.SortFunc(l.items, func(a, b ItemError) int { return a.Index - b.Index })
	return l.items
}
