package aggregator

// SetMembersView makes s see members instead of the members bucket: a test
// gives two instances views that disagree, as a live instance taken for dead
// by its peers has.
func SetMembersView(s *Service, members func() []string) { s.membersView = members }

// SetHandoffWatchFault makes every watch of a handoff record fail while
// fault returns an error.
func SetHandoffWatchFault(s *Service, fault func() error) { s.handoffWatchFault = fault }
