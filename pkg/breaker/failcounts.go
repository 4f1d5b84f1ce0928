package breaker

// failCounts counts asynchronous failures per event id, for at most limit
// ids: past that, the ids counted longest ago are forgotten first. It is not
// safe for concurrent use; the Publisher serialises access.
type failCounts struct {
	limit int
	n     map[string]int
	order []string // the counted ids, in the order they were first counted
}

func newFailCounts(limit int) *failCounts {
	return &failCounts{limit: max(limit, 1), n: map[string]int{}}
}

// inc counts one more failure of id and returns its count.
func (f *failCounts) inc(id string) int {
	if c, ok := f.n[id]; ok {
		f.n[id] = c + 1
		return c + 1
	}
	for len(f.n) >= f.limit && len(f.order) > 0 {
		delete(f.n, f.order[0])
		f.order = f.order[1:]
	}
	f.n[id] = 1
	f.order = append(f.order, id)
	return 1
}
