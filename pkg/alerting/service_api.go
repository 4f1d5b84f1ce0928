package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// AlertStatus is an alert with why it is or is not notified.
type AlertStatus struct {
	*Alert
	SilencedBy  []string `json:"silenced_by,omitempty"`
	InhibitedBy []string `json:"inhibited_by,omitempty"`
}

// Alerts returns the pending, firing and recently resolved alerts.
func (s *Service) Alerts(ctx context.Context) ([]AlertStatus, error) {
	var out []AlertStatus
	err := s.do(ctx, func() {
		now := time.Now()
		for _, a := range s.engine.Alerts() {
			out = append(out, AlertStatus{Alert: a, SilencedBy: s.disp.SilencedBy(a.Labels, now), InhibitedBy: s.disp.InhibitedBy(a)})
		}
	})
	return out, err
}

// Silences returns every known silence.
func (s *Service) Silences(ctx context.Context) ([]*Silence, error) {
	var out []*Silence
	err := s.do(ctx, func() { out = s.disp.Silences() })
	return out, err
}

// PutSilence validates, stores and applies a silence; an empty ID makes a
// new one, StartsAt defaults to now.
func (s *Service) PutSilence(ctx context.Context, sil *Silence) (*Silence, error) {
	now := time.Now()
	if sil.ID == "" {
		sil.ID = events.NewID()
	}
	if sil.StartsAt.IsZero() {
		sil.StartsAt = now
	}
	sil.UpdatedAt = now
	if err := sil.Compile(); err != nil {
		return nil, err
	}
	if sil.matchers.matchAll() {
		return nil, ErrSilenceMatchesAll
	}
	if left := sil.EndsAt.Sub(now); s.opts.MaxSilence > 0 && left > s.opts.MaxSilence {
		return nil, fmt.Errorf("%w: it ends in %s, more than the limit of %s (Options.MaxSilence, --max-silence)",
			ErrSilenceTooLong, left.Round(time.Minute), s.opts.MaxSilence)
	}
	if err := s.store.SaveSilence(ctx, sil); err != nil {
		return nil, err
	}
	err := s.do(ctx, func() { s.disp.SetSilence(sil.ID, sil, time.Now()) })
	return sil, err
}

// ExpireSilence ends a silence now.
func (s *Service) ExpireSilence(ctx context.Context, id string) (*Silence, error) {
	var cur *Silence
	if err := s.do(ctx, func() {
		for _, x := range s.disp.Silences() {
			if x.ID == id {
				c := *x
				cur = &c
			}
		}
	}); err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, fmt.Errorf("no silence %q", id)
	}
	now := time.Now()
	if cur.EndsAt.After(now) {
		cur.EndsAt = now
		if !cur.EndsAt.After(cur.StartsAt) {
			cur.StartsAt = now.Add(-time.Nanosecond)
		}
	}
	return s.PutSilence(ctx, cur)
}

// Baselines returns the anomaly rules' learned baselines.
func (s *Service) Baselines(ctx context.Context) (map[string]SeriesBaseline, error) {
	var out map[string]SeriesBaseline
	err := s.do(ctx, func() { out = s.engine.Baselines() })
	return out, err
}

// RuleSummaries describes the loaded rules.
func (s *Service) RuleSummaries(ctx context.Context) ([]*Rule, error) {
	var out []*Rule
	err := s.do(ctx, func() { out = slices.Clone(s.cfg.Rules) })
	return out, err
}

// MarshalJSON renders a rule as written in the rules file.
func (r *Rule) MarshalJSON() ([]byte, error) {
	type plain Rule
	p := (*plain)(r)
	return json.Marshal(struct {
		*plain
		For           string `json:"for,omitempty"`
		KeepFiringFor string `json:"keep_firing_for,omitempty"`
		Window        string `json:"window,omitempty"`
		StaleAfter    string `json:"stale_after,omitempty"`
		Threshold     any    `json:"threshold,omitempty"`
	}{Threshold: thresholdJSON(r), plain: p, For: durStr(r.For), KeepFiringFor: durStr(r.KeepFiringFor), Window: durStr(r.Window), StaleAfter: durStr(r.StaleAfter)})
}

func durStr(d Duration) string {
	if d == 0 {
		return ""
	}
	return d.D().String()
}

// thresholdJSON renders a rule's threshold: the number, or "auto".
func thresholdJSON(r *Rule) any {
	if r.Auto != nil {
		return "auto"
	}
	if r.Threshold == nil {
		return nil
	}
	return *r.Threshold
}
