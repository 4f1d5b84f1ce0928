package windowing

import "hash/maphash"

// dedup remembers the (source, id) pairs of recent events by a 64-bit keyed
// hash: 8 bytes in a set plus 16 in a queue, about 40 bytes per id with the
// map's overhead, whatever the id's length. The seed is random per process,
// so nobody can craft two ids that collide on purpose; by chance two of
// 200,000 live ids collide with a probability of about 1e-9.
type dedup struct {
	horizon int64 // ns; <= 0: off
	max     int
	seed    maphash.Seed
	set     map[uint64]struct{}
	queue   []dedupEntry // oldest first from head
	head    int
	evicted uint64 // ids forgotten before their horizon, for room
}

type dedupEntry struct {
	key uint64
	at  int64
}

func newDedup(horizon int64, maxIDs int) *dedup {
	return &dedup{horizon: horizon, max: maxIDs, seed: maphash.MakeSeed(), set: map[uint64]struct{}{}}
}

// seen records (source, id) at now and reports whether it was recorded
// within the horizon before.
func (d *dedup) seen(source, id string, now int64) bool {
	if d.horizon <= 0 || id == "" {
		return false
	}
	for d.head < len(d.queue) && d.queue[d.head].at <= now-d.horizon {
		d.pop()
	}
	var h maphash.Hash
	h.SetSeed(d.seed)
	h.WriteString(source)
	h.WriteByte(0)
	h.WriteString(id)
	key := h.Sum64()
	if _, ok := d.set[key]; ok {
		return true
	}
	for len(d.queue)-d.head >= d.max {
		d.pop()
		d.evicted++
	}
	d.set[key] = struct{}{}
	d.queue = append(d.queue, dedupEntry{key, now})
	return false
}

func (d *dedup) pop() {
	delete(d.set, d.queue[d.head].key)
	d.head++
	if d.head >= 1024 && d.head*2 >= len(d.queue) {
		n := copy(d.queue, d.queue[d.head:])
		d.queue = d.queue[:n]
		d.head = 0
	}
}

func (d *dedup) len() int { return len(d.queue) - d.head }
