package breaker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// spool is a FIFO of encoded events. Implementations are not safe for
// concurrent use; the Publisher serialises access.
type spool interface {
	// push appends data; false means the spool is full and data was not
	// kept. force ignores the limits (for the breaker's own few events).
	push(data []byte, force bool) (bool, error)
	// peek returns the oldest record without removing it.
	peek() ([]byte, bool, error)
	// pop removes the oldest record.
	pop() error
	len() int
	bytes() int64
	close() error
}

// memSpool keeps records in memory, bounded by count and bytes.
type memSpool struct {
	recs           [][]byte
	head           int
	size, maxBytes int64
	maxEvents      int
}

func newMemSpool(maxEvents int, maxBytes int64) *memSpool {
	return &memSpool{maxEvents: maxEvents, maxBytes: maxBytes}
}

func (s *memSpool) push(data []byte, force bool) (bool, error) {
	if !force && (s.len() >= s.maxEvents || s.size+int64(len(data)) > s.maxBytes) {
		return false, nil
	}
	s.recs = append(s.recs, data)
	s.size += int64(len(data))
	return true, nil
}

func (s *memSpool) peek() ([]byte, bool, error) {
	if s.len() == 0 {
		return nil, false, nil
	}
	return s.recs[s.head], true, nil
}

func (s *memSpool) pop() error {
	if s.len() == 0 {
		return nil
	}
	s.size -= int64(len(s.recs[s.head]))
	s.recs[s.head] = nil
	s.head++
	if s.head == len(s.recs) { // empty: reuse the backing array from the start
		s.recs, s.head = s.recs[:0], 0
	} else if s.head > 1024 && s.head > len(s.recs)/2 {
		s.recs = append(s.recs[:0], s.recs[s.head:]...)
		s.head = 0
	}
	return nil
}

func (s *memSpool) len() int     { return len(s.recs) - s.head }
func (s *memSpool) bytes() int64 { return s.size }
func (s *memSpool) close() error { return nil }

// diskSpool keeps records in an append-only file in a directory, so that they
// survive a restart of the process. Each record is a 4-byte big-endian length
// and the event's wire form. The offset of the oldest record is saved in a
// second file every headEvery pops and on close; after a crash the records
// between the saved and the real head are sent again, and the server's
// Nats-Msg-Id deduplication drops them.
type diskSpool struct {
	dir       string
	log       *os.File
	head      int64 // offset of the oldest record
	end       int64 // offset after the newest record
	count     int
	maxBytes  int64
	popsSince int
	hdr       [4]byte
}

const (
	logFile   = "spool.log"
	headFile  = "spool.head"
	headEvery = 64
	maxRecord = 64 << 20
)

// errCorrupt reports a spool file that cannot be read.
var errCorrupt = errors.New("spool file is corrupt")

func openDiskSpool(dir string, maxBytes int64) (*diskSpool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, logFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &diskSpool{dir: dir, log: f, end: st.Size(), maxBytes: maxBytes}
	if b, err := os.ReadFile(filepath.Join(dir, headFile)); err == nil {
		if h, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); perr == nil && h >= 0 && h <= s.end {
			s.head = h
		}
	}
	// Count the records, and cut a torn last record (a crash mid-write).
	for off := s.head; off < s.end; {
		n, err := s.recordLen(off)
		if err != nil || off+4+n > s.end {
			s.end = off
			if terr := f.Truncate(off); terr != nil {
				_ = f.Close()
				return nil, fmt.Errorf("spool: truncate a torn record: %w", terr)
			}
			break
		}
		off += 4 + n
		s.count++
	}
	return s, nil
}

func (s *diskSpool) recordLen(off int64) (int64, error) {
	if _, err := s.log.ReadAt(s.hdr[:], off); err != nil {
		return 0, err
	}
	n := int64(binary.BigEndian.Uint32(s.hdr[:]))
	if n > maxRecord {
		return 0, errCorrupt
	}
	return n, nil
}

func (s *diskSpool) push(data []byte, force bool) (bool, error) {
	if !force && s.end-s.head+4+int64(len(data)) > s.maxBytes {
		return false, nil
	}
	rec := make([]byte, 4+len(data))
	binary.BigEndian.PutUint32(rec, uint32(len(data)))
	copy(rec[4:], data)
	if _, err := s.log.WriteAt(rec, s.end); err != nil {
		return false, fmt.Errorf("spool write: %w", err)
	}
	s.end += int64(len(rec))
	s.count++
	return true, nil
}

func (s *diskSpool) peek() ([]byte, bool, error) {
	if s.count == 0 {
		return nil, false, nil
	}
	n, err := s.recordLen(s.head)
	if err != nil {
		return nil, false, fmt.Errorf("spool read at %d: %w", s.head, err)
	}
	data := make([]byte, n)
	if _, err := s.log.ReadAt(data, s.head+4); err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("spool read at %d: %w", s.head, err)
	}
	return data, true, nil
}

func (s *diskSpool) pop() error {
	if s.count == 0 {
		return nil
	}
	n, err := s.recordLen(s.head)
	if err != nil {
		return fmt.Errorf("spool read at %d: %w", s.head, err)
	}
	s.head += 4 + n
	s.count--
	if s.count == 0 { // drained: start the file afresh
		s.head, s.end = 0, 0
		if err := s.log.Truncate(0); err != nil {
			return fmt.Errorf("spool truncate: %w", err)
		}
		return s.saveHead()
	}
	if s.popsSince++; s.popsSince >= headEvery {
		return s.saveHead()
	}
	return nil
}

func (s *diskSpool) saveHead() error {
	s.popsSince = 0
	tmp := filepath.Join(s.dir, headFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(s.head, 10)), 0o600); err != nil {
		return fmt.Errorf("spool head: %w", err)
	}
	return os.Rename(tmp, filepath.Join(s.dir, headFile))
}

func (s *diskSpool) len() int     { return s.count }
func (s *diskSpool) bytes() int64 { return s.end - s.head }

func (s *diskSpool) close() error {
	return errors.Join(s.saveHead(), s.log.Sync(), s.log.Close())
}
