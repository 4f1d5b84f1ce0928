package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	errNoMatchers = errors.New("a silence needs at least one matcher")
	// ErrSilenceMatchesAll is returned by [Service.PutSilence] for a
	// silence whose matchers are all match-anything regular expressions
	// (such as alertname=~".*"): it would mute every alert.
	ErrSilenceMatchesAll = errors.New("a silence must not match every alert: give at least one matcher that names what to silence (name=value, or a regular expression that does not match everything)")
	// ErrSilenceTooLong is returned by [Service.PutSilence] for a silence
	// that ends later than Options.MaxSilence from now.
	ErrSilenceTooLong = errors.New("silence too long")
	errSilenceEnds    = errors.New("a silence must end after it starts")
	// ErrConflict is returned by [Store.PutNflog] when the entry changed
	// since it was read: another instance got there first.
	ErrConflict = errors.New("notification log entry changed concurrently")
)

// Store keeps what must survive a restart and be shared between
// instances: alert state, silences and the notification log.
type Store interface {
	LoadAlerts(ctx context.Context) ([]*Alert, error)
	SaveAlert(ctx context.Context, a *Alert) error
	DeleteAlert(ctx context.Context, fingerprint string) error
	SaveSilence(ctx context.Context, s *Silence) error
	DeleteSilence(ctx context.Context, id string) error
	// WatchSilences calls fn with every stored silence, then with every
	// change until ctx ends; it returns once the stored ones were passed.
	WatchSilences(ctx context.Context, fn func(*Silence)) error
	// Nflog returns a log entry and its revision (0: no entry).
	Nflog(ctx context.Context, key string) (NflogEntry, uint64, error)
	// PutNflog stores e if the entry is still at revision rev (0: absent),
	// else returns [ErrConflict]. It returns the new revision.
	PutNflog(ctx context.Context, key string, e NflogEntry, rev uint64) (uint64, error)
}

// MemoryStore is a Store in process memory, shared by the instances of one
// process (tests, a single-instance deployment without JetStream).
type MemoryStore struct {
	mu       sync.Mutex
	alerts   map[string][]byte
	silences map[string][]byte
	nflog    map[string]memEntry
	rev      uint64
	watchers []func(*Silence)
	memPatterns
}

type memEntry struct {
	data []byte
	rev  uint64
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{alerts: map[string][]byte{}, silences: map[string][]byte{}, nflog: map[string]memEntry{}}
}

// LoadAlerts implements Store.
func (m *MemoryStore) LoadAlerts(context.Context) ([]*Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Alert, 0, len(m.alerts))
	for _, data := range m.alerts {
		var a Alert
		if err := json.Unmarshal(data, &a); err != nil {
			return nil, err
		}
		out = append(out, &a)
	}
	return out, nil
}

// SaveAlert implements Store.
func (m *MemoryStore) SaveAlert(_ context.Context, a *Alert) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.alerts[a.Fingerprint] = data
	m.mu.Unlock()
	return nil
}

// DeleteAlert implements Store.
func (m *MemoryStore) DeleteAlert(_ context.Context, fp string) error {
	m.mu.Lock()
	delete(m.alerts, fp)
	m.mu.Unlock()
	return nil
}

// SaveSilence implements Store.
func (m *MemoryStore) SaveSilence(_ context.Context, s *Silence) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.silences[s.ID] = data
	ws := append([]func(*Silence){}, m.watchers...)
	m.mu.Unlock()
	for _, w := range ws {
		w(decodeSilence(data))
	}
	return nil
}

// DeleteSilence implements Store.
func (m *MemoryStore) DeleteSilence(_ context.Context, id string) error {
	m.mu.Lock()
	delete(m.silences, id)
	m.mu.Unlock()
	return nil
}

func decodeSilence(data []byte) *Silence {
	var s Silence
	if json.Unmarshal(data, &s) != nil || s.Compile() != nil {
		return nil
	}
	return &s
}

// WatchSilences implements Store.
func (m *MemoryStore) WatchSilences(ctx context.Context, fn func(*Silence)) error {
	m.mu.Lock()
	var cur []*Silence
	for _, data := range m.silences {
		if s := decodeSilence(data); s != nil {
			cur = append(cur, s)
		}
	}
	var active bool
	var amu sync.Mutex
	m.watchers = append(m.watchers, func(s *Silence) {
		amu.Lock()
		defer amu.Unlock()
		if active && s != nil {
			fn(s)
		}
	})
	m.mu.Unlock()
	for _, s := range cur {
		fn(s)
	}
	amu.Lock()
	active = true
	amu.Unlock()
	context.AfterFunc(ctx, func() {
		amu.Lock()
		active = false
		amu.Unlock()
	})
	return nil
}

// Nflog implements Store.
func (m *MemoryStore) Nflog(_ context.Context, key string) (NflogEntry, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	me, ok := m.nflog[key]
	if !ok {
		return NflogEntry{}, 0, nil
	}
	var e NflogEntry
	err := json.Unmarshal(me.data, &e)
	return e, me.rev, err
}

// PutNflog implements Store.
func (m *MemoryStore) PutNflog(_ context.Context, key string, e NflogEntry, rev uint64) (uint64, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nflog[key].rev != rev {
		return 0, ErrConflict
	}
	m.rev++
	m.nflog[key] = memEntry{data: data, rev: m.rev}
	return m.rev, nil
}

// KV bucket names of [KVStore].
const (
	BucketAlerts   = "jetmon_alerts"
	BucketSilences = "jetmon_silences"
	BucketNflog    = "jetmon_nflog"
)

// KVStore keeps alert state, silences and the notification log in
// JetStream key-value buckets, shared by every alertmanager instance.
type KVStore struct {
	alerts, silences, nflog jetstream.KeyValue
	patterns                jetstream.ObjectStore
}

// NewKVStore creates or opens the buckets with the given replica count.
// Notification log entries expire after nflogTTL (at least the longest
// repeat_interval; default 5 days).
func NewKVStore(ctx context.Context, js jetstream.JetStream, replicas int, nflogTTL time.Duration) (*KVStore, error) {
	if nflogTTL <= 0 {
		nflogTTL = 5 * 24 * time.Hour
	}
	replicas = max(replicas, 1)
	open := func(name, desc string, ttl time.Duration) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, Description: desc, History: 1, TTL: ttl, Replicas: replicas, Storage: jetstream.FileStorage,
		})
		if err != nil {
			return nil, fmt.Errorf("key-value bucket %s: %w", name, err)
		}
		return kv, nil
	}
	var s KVStore
	var err error
	if s.alerts, err = open(BucketAlerts, "jetmon alert state by fingerprint", 0); err != nil {
		return nil, err
	}
	if s.silences, err = open(BucketSilences, "jetmon silences by id", 0); err != nil {
		return nil, err
	}
	if s.nflog, err = open(BucketNflog, "jetmon notification log", nflogTTL); err != nil {
		return nil, err
	}
	if s.patterns, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketPatterns, Description: "jetmon pattern rule state by instance", Replicas: replicas, Storage: jetstream.FileStorage,
	}); err != nil {
		return nil, fmt.Errorf("object store %s: %w", BucketPatterns, err)
	}
	return &s, nil
}

// LoadAlerts implements Store.
func (s *KVStore) LoadAlerts(ctx context.Context) ([]*Alert, error) {
	lister, err := s.alerts.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Alert
	for key := range lister.Keys() {
		e, err := s.alerts.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var a Alert
		if err := json.Unmarshal(e.Value(), &a); err != nil {
			continue // unreadable state is not worth refusing to start over
		}
		out = append(out, &a)
	}
	return out, nil
}

// SaveAlert implements Store.
func (s *KVStore) SaveAlert(ctx context.Context, a *Alert) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.alerts.Put(ctx, a.Fingerprint, data)
	return err
}

// DeleteAlert implements Store.
func (s *KVStore) DeleteAlert(ctx context.Context, fp string) error {
	err := s.alerts.Delete(ctx, fp)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// SaveSilence implements Store.
func (s *KVStore) SaveSilence(ctx context.Context, sil *Silence) error {
	data, err := json.Marshal(sil)
	if err != nil {
		return err
	}
	_, err = s.silences.Put(ctx, sil.ID, data)
	return err
}

// DeleteSilence implements Store.
func (s *KVStore) DeleteSilence(ctx context.Context, id string) error {
	err := s.silences.Purge(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// WatchSilences implements Store.
func (s *KVStore) WatchSilences(ctx context.Context, fn func(*Silence)) error {
	w, err := s.silences.WatchAll(ctx)
	if err != nil {
		return err
	}
	initial := make(chan struct{})
	go func() {
		defer func() { _ = w.Stop() }()
		done := false
		for {
			select {
			case <-ctx.Done():
				if !done {
					close(initial)
				}
				return
			case e, ok := <-w.Updates():
				if !ok {
					if !done {
						close(initial)
					}
					return
				}
				if e == nil {
					if !done {
						done = true
						close(initial)
					}
					continue
				}
				if e.Operation() != jetstream.KeyValuePut {
					continue
				}
				if sil := decodeSilence(e.Value()); sil != nil {
					fn(sil)
				}
			}
		}
	}()
	select {
	case <-initial:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Nflog implements Store.
func (s *KVStore) Nflog(ctx context.Context, key string) (NflogEntry, uint64, error) {
	e, err := s.nflog.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return NflogEntry{}, 0, nil
	}
	if err != nil {
		return NflogEntry{}, 0, err
	}
	var ne NflogEntry
	// An unreadable entry counts as empty: the next send overwrites it.
	_ = json.Unmarshal(e.Value(), &ne)
	return ne, e.Revision(), nil
}

// PutNflog implements Store.
func (s *KVStore) PutNflog(ctx context.Context, key string, e NflogEntry, rev uint64) (uint64, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	var nrev uint64
	if rev == 0 {
		nrev, err = s.nflog.Create(ctx, key, data)
	} else {
		nrev, err = s.nflog.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return 0, ErrConflict
	}
	return nrev, err
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
