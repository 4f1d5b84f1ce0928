package trace

import (
	"fmt"
	"strconv"
	"strings"
)

// DOT renders a dependency map as a Graphviz digraph: one node per service,
// one edge per caller → callee labelled with calls/s, error rate and p95.
// Names are quoted, so any service name is safe.
func DOT(deps []Dependency) string {
	var b strings.Builder
	b.WriteString("digraph jetmon {\n  rankdir=LR;\n  node [shape=box];\n")
	for _, d := range deps {
		color := "black"
		if d.ErrorRate > 0 {
			color = "red"
		}
		fmt.Fprintf(&b, "  %s -> %s [label=%s, color=%s];\n", strconv.Quote(d.Caller), strconv.Quote(d.Callee),
			strconv.Quote(fmt.Sprintf("%.2f/s, %.1f%% err, p95 %.1f ms", d.CallsPerSec, 100*d.ErrorRate, d.P95MS)), color)
	}
	b.WriteString("}\n")
	return b.String()
}
