package history

// newest keeps the last n values appended, in order, in O(1) per append.
type newest[T any] struct {
	buf     []T
	head    int // index of the oldest value once full
	n       int
	dropped int
}

func (r *newest[T]) add(v T) {
	if len(r.buf) < r.n {
		r.buf = append(r.buf, v)
		return
	}
	r.buf[r.head] = v
	r.head = (r.head + 1) % r.n
	r.dropped++
}

// values returns the kept values, oldest first.
func (r *newest[T]) values() []T {
	out := make([]T, 0, len(r.buf))
	out = append(out, r.buf[r.head:]...)
	return append(out, r.buf[:r.head]...)
}
