package alerting

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Silence mutes the alerts its matchers select between StartsAt and EndsAt.
type Silence struct {
	ID string `json:"id"`
	// Matchers use the rules file's syntax: value, "!=v", "=~re", "!~re".
	Matchers  map[string]string `json:"matchers"`
	StartsAt  time.Time         `json:"starts_at"`
	EndsAt    time.Time         `json:"ends_at"`
	CreatedBy string            `json:"created_by,omitempty"`
	Comment   string            `json:"comment,omitempty"`
	UpdatedAt time.Time         `json:"updated_at"`

	matchers Matchers
}

// Compile checks the silence and prepares its matchers.
func (s *Silence) Compile() error {
	ms, err := NewMatchers(s.Matchers)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return errNoMatchers
	}
	if !s.EndsAt.After(s.StartsAt) {
		return errSilenceEnds
	}
	s.matchers = ms
	return nil
}

// Active reports whether the silence mutes at now.
func (s *Silence) Active(now time.Time) bool { return !now.Before(s.StartsAt) && now.Before(s.EndsAt) }

// Notification is what one receiver is told about one group of alerts.
type Notification struct {
	Receiver    string
	GroupKey    string
	GroupLabels Labels
	// Firing alerts are neither silenced nor inhibited; Resolved alerts
	// resolved since the group's last flush.
	Firing, Resolved []*Alert
	RepeatInterval   time.Duration
	At               time.Time
}

// routeOpts are a route's settings after inheritance.
type routeOpts struct {
	receiver                                 string
	groupBy                                  []string
	groupWait, groupInterval, repeatInterval time.Duration
}

// routes returns the settings of every route alert a goes to.
func (r *Route) routes(a Labels, parent routeOpts) []routeOpts {
	o := parent
	if r.Receiver != "" {
		o.receiver = r.Receiver
	}
	if r.GroupBy != nil {
		o.groupBy = r.GroupBy
	}
	o.groupWait = durOr(r.GroupWait, o.groupWait)
	o.groupInterval = durOr(r.GroupInterval, o.groupInterval)
	o.repeatInterval = durOr(r.RepeatInterval, o.repeatInterval)
	var out []routeOpts
	for _, c := range r.Routes {
		if !c.matchers.Matches(a) {
			continue
		}
		out = append(out, c.routes(a, o)...)
		if !c.Continue {
			return out
		}
	}
	if len(out) == 0 {
		out = []routeOpts{o}
	}
	return out
}

type group struct {
	key       string
	labels    Labels
	opts      routeOpts
	alerts    map[string]*Alert
	next      time.Time // next flush
	lastFlush time.Time
	flushed   bool
}

// Dispatcher groups firing and resolved alerts by route and decides when
// each group is flushed to its receiver, applying silences and inhibition.
// Like [Engine] it does no I/O and is not safe for concurrent use.
type Dispatcher struct {
	cfg      *Config
	groups   map[string]*group
	firing   map[string]*Alert // every firing alert, for inhibition
	silences map[string]*Silence
	// muteCheck is when a silence next starts or ends.
	muteCheck time.Time
}

// NewDispatcher returns a dispatcher for cfg's route tree and inhibition rules.
func NewDispatcher(cfg *Config) *Dispatcher {
	return &Dispatcher{cfg: cfg, groups: map[string]*group{}, firing: map[string]*Alert{}, silences: map[string]*Silence{}}
}

// SetConfig switches to a reloaded configuration; groups of vanished
// routes are kept until they are empty.
func (d *Dispatcher) SetConfig(cfg *Config, now time.Time) {
	d.cfg = cfg
	d.muteChanged(now)
}

func groupKey(o routeOpts, a Labels) (string, Labels) {
	gl := Labels{}
	all := slices.Contains(o.groupBy, "...")
	if all {
		gl = maps.Clone(a)
	} else {
		for _, k := range o.groupBy {
			if v, ok := a[k]; ok {
				gl[k] = v
			}
		}
	}
	return o.receiver + ":" + gl.String(), gl
}

// Update takes the new state of an alert: firing and resolved alerts join
// or update their groups; pending alerts are not notified.
func (d *Dispatcher) Update(a *Alert, now time.Time) {
	switch a.State {
	case StateFiring:
		d.firing[a.Fingerprint] = a
	case StateResolved:
		delete(d.firing, a.Fingerprint)
	default:
		delete(d.firing, a.Fingerprint)
		return
	}
	inhibitorChanged := false // only a possible source alert changes what is inhibited
	for _, ir := range d.cfg.InhibitRules {
		if ir.source.Matches(a.Labels) {
			inhibitorChanged = true
			break
		}
	}
	for _, o := range d.cfg.Route.routes(a.Labels, routeOpts{
		groupWait: DefaultGroupWait, groupInterval: DefaultGroupInterval, repeatInterval: DefaultRepeatInterval,
	}) {
		key, gl := groupKey(o, a.Labels)
		g := d.groups[key]
		if g == nil {
			if a.State == StateResolved {
				continue // never notified as firing here
			}
			g = &group{key: key, labels: gl, opts: o, alerts: map[string]*Alert{}, next: now.Add(o.groupWait)}
			d.groups[key] = g
		}
		prev := g.alerts[a.Fingerprint]
		g.alerts[a.Fingerprint] = a
		if prev == nil || prev.State != a.State {
			d.changed(g)
		}
	}
	if inhibitorChanged {
		d.muteChanged(now)
	}
}

// changed schedules a flush of g for a change of its alerts: after
// group_wait for a new group, else group_interval after the last flush.
func (d *Dispatcher) changed(g *group) {
	if !g.flushed {
		return // the first flush is already at creation + group_wait
	}
	if t := g.lastFlush.Add(g.opts.groupInterval); t.Before(g.next) {
		g.next = t
	}
}

// muteChanged re-examines every group after silences or inhibitions changed.
func (d *Dispatcher) muteChanged(now time.Time) {
	for _, g := range d.groups {
		d.changed(g)
	}
	d.muteCheck = time.Time{}
	for _, s := range d.silences {
		for _, t := range []time.Time{s.StartsAt, s.EndsAt} {
			if t.After(now) && (d.muteCheck.IsZero() || t.Before(d.muteCheck)) {
				d.muteCheck = t
			}
		}
	}
}

// SetSilence adds, replaces or (with a nil silence) deletes a silence. The
// silence must have been compiled.
func (d *Dispatcher) SetSilence(id string, s *Silence, now time.Time) {
	if s == nil {
		delete(d.silences, id)
	} else {
		d.silences[id] = s
	}
	d.muteChanged(now)
}

// Silences returns the known silences, sorted by id.
func (d *Dispatcher) Silences() []*Silence {
	out := make([]*Silence, 0, len(d.silences))
	for _, id := range slices.Sorted(maps.Keys(d.silences)) {
		out = append(out, d.silences[id])
	}
	return out
}

// SilencedBy returns the ids of the active silences muting labels.
func (d *Dispatcher) SilencedBy(l Labels, now time.Time) []string {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(d.silences)) {
		if s := d.silences[id]; s.Active(now) && s.matchers.Matches(l) {
			ids = append(ids, id)
		}
	}
	return ids
}

// InhibitedBy returns the fingerprints of firing alerts inhibiting a.
func (d *Dispatcher) InhibitedBy(a *Alert) []string {
	var by []string
	for _, ir := range d.cfg.InhibitRules {
		if !ir.target.Matches(a.Labels) {
			continue
		}
		for fp, src := range d.firing {
			if fp == a.Fingerprint || !ir.source.Matches(src.Labels) {
				continue
			}
			equal := true
			for _, l := range ir.Equal {
				if src.Labels[l] != a.Labels[l] {
					equal = false
					break
				}
			}
			if equal {
				by = append(by, fp)
			}
		}
	}
	slices.Sort(by)
	return slices.Compact(by)
}

// Muted reports whether a is silenced or inhibited at now.
func (d *Dispatcher) Muted(a *Alert, now time.Time) bool {
	return len(d.SilencedBy(a.Labels, now)) > 0 || len(d.InhibitedBy(a)) > 0
}

// Next returns when [Dispatcher.Due] next has something to do, or the zero
// time.
func (d *Dispatcher) Next() time.Time {
	next := d.muteCheck
	for _, g := range d.groups {
		if next.IsZero() || g.next.Before(next) {
			next = g.next
		}
	}
	return next
}

// Due flushes the groups due at now and returns their notifications.
// Resolved alerts leave their group with the flush; a group without alerts
// is removed. Whether a notification is actually sent is the notification
// log's decision (see [Decide]).
func (d *Dispatcher) Due(now time.Time) []*Notification {
	if !d.muteCheck.IsZero() && !now.Before(d.muteCheck) {
		d.muteChanged(now)
	}
	var out []*Notification
	for _, key := range slices.Sorted(maps.Keys(d.groups)) {
		g := d.groups[key]
		if now.Before(g.next) {
			continue
		}
		n := &Notification{Receiver: g.opts.receiver, GroupKey: g.key, GroupLabels: g.labels, RepeatInterval: g.opts.repeatInterval, At: now}
		for _, fp := range slices.Sorted(maps.Keys(g.alerts)) {
			a := g.alerts[fp]
			switch {
			case a.State == StateResolved:
				n.Resolved = append(n.Resolved, a)
				delete(g.alerts, fp)
			case !d.Muted(a, now):
				n.Firing = append(n.Firing, a)
			}
		}
		out = append(out, n)
		g.flushed, g.lastFlush = true, now
		g.next = now.Add(g.opts.repeatInterval)
		if len(g.alerts) == 0 {
			delete(d.groups, key)
		}
	}
	return out
}

// Retry schedules the group of n to be flushed again at t (used when a
// peer instance holds the notification log entry).
func (d *Dispatcher) Retry(n *Notification, t time.Time) {
	if g := d.groups[n.GroupKey]; g != nil && t.Before(g.next) {
		g.next = t
	}
}

// NflogEntry is the notification log's record of what one integration of
// a receiver last sent for one group.
type NflogEntry struct {
	// Firing lists the fingerprints of the firing alerts last notified.
	Firing []string  `json:"firing"`
	SentAt time.Time `json:"sent_at,omitzero"`
	// ClaimedBy is the instance sending now, until ClaimExpires.
	ClaimedBy    string    `json:"claimed_by,omitempty"`
	ClaimExpires time.Time `json:"claim_expires,omitzero"`
}

// Decision is what to do with a notification given the log.
type Decision int

// Decisions of [Decide].
const (
	// Skip: nothing new to say (already sent, or nothing to send).
	Skip Decision = iota
	// Send: claim the entry and send.
	Send
	// Busy: another instance is sending for this group; look again later.
	Busy
)

// Decide compares n with the log entry of its receiver and group. For
// Send, it returns the notification to send: only resolved alerts that
// were notified as firing are included.
func Decide(e NflogEntry, n *Notification, instance string, now time.Time) (Decision, *Notification) {
	if e.ClaimedBy != "" && e.ClaimedBy != instance && now.Before(e.ClaimExpires) {
		return Busy, nil
	}
	out := *n
	out.Resolved = nil
	for _, a := range n.Resolved {
		if slices.Contains(e.Firing, a.Fingerprint) {
			out.Resolved = append(out.Resolved, a)
		}
	}
	firing := fingerprints(n.Firing)
	if len(firing) == 0 && len(out.Resolved) == 0 {
		return Skip, nil
	}
	if slices.Equal(firing, e.Firing) && len(out.Resolved) == 0 && !e.SentAt.IsZero() && now.Before(e.SentAt.Add(n.RepeatInterval)) {
		return Skip, nil
	}
	return Send, &out
}

func fingerprints(as []*Alert) []string {
	fps := make([]string, len(as))
	for i, a := range as {
		fps[i] = a.Fingerprint
	}
	slices.Sort(fps)
	return fps
}

// nflogKey names the log entry of one integration of a receiver for one
// group: a KV-safe token.
func nflogKey(receiver string, integration int, groupKey string) string {
	l := Labels{"receiver": receiver, "integration": strings.Repeat("i", integration+1), "group": groupKey}
	return l.Fingerprint()
}
