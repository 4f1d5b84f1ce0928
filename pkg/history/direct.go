package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// directBatch is how many messages one direct get request asks for.
const directBatch = 1024

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// scanDirect calls fn with the payload of each message of stream on a
// subject matching filter stored at or after from, in stream order, and
// stops at the stream's end, when fn returns errStop, after maxMsgs
// messages ([ErrTooMuch]), at fn's first other error, or when ctx ends.
//
// It reads with batched direct gets ($JS.API.DIRECT.GET, the stream needs
// allow_direct) without the messages' headers: no consumer is created, so a
// query costs the server one subject-indexed lookup per batch and leaves
// nothing behind.
func scanDirect(ctx context.Context, nc *nats.Conn, stream, filter string, from time.Time, maxMsgs int, fn func(data []byte) error) error {
	api := "$JS.API.DIRECT.GET." + stream
	var next uint64
	n := 0
	for {
		req := map[string]any{"next_by_subj": filter, "batch": directBatch, "no_hdr": true}
		if next == 0 {
			req["start_time"] = from.UTC()
		} else {
			req["seq"] = next
		}
		body, _ := json.Marshal(req)
		inbox := nc.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			return fmt.Errorf("history: read %s: %w", stream, err)
		}
		done, last, pending, err := func() (bool, uint64, uint64, error) {
			defer func() { _ = sub.Unsubscribe() }()
			if err := nc.PublishRequest(api, inbox, body); err != nil {
				return false, 0, 0, err
			}
			for {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				m, err := sub.NextMsgWithContext(rctx)
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return false, 0, 0, ctx.Err()
					}
					return false, 0, 0, err
				}
				switch m.Header.Get("Status") {
				case "404":
					return true, 0, 0, nil // nothing (more) matches
				case "204": // end of this batch
					last, _ := strconv.ParseUint(m.Header.Get("Nats-Last-Sequence"), 10, 64)
					pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
					return false, last, pending, nil
				case "":
				default:
					return false, 0, 0, fmt.Errorf("direct get: status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
				}
				if n++; n > maxMsgs {
					return false, 0, 0, ErrTooMuch
				}
				if err := fn(m.Data); errors.Is(err, errStop) {
					return true, 0, 0, nil
				} else if err != nil {
					return false, 0, 0, err
				}
			}
		}()
		switch {
		case errors.Is(err, ErrTooMuch):
			return err
		case err != nil:
			return fmt.Errorf("history: read %s: %w", stream, err)
		case done || pending == 0 || last == 0:
			return nil
		}
		next = last + 1
	}
}
