// Package streams holds jetmon's JetStream stream definitions as data — one
// JSON file per event family, in the format `nats stream add --config FILE`
// accepts — and applies them idempotently at start-up.
package streams

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
)

//go:embed *.json
var files embed.FS

// Names of the streams, one per family plus alerts and dead letters.
const (
	Performance = "PERFORMANCE"
	Health      = "HEALTH"
	Monitoring  = "MONITORING"
	Validation  = "VALIDATION"
	System      = "SYSTEM"
	Alerts      = "ALERTS"
	DeadLetter  = "DEADLETTER"
)

// DeadLetterPrefix starts the subject of every dead-lettered message; the rest
// is the message's original subject.
const DeadLetterPrefix = "deadletter."

// ForFamily returns the stream that stores the events of fam.
func ForFamily(fam events.Family) string { return strings.ToUpper(string(fam)) }

// Definition is one stream definition and the file it came from.
type Definition struct {
	File   string
	Config jetstream.StreamConfig
}

// Definitions returns every embedded definition, sorted by stream name.
func Definitions() ([]Definition, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, err
	}
	defs := make([]Definition, 0, len(names))
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		def, err := Parse(name, data)
		if err != nil {
			return nil, err
		}
		defs = append(defs, def)
	}
	slices.SortFunc(defs, func(a, b Definition) int { return strings.Compare(a.Config.Name, b.Config.Name) })
	return defs, nil
}

// Parse reads one definition in the nats CLI's stream configuration format.
// Errors name the file.
func Parse(file string, data []byte) (Definition, error) {
	var cfg jetstream.StreamConfig
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Definition{}, fmt.Errorf("stream definition %s: %w", file, err)
	}
	switch {
	case cfg.Name == "":
		return Definition{}, fmt.Errorf("stream definition %s: name is required", file)
	case len(cfg.Subjects) == 0:
		return Definition{}, fmt.Errorf("stream definition %s: subjects are required", file)
	case cfg.Duplicates <= 0:
		return Definition{}, fmt.Errorf("stream definition %s: duplicate_window must be positive: publishers rely on Nats-Msg-Id dedup", file)
	}
	return Definition{File: file, Config: cfg}, nil
}

// Options adjust the definitions to a deployment.
type Options struct {
	// Replicas overrides num_replicas when positive (3 in a cluster).
	Replicas int
	// MaxBytesScale multiplies max_bytes when positive (e.g. 0.1 on a laptop).
	MaxBytesScale float64
}

// Outcome says what Apply did to one stream.
type Outcome string

// Outcomes of Apply.
const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "unchanged"
)

// Result is Apply's report for one stream.
type Result struct {
	Stream  string
	Outcome Outcome
}

// ErrConflict reports a definition the server refuses for an existing stream
// (e.g. a change of storage type, or subjects another stream owns).
var ErrConflict = errors.New("stream definition conflicts with the server")

// Apply creates every stream that is missing and updates every one whose
// definition changed, leaving the others alone. A definition the server
// refuses fails with [ErrConflict], naming the stream, the file and the
// server's reason; the other streams are still applied. Other failures (the
// server unreachable, ...) are returned as they are.
func Apply(ctx context.Context, js jetstream.JetStream, defs []Definition, o Options) ([]Result, error) {
	var results []Result
	var errs []error
	for _, d := range defs {
		cfg := d.Config
		if o.Replicas > 0 {
			cfg.Replicas = o.Replicas
		}
		if o.MaxBytesScale > 0 && cfg.MaxBytes > 0 {
			cfg.MaxBytes = max(int64(float64(cfg.MaxBytes)*o.MaxBytesScale), 1<<20)
		}
		outcome, err := applyOne(ctx, js, cfg)
		if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
			errs = append(errs, fmt.Errorf("%w: stream %s (from %s): the server refuses it: %s (error code %d)",
				ErrConflict, cfg.Name, d.File, apiErr.Description, apiErr.ErrorCode))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stream %s (from %s): %w", cfg.Name, d.File, err))
			continue
		}
		results = append(results, Result{Stream: cfg.Name, Outcome: outcome})
	}
	return results, errors.Join(errs...)
}

func applyOne(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (Outcome, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return "", err
		}
		return Created, nil
	}
	if err != nil {
		return "", err
	}
	if same(s.CachedInfo().Config, cfg) {
		return Unchanged, nil
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return "", err
	}
	return Updated, nil
}

// same compares the fields a definition sets; the server fills in the rest.
func same(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention &&
		have.MaxBytes == want.MaxBytes && have.MaxAge == want.MaxAge && have.MaxMsgs == want.MaxMsgs &&
		have.Storage == want.Storage && have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		have.Discard == want.Discard && have.Description == want.Description && have.AllowDirect == want.AllowDirect &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject && have.MaxMsgSize == want.MaxMsgSize
}
