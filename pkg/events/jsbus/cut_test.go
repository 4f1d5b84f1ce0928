package jsbus_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// cutProxy forwards TCP connections to target until cut: from then on the
// connections it holds forward nothing and stop reading, as a network cut
// looks to a client (no reset, no close). New connections forward normally.
type cutProxy struct {
	ln     net.Listener
	target string
	done   chan struct{} // closed at the end of the test
	mu     sync.Mutex
	held   []chan struct{} // closed to cut one connection
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, done: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() { _ = ln.Close(); p.cut(); close(p.done); p.wg.Wait() })
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		cut := make(chan struct{})
		p.mu.Lock()
		p.held = append(p.held, cut)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			buf := make([]byte, 4096)
			for {
				n, err := src.Read(buf)
				select {
				case <-cut:
					<-p.done // hold the connection open, reading nothing more
					return
				default:
				}
				if n > 0 {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		p.wg.Go(func() { pipe(s, c) })
		p.wg.Go(func() { pipe(c, s) })
		p.wg.Go(func() {
			// Close only once the test is over: until then a cut
			// connection is a silent peer.
			<-p.done
			_ = c.Close()
			_ = s.Close()
		})
	}
}

// cut silences every connection held now.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.held {
		select {
		case <-c:
		default:
			close(c)
		}
	}
	p.held = nil
}

// TestBusyPublisherLeavesACutServerWithinWriteTimeout: a publisher that
// fills the socket towards a server behind a cut network blocks in a write;
// the bus gives up that write after WriteTimeout and reconnects, instead of
// nats.go's minute.
func TestBusyPublisherLeavesACutServerWithinWriteTimeout(t *testing.T) {
	srv := natstest.Start(t)
	proxy := newCutProxy(t, strings.TrimPrefix(srv.ClientURL(), "nats://"))
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{proxy.url()}
	cfg.PingInterval, cfg.MaxPingsOut = time.Second, 2 // WriteTimeout 2 s
	cfg.ReconnectWait = 100 * time.Millisecond
	cfg.SkipStreams = true
	bus, err := jsbus.Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close() }()
	nc := bus.Conn()

	ctx, stop := context.WithCancel(context.Background())
	var published atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		payload := make([]byte, 32<<10)
		for ctx.Err() == nil {
			if err := nc.Publish("load.bulk", payload); err == nil {
				published.Add(1)
			} else if !errors.Is(err, io.EOF) {
				time.Sleep(time.Millisecond)
			}
		}
	})
	defer func() { stop(); wg.Wait() }()
	testutil.WaitFor(t, 10*time.Second, func() bool { return published.Load() > 100 }, "the publisher to get going")

	proxy.cut()
	cutAt := time.Now()
	// With nats.go's default write timeout (1 min) this takes a minute.
	testutil.WaitFor(t, 20*time.Second, func() bool { return nc.Stats().Reconnects >= 1 }, "a reconnect after the cut")
	t.Logf("reconnected %v after the cut", time.Since(cutAt).Round(100*time.Millisecond))
}
