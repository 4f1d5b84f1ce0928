package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// svg draws the ratios as horizontal bars on a log scale (Watermill's rows
// sit near 0.05×, batched rows past 10×), one block per group, with the
// baseline's 1× marked.
func (t table) svg() string {
	const (
		left, barH, gap, width = 300, 18, 6, 820
		lo, hi                 = 0.01, 100.0
	)
	plot := float64(width - left - 80)
	x := func(v float64) float64 {
		v = math.Min(math.Max(v, lo), hi)
		return left + plot*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	var b strings.Builder
	y := 50
	var body strings.Builder
	group := ""
	for _, l := range t.lines {
		if l.group != group {
			group = l.group
			y += 10
			fmt.Fprintf(&body, `<text x="8" y="%d" font-weight="bold">%s (baseline: %s)</text>`+"\n", y+12, html.EscapeString(group), html.EscapeString(l.baselineName))
			y += barH + gap
		}
		colour := "#4477aa"
		switch {
		case l.baseline:
			colour = "#999999"
		case strings.HasPrefix(l.name, "watermill"):
			colour = "#ee6677"
		case strings.HasPrefix(l.name, "raw"):
			colour = "#bbbbbb"
		}
		fmt.Fprintf(&body, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-6, y+13, html.EscapeString(l.name))
		fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, x(l.ratio)-left, barH, colour)
		fmt.Fprintf(&body, `<text x="%.1f" y="%d">%.2f×</text>`+"\n", x(l.ratio)+4, y+13, l.ratio)
		y += barH + gap
	}
	height := y + 40
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="8" y="20" font-size="14" font-weight="bold">jetmon vs raw nats.go vs Watermill: events/s as a ratio to each group's baseline (log scale)</text>`+"\n")
	fmt.Fprintf(&b, `<text x="8" y="38" font-size="11">%s</text>`+"\n", html.EscapeString(t.header()))
	for _, v := range []float64{0.01, 0.1, 1, 10, 100} {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="50" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x(v), x(v), y, map[bool]string{true: "#333", false: "#ddd"}[v == 1])
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g×</text>`+"\n", x(v), y+16, v)
	}
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}
