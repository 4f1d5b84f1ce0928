package aggregator

// SetMembersView makes s see members instead of the members bucket: a test
// gives two instances views that disagree, as a live instance taken for dead
// by its peers has.
func SetMembersView(s *Service, members func() []string) { s.membersView = members }
