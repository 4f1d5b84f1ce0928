package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress is the one progress bar of every command: a single line,
// redrawn at most every 200 ms, "label [#####.....]  42.0%  detail". A nil
// *Progress, or one made off, draws nothing, so callers need no checks.
type Progress struct {
	w     io.Writer
	label string
	last  time.Time
	drawn bool
}

// progressEvery is the shortest interval between two redraws.
const progressEvery = 200 * time.Millisecond

// NewProgress returns a bar drawn on w, or nil (no bar) when off or w is nil.
// Commands pass off = a --quiet flag, or !IsTerminal(stderr) so that a log
// file never fills with carriage returns.
func NewProgress(w io.Writer, label string, off bool) *Progress {
	if off || w == nil {
		return nil
	}
	return &Progress{w: w, label: label}
}

// Due reports whether Draw would redraw now; a caller checks it before
// building an expensive detail string.
func (p *Progress) Due() bool { return p != nil && time.Since(p.last) >= progressEvery }

// Draw redraws the bar at frac (clamped to [0, 1]) with detail, unless the
// last redraw was under 200 ms ago.
func (p *Progress) Draw(frac float64, detail string) {
	if !p.Due() {
		return
	}
	p.last = time.Now()
	p.drawn = true
	const width = 30
	frac = min(max(frac, 0), 1)
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %5.1f%%  %s ", p.label,
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100, detail)
}

// Done draws the final state (whatever the time since the last redraw) and
// ends the line.
func (p *Progress) Done(frac float64, detail string) {
	if p == nil {
		return
	}
	p.last = time.Time{}
	p.Draw(frac, detail)
	fmt.Fprintln(p.w)
}
