package health

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Func is a check from a function: nil is healthy, an error failed.
func Func(fn func(ctx context.Context) error) Checker {
	return CheckerFunc(func(ctx context.Context) Result {
		if err := fn(ctx); err != nil {
			return Result{Status: Failed, Message: err.Error()}
		}
		return Result{Status: Healthy}
	})
}

// HTTP checks that a GET of url answers with wantStatus (200 when 0). An
// answer slower than slow (when positive) is degraded.
func HTTP(client *http.Client, url string, wantStatus int, slow time.Duration) Checker {
	if client == nil {
		client = &http.Client{}
	}
	if wantStatus == 0 {
		wantStatus = http.StatusOK
	}
	return CheckerFunc(func(ctx context.Context) Result {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return Result{Status: Failed, Message: err.Error()}
		}
		resp, err := client.Do(req)
		if err != nil {
			return Result{Status: Failed, Message: err.Error()}
		}
		_ = resp.Body.Close()
		lat := time.Since(start)
		switch {
		case resp.StatusCode != wantStatus:
			return Result{Status: Failed, Latency: lat, Message: fmt.Sprintf("GET %s: status %d, want %d", url, resp.StatusCode, wantStatus)}
		case slow > 0 && lat > slow:
			return Result{Status: Degraded, Latency: lat, Message: fmt.Sprintf("GET %s took %s (slow above %s)", url, lat.Round(time.Millisecond), slow)}
		}
		return Result{Status: Healthy, Latency: lat}
	})
}

// TCP checks that addr accepts a connection.
func TCP(addr string) Checker {
	return CheckerFunc(func(ctx context.Context) Result {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return Result{Status: Failed, Message: err.Error()}
		}
		_ = c.Close()
		return Result{Status: Healthy}
	})
}

// NATS checks a NATS connection: failed when disconnected, degraded while
// reconnecting; the round-trip time is the latency.
func NATS(nc *nats.Conn) Checker {
	return CheckerFunc(func(context.Context) Result {
		switch {
		case nc.IsReconnecting():
			return Result{Status: Degraded, Message: "reconnecting to NATS"}
		case !nc.IsConnected():
			return Result{Status: Failed, Message: "not connected to NATS (" + nc.Status().String() + ")"}
		}
		rtt, err := nc.RTT()
		if err != nil {
			return Result{Status: Failed, Message: "NATS round trip: " + err.Error()}
		}
		return Result{Status: Healthy, Latency: rtt}
	})
}

// JetStream checks a stream and, when consumer is set, that consumer: failed
// when missing, degraded when the consumer's lag (pending messages) is over
// maxLag. The lag is the result's Value, for a threshold.
func JetStream(js jetstream.JetStream, stream, consumer string, maxLag uint64) Checker {
	return CheckerFunc(func(ctx context.Context) Result {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return Result{Status: Failed, Message: fmt.Sprintf("stream %s: %v", stream, err)}
		}
		if consumer == "" {
			info := s.CachedInfo()
			return Result{Status: Healthy, Message: fmt.Sprintf("%d messages", info.State.Msgs)}
		}
		c, err := s.Consumer(ctx, consumer)
		if err != nil {
			return Result{Status: Failed, Message: fmt.Sprintf("consumer %s on %s: %v", consumer, stream, err)}
		}
		info, err := c.Info(ctx)
		if err != nil {
			return Result{Status: Failed, Message: fmt.Sprintf("consumer %s on %s: %v", consumer, stream, err)}
		}
		lag := info.NumPending + uint64(info.NumAckPending)
		r := Result{Status: Healthy, Value: float64(lag), HasValue: true, Message: fmt.Sprintf("lag %d", lag)}
		if maxLag > 0 && lag > maxLag {
			r.Status, r.Message = Degraded, fmt.Sprintf("lag %d over %d", lag, maxLag)
		}
		return r
	})
}

// Redis checks a Redis server with PING (after AUTH when password is set),
// speaking RESP directly.
func Redis(addr, password string) Checker {
	return CheckerFunc(func(ctx context.Context) Result {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return Result{Status: Failed, Message: err.Error()}
		}
		defer func() { _ = c.Close() }()
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		rd := bufio.NewReader(c)
		cmd := func(args ...string) (string, error) {
			var b strings.Builder
			fmt.Fprintf(&b, "*%d\r\n", len(args))
			for _, a := range args {
				fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
			}
			if _, err := c.Write([]byte(b.String())); err != nil {
				return "", err
			}
			line, err := rd.ReadString('\n')
			return strings.TrimRight(line, "\r\n"), err
		}
		if password != "" {
			if resp, err := cmd("AUTH", password); err != nil || resp != "+OK" {
				return Result{Status: Failed, Message: "redis AUTH refused"} // never echo the password
			}
		}
		resp, err := cmd("PING")
		if err != nil {
			return Result{Status: Failed, Message: "redis PING: " + err.Error()}
		}
		if resp != "+PONG" {
			return Result{Status: Failed, Message: "redis PING answered " + resp}
		}
		return Result{Status: Healthy}
	})
}

// DiskFree checks the free space of the file system holding path: degraded
// below warnPercent free, failed below failPercent. The free percentage is
// the result's Value.
func DiskFree(path string, warnPercent, failPercent float64) Checker {
	return CheckerFunc(func(context.Context) Result {
		var st syscall.Statfs_t
		if err := syscall.Statfs(path, &st); err != nil {
			return Result{Status: Failed, Message: err.Error()}
		}
		if st.Blocks == 0 {
			return Result{Status: Failed, Message: "file system reports no blocks"}
		}
		free := float64(st.Bavail) / float64(st.Blocks) * 100
		r := Result{Status: Healthy, Value: free, HasValue: true, Message: fmt.Sprintf("%.1f%% free", free)}
		switch {
		case free < failPercent:
			r.Status = Failed
		case free < warnPercent:
			r.Status = Degraded
		}
		return r
	})
}

// Runtime checks the Go runtime: degraded when goroutines exceed
// maxGoroutines or the heap exceeds maxHeapBytes (each ignored when 0). The
// goroutine count is the result's Value.
func Runtime(maxGoroutines int, maxHeapBytes uint64) Checker {
	return CheckerFunc(func(context.Context) Result {
		n := runtime.NumGoroutine()
		var ms runtime.MemStats
		if maxHeapBytes > 0 {
			runtime.ReadMemStats(&ms)
		}
		r := Result{Status: Healthy, Value: float64(n), HasValue: true, Message: fmt.Sprintf("%d goroutines", n)}
		var problems []string
		if maxGoroutines > 0 && n > maxGoroutines {
			problems = append(problems, fmt.Sprintf("%d goroutines over %d", n, maxGoroutines))
		}
		if maxHeapBytes > 0 && ms.HeapAlloc > maxHeapBytes {
			problems = append(problems, fmt.Sprintf("heap %d bytes over %d", ms.HeapAlloc, maxHeapBytes))
		}
		if len(problems) > 0 {
			r.Status, r.Message = Degraded, strings.Join(problems, "; ")
		}
		return r
	})
}

// MonitoringState is what the monitoring self-check looks at; pkg/breaker's
// Publisher and the buses provide the pieces.
type MonitoringState struct {
	// Connected reports whether the publisher's transport is up.
	Connected func() bool
	// Breaker returns the circuit state ("closed", "half-open", "open") and
	// the spool depth; nil when there is no breaker.
	Breaker func() (state string, spoolDepth int)
	// MaxSpool is the spool depth above which monitoring is degraded (0: 1000).
	MaxSpool int
}

// Monitoring checks the monitoring system itself: failed while the
// transport is down, degraded while the breaker is open or the spool is
// deep.
func Monitoring(s MonitoringState) Checker {
	if s.MaxSpool <= 0 {
		s.MaxSpool = 1000
	}
	return CheckerFunc(func(context.Context) Result {
		if s.Connected != nil && !s.Connected() {
			return Result{Status: Failed, Message: "event publisher not connected"}
		}
		if s.Breaker == nil {
			return Result{Status: Healthy}
		}
		state, depth := s.Breaker()
		r := Result{Status: Healthy, Value: float64(depth), HasValue: true, Message: fmt.Sprintf("breaker %s, spool %d", state, depth)}
		if state != "closed" || depth > s.MaxSpool {
			r.Status = Degraded
		}
		return r
	})
}
