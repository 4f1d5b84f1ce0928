package aggregator

import (
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmon/jetmon/pkg/events"
)

// SetMembersView makes s see members instead of the members bucket: a test
// gives two instances views that disagree, as a live instance taken for dead
// by its peers has.
func SetMembersView(s *Service, members func() []string) { s.membersView = members }

// SetHandoffWatchFault makes every watch of a handoff record fail while
// fault returns an error.
func SetHandoffWatchFault(s *Service, fault func() error) { s.handoffWatchFault = fault }

// SetPublishFault makes publishing a window fail while fault returns an
// error for it.
func SetPublishFault(s *Service, fault func(*events.AggregateEvent) error) { s.publishFault = fault }

// Handoffs returns jetmon_aggregator_handoffs_total of outcome.
func Handoffs(s *Service, outcome string) float64 {
	return testutil.ToFloat64(s.m.handoffs.WithLabelValues(outcome))
}
