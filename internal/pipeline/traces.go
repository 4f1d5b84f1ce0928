package pipeline

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/otlp"
	"github.com/jetmon/jetmon/pkg/tracing"
)

// traces is the trace part of `jetmon up`: the assembly runtime and the
// OTLP/HTTP door.
type traces struct {
	svc  *tracing.Service
	door *otlp.Handler
}

// buildTraces makes the trace runtime on bus (horizon 0: the default) and
// the OTLP door, which stores straight through the bus (2xx means stored).
func buildTraces(bus *jsbus.Bus, horizon time.Duration, log *zerolog.Logger, reg prometheus.Registerer) (*traces, error) {
	o := tracing.DefaultOptions()
	o.Bus, o.Logger, o.Registerer = bus, log, reg
	o.MaxStoredBytes /= 4 // a laptop's share, like the other streams of jetmon up
	if horizon > 0 {
		o.Assembly.Horizon = horizon
	}
	svc, err := tracing.New(o)
	if err != nil {
		return nil, err
	}
	door, err := otlp.New(otlp.Options{Publisher: bus})
	if err != nil {
		return nil, err
	}
	return &traces{svc: svc, door: door}, nil
}

// mount registers POST /v1/traces and the trace API on mux.
func (t *traces) mount(mux *http.ServeMux) {
	t.door.Mount(mux)
	tm := http.NewServeMux()
	t.svc.Mount(tm)
	for _, p := range []string{"/api/v1/traces", "/api/v1/traces/", "/api/v1/dependencies", "/api/v1/bottlenecks"} {
		mux.Handle(p, tm)
	}
}
