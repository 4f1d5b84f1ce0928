package events

import (
	"fmt"
	"strings"
	"time"
)

// StartKind says where a new subscription begins in the history of events.
type StartKind uint8

// Start positions.
const (
	// StartNew delivers only events published after the subscription (the default).
	StartNew StartKind = iota
	// StartAll delivers every retained event, then new ones.
	StartAll
	// StartTime delivers events stored at or after a time.
	StartTime
	// StartSequence delivers events from a bus sequence number on.
	StartSequence
)

// SubscribeConfig is the result of applying [SubscribeOption]s. Buses read it;
// applications use the options.
type SubscribeConfig struct {
	// Durable names a consumer whose position outlives the subscription.
	Durable string
	// Group names a set of subscriptions that share the work: each event goes
	// to one member.
	Group string
	// Start, StartAt and StartSeq say where a new consumer begins. For an
	// existing durable they are ignored: it resumes where it stopped.
	Start    StartKind
	StartAt  time.Time
	StartSeq uint64
	// MaxDeliver bounds deliveries of one event (0: the bus default).
	MaxDeliver int
}

// ConsumerName is the name that identifies a shared or durable consumer: the
// durable name, else the group name, else "".
func (c SubscribeConfig) ConsumerName() string {
	if c.Durable != "" {
		return c.Durable
	}
	return c.Group
}

// SubscribeOption configures a subscription. Each option checks its own value.
type SubscribeOption func(*SubscribeConfig) error

// NewSubscribeConfig applies opts in order and checks that they fit together.
// Errors wrap [ErrInvalidOption].
func NewSubscribeConfig(opts ...SubscribeOption) (SubscribeConfig, error) {
	var c SubscribeConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return SubscribeConfig{}, err
		}
	}
	if c.Durable != "" && c.Group != "" && c.Durable != c.Group {
		return SubscribeConfig{}, fmt.Errorf("%w: durable %q and group %q differ; a durable shared by a group uses one name", ErrInvalidOption, c.Durable, c.Group)
	}
	return c, nil
}

// checkName accepts names usable as NATS consumer names and Redis group names.
func checkName(opt, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s: empty name", ErrInvalidOption, opt)
	}
	if len(name) > 64 {
		return fmt.Errorf("%w: %s %q: longer than 64 bytes", ErrInvalidOption, opt, name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return r != '-' && r != '_' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
	}); i >= 0 {
		return fmt.Errorf("%w: %s %q: only letters, digits, '-' and '_' are allowed (byte %d)", ErrInvalidOption, opt, name, i)
	}
	return nil
}

// Durable names the subscription's consumer so that its position survives
// Unsubscribe (and, on persistent buses, a restart): a later Subscribe with
// the same name resumes after the last handled event. Subscriptions sharing
// one durable name share its events.
func Durable(name string) SubscribeOption {
	return func(c *SubscribeConfig) error {
		if err := checkName("Durable", name); err != nil {
			return err
		}
		c.Durable = name
		return nil
	}
}

// Group makes the subscription one member of a group: each event matching the
// pattern goes to exactly one member.
func Group(name string) SubscribeOption {
	return func(c *SubscribeConfig) error {
		if err := checkName("Group", name); err != nil {
			return err
		}
		c.Group = name
		return nil
	}
}

// DeliverAll starts a new consumer at the oldest retained event.
func DeliverAll() SubscribeOption {
	return func(c *SubscribeConfig) error {
		c.Start = StartAll
		return nil
	}
}

// DeliverNew starts a new consumer with the next event published (the default).
func DeliverNew() SubscribeOption {
	return func(c *SubscribeConfig) error {
		c.Start = StartNew
		return nil
	}
}

// StartAtTime starts a new consumer at the first event stored at or after t.
func StartAtTime(t time.Time) SubscribeOption {
	return func(c *SubscribeConfig) error {
		if t.IsZero() {
			return fmt.Errorf("%w: StartAtTime: zero time", ErrInvalidOption)
		}
		c.Start, c.StartAt = StartTime, t
		return nil
	}
}

// StartAtSequence starts a new consumer at bus sequence seq (from 1).
func StartAtSequence(seq uint64) SubscribeOption {
	return func(c *SubscribeConfig) error {
		if seq == 0 {
			return fmt.Errorf("%w: StartAtSequence: sequences start at 1", ErrInvalidOption)
		}
		c.Start, c.StartSeq = StartSequence, seq
		return nil
	}
}

// MaxDeliver bounds how often one event is delivered to a failing handler
// before it is dead-lettered. n must be at least 1.
func MaxDeliver(n int) SubscribeOption {
	return func(c *SubscribeConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: MaxDeliver(%d): must be at least 1", ErrInvalidOption, n)
		}
		c.MaxDeliver = n
		return nil
	}
}
