package alerting_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runService runs a service in real time until the test ends; ctx is
// valid as long.
func runService(t *testing.T, o alerting.Options) (*alerting.Service, context.Context) {
	t.Helper()
	svc, err := alerting.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	testutil.WaitFor(t, 5*time.Second, svc.Ready, "ready")
	return svc, ctx
}
