package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// inputPatterns returns the event patterns the rules read, plus
// monitoring.config.changed for reloads.
func inputPatterns(cfg *Config) []string {
	set := map[string]bool{}
	for _, r := range cfg.Rules {
		for _, in := range r.Inputs() {
			set[in] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// subscribe makes the input subscriptions match the rules.
func (s *Service) subscribe(ctx context.Context) error {
	if s.opts.Bus == nil {
		return nil
	}
	want := inputPatterns(s.cfg)
	if s.opts.RulesFile != "" {
		want = append(want, string(events.ConfigChanged))
	}
	for p, sub := range s.subs {
		if !slices.Contains(want, p) {
			s.bg.Go(func() { _ = sub.Unsubscribe() }) // its handler may be waiting for this loop
			delete(s.subs, p)
		}
	}
	for _, p := range want {
		if s.subs[p] != nil {
			continue
		}
		var opts []events.SubscribeOption
		h := events.HandlerFunc(func(hctx context.Context, ev events.Event) error { return s.observe(hctx, ev, p) })
		if p == string(events.ConfigChanged) {
			h = s.onConfigChanged
		} else if s.opts.Durable != "" {
			sum := sha256.Sum256([]byte(p))
			opts = append(opts, events.Durable(s.opts.Durable+"-"+hex.EncodeToString(sum[:4])))
		}
		sub, err := s.opts.Bus.Subscribe(ctx, p, h, opts...)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", p, err)
		}
		s.subs[p] = sub
	}
	return nil
}

func (s *Service) unsubscribeAll() {
	for p, sub := range s.subs {
		_ = sub.Unsubscribe()
		delete(s.subs, p)
	}
}

// ReloadComponent is the config.component value of a
// monitoring.config.changed event that makes alert managers reload their
// rules file.
const ReloadComponent = "alertmanager"

func (s *Service) onConfigChanged(ctx context.Context, ev events.Event) error {
	c, ok := ev.(*events.ControlEvent)
	if !ok || c.Config["component"] != ReloadComponent {
		return nil // e.g. breaker reports
	}
	s.bg.Go(func() {
		if err := s.ReloadFile(context.WithoutCancel(ctx)); err != nil {
			s.log.Error().Err(err).Msg("reload on config.changed failed")
		}
	})
	return nil
}

// ReloadFile re-reads the rules file and switches to it; on error the
// running configuration stays.
func (s *Service) ReloadFile(ctx context.Context) error {
	if s.opts.RulesFile == "" {
		return errors.New("no rules file to reload")
	}
	cfg, err := Load(s.opts.RulesFile)
	if err != nil {
		s.m.reloads.WithLabelValues("failure").Inc()
		s.m.configOK.Set(0)
		return err
	}
	return s.Reload(ctx, cfg)
}

// Reload switches to cfg, keeping the state of alerts whose rule remains.
func (s *Service) Reload(ctx context.Context, cfg *Config) error {
	var err error
	derr := s.do(ctx, func() {
		now := time.Now()
		s.cfg = cfg
		s.apply(ctx, s.engine.SetRules(cfg.Rules, now))
		s.disp.SetConfig(cfg, now)
		s.stopIntegrations()
		if err = s.startIntegrations(cfg); err != nil {
			return
		}
		err = s.subscribe(s.runCtx)
	})
	if derr != nil {
		err = derr
	}
	if err != nil {
		s.m.reloads.WithLabelValues("failure").Inc()
		s.m.configOK.Set(0)
		return err
	}
	select {
	case s.relearn <- struct{}{}:
	default:
	}
	s.m.reloads.WithLabelValues("success").Inc()
	s.m.configOK.Set(1)
	s.log.Info().Int("rules", len(cfg.Rules)).Msg("rules reloaded")
	return nil
}
