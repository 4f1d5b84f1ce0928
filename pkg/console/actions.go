package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// MaxSilence is the longest silence the console creates.
const MaxSilence = 7 * 24 * time.Hour

// maxSilences bounds the silences listed per request.
const maxSilences = 1000

// ErrBadRequest is wrapped by errors about a request's own values.
var ErrBadRequest = errors.New("console: bad request")

// Silences returns the silences in the alert managers' bucket, newest
// first, at most 1,000.
func (c *Console) Silences(ctx context.Context) ([]*alerting.Silence, error) {
	out, err := readBucket[alerting.Silence](ctx, c.o.Bus.JetStream(), alerting.BucketSilences, maxSilences)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *alerting.Silence) int { return b.StartsAt.Compare(a.StartsAt) })
	return out, nil
}

// readBucket decodes up to limit JSON values of a key-value bucket (none
// when the bucket does not exist yet: the console never creates it). A key
// deleted meanwhile, or a value that does not decode, is skipped.
func readBucket[T any](ctx context.Context, js jetstream.JetStream, bucket string, limit int) ([]*T, error) {
	out := []*T{}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = lister.Stop() }()
	for key := range lister.Keys() {
		if len(out) == limit {
			break
		}
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue // deleted meanwhile
		}
		var v T
		if json.Unmarshal(e.Value(), &v) == nil {
			out = append(out, &v)
		}
	}
	return out, nil
}

// CreateSilence stores the silence req describes where every alert
// manager watches for silences. A silence without matchers or longer than
// [MaxSilence] is refused ([ErrBadRequest]).
func (c *Console) CreateSilence(ctx context.Context, req alerting.SilenceRequest) (*alerting.Silence, error) {
	now := c.o.Now()
	req.ID = ""
	sil, err := req.Silence(now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	switch {
	case len(sil.Matchers) == 0:
		return nil, fmt.Errorf("%w: a silence needs at least one matcher", ErrBadRequest)
	case sil.EndsAt.Sub(now) > MaxSilence:
		return nil, fmt.Errorf("%w: a silence may last at most %s", ErrBadRequest, MaxSilence)
	case !sil.EndsAt.After(sil.StartsAt):
		return nil, fmt.Errorf("%w: ends_at must be after starts_at", ErrBadRequest)
	}
	sil.ID, sil.UpdatedAt = events.NewID(), now
	return sil, c.putSilence(ctx, sil)
}

// ExpireSilence ends the silence id now.
func (c *Console) ExpireSilence(ctx context.Context, id string) (*alerting.Silence, error) {
	kv, err := c.o.Bus.JetStream().KeyValue(ctx, alerting.BucketSilences)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("%w: no silence %q", ErrBadRequest, id)
	}
	if err != nil {
		return nil, err
	}
	var sil alerting.Silence
	if err := json.Unmarshal(e.Value(), &sil); err != nil {
		return nil, fmt.Errorf("silence %q: %w", id, err)
	}
	now := c.o.Now()
	if sil.EndsAt.After(now) {
		sil.EndsAt = now
		if !sil.EndsAt.After(sil.StartsAt) {
			sil.StartsAt = now.Add(-time.Nanosecond)
		}
	}
	sil.UpdatedAt = now
	return &sil, c.putSilence(ctx, &sil)
}

func (c *Console) putSilence(ctx context.Context, sil *alerting.Silence) error {
	kv, err := c.o.Bus.JetStream().KeyValue(ctx, alerting.BucketSilences)
	if err != nil {
		return fmt.Errorf("silences bucket: %w", err)
	}
	data, err := json.Marshal(sil)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, sil.ID, data)
	return err
}

// DeadLetter is one dead letter as the console lists it.
type DeadLetter struct {
	Seq         uint64    `json:"seq"`
	Stored      time.Time `json:"stored"`
	Type        string    `json:"type"`
	Subject     string    `json:"subject"`
	Stream      string    `json:"stream"`
	Reason      string    `json:"reason"`
	Deliveries  uint64    `json:"deliveries"`
	BatchIndex  int       `json:"batch_index"`
	Data        string    `json:"data"`
	DataOmitted int       `json:"data_omitted,omitempty"`
}

// maxDeadLetters bounds the dead letters listed per request; maxDeadData
// the payload bytes shown of each.
const (
	maxDeadLetters = 500
	maxDeadData    = 2048
)

// DeadLetters lists the dead letters whose event type matches pattern
// (">" for all), oldest first, at most limit (1 to 500).
func (c *Console) DeadLetters(ctx context.Context, pattern string, limit int) ([]DeadLetter, error) {
	if err := events.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("%w: type: %w", ErrBadRequest, err)
	}
	if limit <= 0 || limit > maxDeadLetters {
		return nil, fmt.Errorf("%w: limit must be between 1 and %d", ErrBadRequest, maxDeadLetters)
	}
	dls, err := c.o.Bus.DeadLetters(ctx, pattern, limit)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(dls))
	for _, d := range dls {
		out = append(out, deadLetter(d))
	}
	return out, nil
}

func deadLetter(d jsbus.DeadLetter) DeadLetter {
	data := d.Data
	omitted := 0
	if len(data) > maxDeadData {
		data, omitted = data[:maxDeadData], len(data)-maxDeadData
	}
	return DeadLetter{
		Seq: d.Seq, Stored: d.Stored.UTC(), Type: string(events.TypeOfSubject(d.Subject)), Subject: d.Subject, Stream: d.Stream,
		Reason: d.Reason, Deliveries: d.Deliveries, BatchIndex: d.BatchIndex, Data: string(data), DataOmitted: omitted,
	}
}
