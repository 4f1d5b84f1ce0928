package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/ingest"
	"github.com/jetmon/jetmon/streams"
)

// Every row below runs against the same nats-server process, on the
// PERFORMANCE stream as streams/ defines it (file storage, 2 min dedup
// window), with the same 307-byte encoded PerformanceEvent, built inside the
// timed loop on every side. Consume rows read what a jetmon publisher stored,
// so raw, jetmon and Watermill read identical messages.

const (
	benchSource = "checkout-service"
	benchFilter = "performance.operation.complete.checkout-service"
	// watermillPublishers is how many goroutines drive Watermill's
	// publisher, which waits for each ack (one at a time per goroutine).
	watermillPublishers = 64
)

// newEvent builds event i of a run: distinct ids (the server drops repeats
// as duplicates, which would be cheaper and unfair).
func newEvent() *events.PerformanceEvent {
	ev := events.NewPerformanceEvent(events.OperationComplete, benchSource)
	ev.Operation, ev.DurationMS, ev.Status, ev.FieldPath = "db.query", 12.75, events.StatusSuccess, "order.items"
	return ev
}

// env is what every row of one run shares.
type env struct {
	url string
	n   int // events per row
	srv *server
	// clients is how many HTTP clients send at once end to end.
	clients int
	// cpu is the CPU time the last timed section took, in this process and
	// in the server's.
	cpu struct{ client, server time.Duration }
}

// timed times run, notes the CPU it took on both sides, and returns events
// per second.
func (e *env) timed(run func() error) (float64, error) {
	c0, s0 := selfCPU(), e.serverCPU()
	start := time.Now()
	if err := run(); err != nil {
		return 0, err
	}
	d := time.Since(start)
	e.cpu.client, e.cpu.server = selfCPU()-c0, e.serverCPU()-s0
	return float64(e.n) / d.Seconds(), nil
}

func (e *env) serverCPU() time.Duration {
	if e.srv == nil {
		return 0
	}
	return e.srv.cpu()
}

func (e *env) bus(ctx context.Context, mutate func(*jsbus.Config)) (*jsbus.Bus, error) {
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{e.url}
	if mutate != nil {
		mutate(&cfg)
	}
	return jsbus.Connect(ctx, cfg)
}

func batched(n int) func(*jsbus.Config) { return func(c *jsbus.Config) { c.BatchMaxEvents = n } }

func purge(ctx context.Context, bus *jsbus.Bus) error {
	s, err := bus.JetStream().Stream(ctx, streams.Performance)
	if err != nil {
		return err
	}
	return s.Purge(ctx)
}

// publishOrWait retries a publish refused because too many async publishes
// await their acks, after waiting for them (raw and jetmon rows alike).
func publishOrWait(ctx context.Context, bus *jsbus.Bus, publish func() error) error {
	for range 20 {
		err := publish()
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return err
		}
		if err := bus.Flush(ctx); err != nil {
			return err
		}
	}
	return errors.New("publish stalled twenty times")
}

// fill replaces the stream's content with n events published through a bus
// batching batch events per message (0: one per message).
func (e *env) fill(ctx context.Context, batch int) error {
	bus, err := e.bus(ctx, batched(batch))
	if err != nil {
		return err
	}
	defer func() { _ = bus.Close() }()
	if err := purge(ctx, bus); err != nil {
		return err
	}
	for range e.n {
		if err := publishOrWait(ctx, bus, func() error { return bus.Publish(ctx, newEvent()) }); err != nil {
			return err
		}
	}
	return bus.Flush(ctx)
}

// stored checks that the stream holds want messages.
func stored(ctx context.Context, bus *jsbus.Bus, want uint64) error {
	s, err := bus.JetStream().Stream(ctx, streams.Performance)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != want {
		return fmt.Errorf("stream holds %d messages, want %d", info.State.Msgs, want)
	}
	return nil
}

// waitFor polls cond until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: not done after %v: %s", what, d, state)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// ---- publish ----

func (e *env) rawPublish(ctx context.Context) (float64, error) {
	bus, err := e.bus(ctx, nil) // only to apply the streams; the connection is the raw client's
	if err != nil {
		return 0, err
	}
	defer func() { _ = bus.Close() }()
	if err := purge(ctx, bus); err != nil {
		return 0, err
	}
	js := bus.JetStream()
	rate, err := e.timed(func() error {
		for range e.n {
			msg, err := jsbus.NewMsg(newEvent())
			if err != nil {
				return err
			}
			if err := publishOrWait(ctx, bus, func() error { _, err := js.PublishMsgAsync(msg); return err }); err != nil {
				return err
			}
		}
		return bus.Flush(ctx)
	})
	if err != nil {
		return 0, err
	}
	return rate, stored(ctx, bus, uint64(e.n))
}

func (e *env) jetmonPublish(batch int) func(context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		bus, err := e.bus(ctx, batched(batch))
		if err != nil {
			return 0, err
		}
		defer func() { _ = bus.Close() }()
		if err := purge(ctx, bus); err != nil {
			return 0, err
		}
		rate, err := e.timed(func() error {
			for range e.n {
				if err := publishOrWait(ctx, bus, func() error { return bus.Publish(ctx, newEvent()) }); err != nil {
					return err
				}
			}
			return bus.Flush(ctx)
		})
		if err != nil {
			return 0, err
		}
		if st := bus.Stats(); st.PublishFailed != 0 || st.Duplicates != 0 || st.Published != uint64(e.n) {
			return 0, fmt.Errorf("published %d of %d, %d failed, %d duplicates", st.Published, e.n, st.PublishFailed, st.Duplicates)
		}
		msgs := uint64(e.n)
		if st := bus.Stats(); batch > 1 {
			// A batch that does not fill goes after BatchMaxDelay: count the
			// batch messages sent, and check that they carried every event.
			if st.BatchedEvents != uint64(e.n) {
				return 0, fmt.Errorf("batched %d of %d events", st.BatchedEvents, e.n)
			}
			msgs = st.Batches
		}
		return rate, stored(ctx, bus, msgs)
	}
}

// watermillPublish drives Watermill's NATS JetStream publisher (pkg/nats,
// the one its docs recommend for production) from 64 goroutines: it waits
// for each message's ack, so one goroutine would measure a round trip.
// The payload is the same encoded event; its Nats-Msg-Id is the event id
// (TrackMsgId), like jetmon's.
func (e *env) watermillPublish(ctx context.Context) (float64, error) {
	bus, err := e.bus(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = bus.Close() }()
	if err := purge(ctx, bus); err != nil {
		return 0, err
	}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{
		URL:       e.url,
		Marshaler: &wmnats.NATSMarshaler{},
		JetStream: wmnats.JetStreamConfig{TrackMsgId: true},
	}, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	defer func() { _ = pub.Close() }()
	var next atomic.Int64
	rate, err := e.timed(func() error {
		var wg sync.WaitGroup
		errs := make(chan error, watermillPublishers)
		for range watermillPublishers {
			wg.Go(func() {
				for next.Add(1) <= int64(e.n) {
					ev := newEvent()
					m := message.NewMessage(ev.ID, ev.AppendJSON(nil))
					if err := pub.Publish(events.Subject(ev.Type, ev.Source), m); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
	if err != nil {
		return 0, err
	}
	return rate, stored(ctx, bus, uint64(e.n))
}

// ---- durable consume ----

// consumerConfig is the consumer jetmon's durable Subscribe creates.
func consumerConfig(name string) jetstream.ConsumerConfig {
	cfg := jsbus.DefaultConfig()
	return jetstream.ConsumerConfig{
		Durable: name, FilterSubject: events.FilterSubject("performance.>"),
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, MaxAckPending: cfg.MaxAckPending,
	}
}

// rawConsume is a raw nats.go durable pull consumer with jetmon's consumer
// settings and nats.go's default Consume options; it acks each message and,
// with decode, decodes it first (the work jetmon's handler path does).
func (e *env) rawConsume(decode bool) func(context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		if err := e.fill(ctx, 0); err != nil {
			return 0, err
		}
		bus, err := e.bus(ctx, nil)
		if err != nil {
			return 0, err
		}
		defer func() { _ = bus.Close() }()
		name := "peers-raw-" + strconv.FormatBool(decode)
		defer func() { _ = bus.JetStream().DeleteConsumer(context.Background(), streams.Performance, name) }()
		var got, bad atomic.Int64
		dec := events.Decoder{MaxPayload: -1}
		var cc jetstream.ConsumeContext
		rate, err := e.timed(func() error {
			cons, err := bus.JetStream().CreateConsumer(ctx, streams.Performance, consumerConfig(name))
			if err != nil {
				return err
			}
			cc, err = cons.Consume(func(m jetstream.Msg) {
				if decode {
					if _, err := dec.Decode(m.Data()); err != nil {
						bad.Add(1)
					}
				}
				_ = m.Ack()
				got.Add(1)
			})
			if err != nil {
				return err
			}
			return waitFor(ctx, 5*time.Minute, "raw consume", func() (bool, string) {
				return got.Load() >= int64(e.n), fmt.Sprintf("%d of %d", got.Load(), e.n)
			})
		})
		if cc != nil {
			cc.Stop()
		}
		if err == nil && (got.Load() != int64(e.n) || bad.Load() != 0) {
			err = fmt.Errorf("raw consume: %d messages for %d, %d undecodable", got.Load(), e.n, bad.Load())
		}
		return rate, err
	}
}

// jetmonSubscribe is a durable Subscribe (decode, handler, ack each) over
// messages of batch events each (0: one).
func (e *env) jetmonSubscribe(batch int) func(context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		if err := e.fill(ctx, batch); err != nil {
			return 0, err
		}
		bus, err := e.bus(ctx, nil)
		if err != nil {
			return 0, err
		}
		defer func() { _ = bus.Close() }()
		name := "peers-jetmon-" + strconv.Itoa(batch)
		defer func() { _ = bus.JetStream().DeleteConsumer(context.Background(), streams.Performance, name) }()
		var got atomic.Int64
		h := events.HandlerFunc(func(context.Context, events.Event) error { got.Add(1); return nil })
		var sub events.Subscription
		rate, err := e.timed(func() error {
			sub, err = bus.Subscribe(ctx, "performance.>", h, events.Durable(name), events.DeliverAll())
			if err != nil {
				return err
			}
			return waitFor(ctx, 5*time.Minute, "jetmon subscribe", func() (bool, string) {
				return got.Load() >= int64(e.n), fmt.Sprintf("%d of %d", got.Load(), e.n)
			})
		})
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		if st := bus.Stats(); err == nil && (got.Load() != int64(e.n) || st.DecodeErrors != 0) {
			err = fmt.Errorf("jetmon subscribe: %d events for %d, %d undecodable", got.Load(), e.n, st.DecodeErrors)
		}
		return rate, err
	}
}

// watermillSubscribe is Watermill's durable JetStream subscriber (pkg/nats:
// a durable push consumer, explicit acks, from the first message); the
// application decodes each payload and acks it, like jetmon's handler path.
// With ordered it is the closest Watermill has to a replay: an ephemeral
// consumer from the first message.
func (e *env) watermillSubscribe(durable bool) func(context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		if err := e.fill(ctx, 0); err != nil {
			return 0, err
		}
		bus, err := e.bus(ctx, nil)
		if err != nil {
			return 0, err
		}
		defer func() { _ = bus.Close() }()
		js := wmnats.JetStreamConfig{
			SubscribeOptions: []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit()},
		}
		name := ""
		if durable {
			name = "peers-watermill"
			js.DurablePrefix = name
			defer func() { _ = bus.JetStream().DeleteConsumer(context.Background(), streams.Performance, name) }()
		}
		sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
			URL: e.url, CloseTimeout: 10 * time.Second, AckWaitTimeout: jsbus.DefaultConfig().AckWait,
			Unmarshaler: &wmnats.NATSMarshaler{}, JetStream: js,
		}, watermill.NopLogger{})
		if err != nil {
			return 0, err
		}
		defer func() { _ = sub.Close() }()
		subCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		dec := events.Decoder{MaxPayload: -1}
		var got, bad int
		rate, err := e.timed(func() error {
			msgs, err := sub.Subscribe(subCtx, benchFilter)
			if err != nil {
				return err
			}
			timeout := time.NewTimer(5 * time.Minute)
			defer timeout.Stop()
			for got < e.n {
				select {
				case m := <-msgs:
					if _, err := dec.Decode(m.Payload); err != nil {
						bad++
					}
					m.Ack()
					got++
				case <-timeout.C:
					return fmt.Errorf("watermill subscribe: %d of %d after 5 min", got, e.n)
				}
			}
			return nil
		})
		if err == nil && bad != 0 {
			err = fmt.Errorf("watermill subscribe: %d undecodable", bad)
		}
		return rate, err
	}
}

// ---- replay ----

// rawOrdered is a raw nats.go ordered consumer over the stored messages (no
// acks, no decoding).
func (e *env) rawOrdered(ctx context.Context) (float64, error) {
	if err := e.fill(ctx, 0); err != nil {
		return 0, err
	}
	bus, err := e.bus(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = bus.Close() }()
	var got atomic.Int64
	var cc jetstream.ConsumeContext
	rate, err := e.timed(func() error {
		cons, err := bus.JetStream().OrderedConsumer(ctx, streams.Performance, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{events.FilterSubject("performance.>")}, DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			return err
		}
		cc, err = cons.Consume(func(jetstream.Msg) { got.Add(1) })
		if err != nil {
			return err
		}
		return waitFor(ctx, 5*time.Minute, "raw ordered", func() (bool, string) {
			return got.Load() >= int64(e.n), fmt.Sprintf("%d of %d", got.Load(), e.n)
		})
	})
	if cc != nil {
		cc.Stop()
	}
	return rate, err
}

func (e *env) jetmonReplay(ctx context.Context) (float64, error) {
	if err := e.fill(ctx, 0); err != nil {
		return 0, err
	}
	bus, err := e.bus(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = bus.Close() }()
	var st jsbus.ReplayStats
	rate, err := e.timed(func() error {
		st, err = bus.Replay(ctx, "performance.>", jsbus.ReplayOptions{}, events.HandlerFunc(func(context.Context, events.Event) error { return nil }))
		return err
	})
	if err == nil && (st.Events != uint64(e.n) || st.Undecodable != 0) {
		err = fmt.Errorf("replayed %d of %d, %d undecodable", st.Events, e.n, st.Undecodable)
	}
	return rate, err
}

// ---- end to end ----

const (
	e2eSources    = 10
	e2eOperations = 10
	e2eBody       = 1000 // events per request
)

// endToEnd runs HTTP ingest (NDJSON bodies of 1000 events from e.clients clients,
// answered only once stored) → JetStream (a bus batching batch events per
// message, 0: none) → an aggregator with 1 s windows and 2 s lateness. It returns two rates
// from the first request: to the moment the aggregator has counted every
// event into its window, and to the moment the windows holding them all are
// stored (which adds the window and the idle wait that closes it).
func (e *env) endToEnd(batch int) func(context.Context) (counted, windows float64, err error) {
	return func(ctx context.Context) (_, _ float64, err error) {
		bus, err := e.bus(ctx, batched(batch))
		if err != nil {
			return 0, 0, err
		}
		defer func() { _ = bus.Close() }()
		if err := purge(ctx, bus); err != nil {
			return 0, 0, err
		}
		_ = bus.JetStream().DeleteConsumer(ctx, streams.Performance, "peers-e2e")
		agg, err := aggregator.New(aggregator.Options{
			Bus: bus, Name: "peers-e2e", Window: time.Second, Lateness: 2 * time.Second, IdleAfter: 200 * time.Millisecond,
			Recent: 10_000,
		})
		if err != nil {
			return 0, 0, err
		}
		aggCtx, stopAgg := context.WithCancel(ctx)
		var aggErr error
		aggDone := make(chan struct{})
		go func() { defer close(aggDone); aggErr = agg.Run(aggCtx) }()
		defer func() {
			stopAgg()
			<-aggDone
			if aggErr != nil && !errors.Is(aggErr, context.Canceled) && err == nil {
				err = fmt.Errorf("aggregator: %w", aggErr)
			}
		}()
		if err := waitFor(ctx, 30*time.Second, "aggregator ready", func() (bool, string) { return agg.Ready(), "" }); err != nil {
			return 0, 0, err
		}

		door, err := ingest.New(ingest.Options{Publisher: bus})
		if err != nil {
			return 0, 0, err
		}
		mux := http.NewServeMux()
		door.Mount(mux)
		l, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		srvDone := make(chan struct{})
		go func() { defer close(srvDone); _ = srv.Serve(l) }()
		defer func() { _ = srv.Close(); <-srvDone }()
		url := "http://" + l.Addr().String() + "/v1/events"
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: e.clients}}
		defer client.CloseIdleConnections()

		start, c0, s0 := time.Now(), selfCPU(), e.serverCPU()
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, e.clients)
		for range e.clients {
			wg.Go(func() {
				var body []byte
				for {
					from := next.Add(e2eBody) - e2eBody
					if from >= int64(e.n) {
						return
					}
					k := min(int64(e2eBody), int64(e.n)-from)
					body = body[:0]
					for i := range k {
						ev := events.NewPerformanceEvent(events.OperationComplete, "svc-"+strconv.Itoa(int(from+i)%e2eSources))
						ev.Operation = "op-" + strconv.Itoa(int(from+i)/e2eSources%e2eOperations)
						ev.DurationMS, ev.Status, ev.FieldPath = 12.75, events.StatusSuccess, "order.items"
						body = append(ev.AppendJSON(body), '\n')
					}
					if err := post(ctx, client, url, body, int(k)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return 0, 0, err
		}
		if err := waitFor(ctx, 5*time.Minute, "aggregator counted", func() (bool, string) {
			st := agg.Stats()
			return st.Events >= uint64(e.n), fmt.Sprintf("%d of %d", st.Events, e.n)
		}); err != nil {
			return 0, 0, err
		}
		counted := time.Since(start)
		e.cpu.client, e.cpu.server = selfCPU()-c0, e.serverCPU()-s0
		var inWindows uint64
		if err := waitFor(ctx, 2*time.Minute, "windows stored", func() (bool, string) {
			inWindows = 0
			for _, w := range agg.Recent() {
				inWindows += w.Count
			}
			late := agg.Stats().Late
			return inWindows+late >= uint64(e.n), fmt.Sprintf("%d of %d in windows, %d late", inWindows, e.n, late)
		}); err != nil {
			return 0, 0, err
		}
		windows := time.Since(start)
		// An event later than Lateness (a client or the machine stalled) is
		// counted as late, outside its window, as the aggregator promises.
		if st := agg.Stats(); st.Events != uint64(e.n) || inWindows+st.Late != uint64(e.n) || st.Duplicates != 0 {
			return 0, 0, fmt.Errorf("aggregator: %d events, %d in windows, %d late, %d duplicates; want %d", st.Events, inWindows, st.Late, st.Duplicates, e.n)
		}
		return float64(e.n) / counted.Seconds(), float64(e.n) / windows.Seconds(), nil
	}
}

func post(ctx context.Context, c *http.Client, url string, body []byte, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted) || !bytes.Contains(buf.Bytes(), []byte(`"accepted":`+strconv.Itoa(n)+`,`)) {
		return fmt.Errorf("ingest answered %d: %s", resp.StatusCode, buf.Bytes())
	}
	return nil
}
