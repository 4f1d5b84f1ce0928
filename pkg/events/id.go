package events

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// idState holds the last issued (milliseconds << seqBits | sequence) value.
// Every new ID takes max(last+1, now<<seqBits), so IDs from one process are
// strictly increasing even when the wall clock stalls or steps back.
var idState atomic.Uint64

const seqBits = 22 // ~4 million IDs per millisecond before borrowing from the next one

// NewID returns a new event ID: a UUIDv7 (RFC 9562) in its canonical 36-character
// form. IDs sort lexicographically in creation order within a process (a
// monotonic counter fills the sub-millisecond bits) and by millisecond across
// processes; 52 random bits make collisions between processes negligible.
// NewID is safe for concurrent use and allocates only the returned string.
func NewID() string { return NewIDAt(time.Now()) }

// NewIDAt is [NewID] for a caller that has just read the clock: now stands
// for the current time (reading the clock costs more than the rest of an ID
// on some virtual machines). An earlier now never makes an ID sort before
// one already issued; a later one moves this process's IDs ahead with it.
func NewIDAt(now time.Time) string {
	at := uint64(now.UnixMilli()) << seqBits
	var v uint64
	for {
		last := idState.Load()
		v = max(last+1, at)
		if idState.CompareAndSwap(last, v) {
			break
		}
	}
	ms := v >> seqBits
	seq := v & (1<<seqBits - 1)
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	// version 7, then the top 12 bits of the sequence
	b[6] = 0x70 | byte(seq>>18)&0x0f
	b[7] = byte(seq >> 10)
	// variant 10, then the low 10 bits of the sequence, then 52 random bits
	r := rand.Uint64()
	lo := (seq&0x3ff)<<52 | r&(1<<52-1)
	b[8] = 0x80 | byte(lo>>56)&0x3f
	b[9], b[10], b[11], b[12], b[13], b[14], b[15] = byte(lo>>48), byte(lo>>40), byte(lo>>32), byte(lo>>24), byte(lo>>16), byte(lo>>8), byte(lo)
	var s [36]byte
	hexInto(s[0:8], b[0:4])
	s[8] = '-'
	hexInto(s[9:13], b[4:6])
	s[13] = '-'
	hexInto(s[14:18], b[6:8])
	s[18] = '-'
	hexInto(s[19:23], b[8:10])
	s[23] = '-'
	hexInto(s[24:36], b[10:16])
	return string(s[:])
}

const hexDigits = "0123456789abcdef"

func hexInto(dst, src []byte) {
	for i, c := range src {
		dst[2*i] = hexDigits[c>>4]
		dst[2*i+1] = hexDigits[c&0x0f]
	}
}
