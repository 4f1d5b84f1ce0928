package redisbus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// go-redis logs its own problems (a pool that fails to dial, a connection
// it cannot close, ...) through one process-wide logger, set with
// redis.SetLogger, that writes to stderr by default. A client cannot have
// its own. So the first [Connect] installs [goRedisLogger] in its place
// once, and every Connect with a non-nil Config.Logger makes that logger the
// one it forwards to (the latest such Connect wins). Until a Connect has
// a Logger, go-redis's messages are discarded, as Config.Logger promises.
//
// A program that wants go-redis's messages elsewhere can call
// redis.SetLogger after its first Connect; redisbus does not install its
// logger again.
var (
	goRedisTarget  atomic.Pointer[zerolog.Logger]
	goRedisInstall sync.Once
)

// routeGoRedisLogs installs the forwarder (once) and, when l is non-nil,
// makes it the destination of go-redis's messages.
func routeGoRedisLogs(l *zerolog.Logger) {
	goRedisInstall.Do(func() { redis.SetLogger(goRedisLogger{}) })
	if l != nil {
		fl := l.With().Str("component", "redisbus").Str("source", "go-redis").Logger()
		goRedisTarget.Store(&fl)
	}
}

// goRedisLogger is go-redis's logger: it forwards each message to
// goRedisTarget as a warning, or drops it while that is nil.
type goRedisLogger struct{}

// Printf logs one go-redis message.
func (goRedisLogger) Printf(_ context.Context, format string, v ...any) {
	l := goRedisTarget.Load()
	if l == nil {
		return
	}
	l.Warn().Msg(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
