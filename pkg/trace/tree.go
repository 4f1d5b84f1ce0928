package trace

import (
	"cmp"
	"slices"

	"github.com/jetmon/jetmon/pkg/events"
)

// Tree is one assembled trace: its spans as a forest ordered depth first,
// children by start time then service, with self times, the critical path
// and errors. Build makes it; it is read-only afterwards.
type Tree struct {
	ID events.TraceID
	// Nodes in display order: each node is followed by its subtree.
	Nodes []Node
	// Roots are the indexes of the top-level nodes.
	Roots []int
	// StartNS and EndNS bound every span.
	StartNS, EndNS int64
	// Critical is the critical path in time order: the segments of the
	// trace during which a span (Node -1: no span, a gap between top-level
	// spans) held the request up. Their lengths add up to EndNS-StartNS.
	Critical []Segment
	// Errors counts spans with an error.
	Errors int
	// Dropped counts spans refused by the assembler's MaxSpans.
	Dropped int
}

// Node is a span in its tree.
type Node struct {
	Span
	// Up is the parent node's index, -1 for a root; Depth 0 for roots.
	Up, Depth int
	Children  []int
	// SelfNS is the span's time not covered by its children (clipped to the
	// span). CriticalNS is its time on the critical path.
	SelfNS, CriticalNS int64
	// Orphan is true when the span names a parent that is not in the trace
	// (or its parents form a cycle).
	Orphan bool
}

// Segment is a stretch of the critical path.
type Segment struct {
	Node           int
	StartNS, EndNS int64
}

// DurationMS returns the trace's duration in milliseconds.
func (t *Tree) DurationMS() float64 { return float64(t.EndNS-t.StartNS) / 1e6 }

// Build assembles spans into a [Tree]:
//
//   - spans are deduplicated by event id;
//   - a phase.start is folded into its phase.end (same span id, or with no
//     span ids the same service and phase), and validation.started into the
//     validation.completed/failed of the same service, which then spans from
//     the start;
//   - spans with ids form a tree by span id and parent span id; a span
//     whose parent is missing (or in a cycle) becomes a root marked Orphan;
//   - spans without span id and parent attach to the only root when there
//     is exactly one with an id or a validation run, otherwise they are roots;
//     roots and children are ordered by start time, then service, then name.
func Build(id events.TraceID, spans []Span) *Tree {
	spans = Merge(nil, spans)
	slices.SortStableFunc(spans, byStart)
	spans, alias := fold(spans)
	t := &Tree{ID: id, Nodes: make([]Node, 0, len(spans))}
	if len(spans) == 0 {
		return t
	}
	nodes := make([]Node, len(spans))
	byID := make(map[events.SpanID]int, len(spans))
	for i, s := range spans {
		nodes[i] = Node{Span: s, Up: -1}
		if !s.ID.IsZero() {
			if _, dup := byID[s.ID]; !dup {
				byID[s.ID] = i
			}
		}
	}
	// Parents by id.
	anchor := -1 // the one root that id-less spans hang under
	roots := 0
	for i := range nodes {
		n := &nodes[i]
		if namesParent(&n.Span) {
			parent := n.Parent
			if a, ok := alias[parent]; ok {
				parent = a
			}
			if p, ok := byID[parent]; ok && p != i {
				n.Up = p
			} else {
				n.Orphan = true
			}
		}
		if n.Up == -1 && (!n.ID.IsZero() || isValidationRun(n.Type)) {
			roots++
			anchor = i
		}
	}
	if roots == 1 {
		for i := range nodes {
			if n := &nodes[i]; i != anchor && n.ID.IsZero() && n.Parent.IsZero() && n.Up == -1 {
				n.Up = anchor
			}
		}
	}
	breakCycles(nodes)
	for i := range nodes {
		if p := nodes[i].Up; p >= 0 {
			nodes[p].Children = append(nodes[p].Children, i)
		}
	}
	// Display order: depth first from the roots (iteratively: a forged trace
	// may be a chain as long as MaxSpans).
	order := make([]int, 0, len(nodes))
	newIdx := make([]int, len(nodes))
	var stack []int
	for i, n := range slices.Backward(nodes) {
		if n.Up == -1 {
			stack = append(stack, i)
		}
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		newIdx[i] = len(order)
		order = append(order, i)
		for _, c := range slices.Backward(nodes[i].Children) {
			nodes[c].Depth = nodes[i].Depth + 1
			stack = append(stack, c)
		}
	}
	for _, i := range order {
		n := nodes[i]
		if n.Up >= 0 {
			n.Up = newIdx[n.Up]
		} else {
			t.Roots = append(t.Roots, len(t.Nodes))
		}
		for k, c := range n.Children { // the slice is this node's own
			n.Children[k] = newIdx[c]
		}
		t.Nodes = append(t.Nodes, n)
	}
	t.StartNS, t.EndNS = t.Nodes[0].StartNS, t.Nodes[0].EndNS
	for i := range t.Nodes {
		n := &t.Nodes[i]
		t.StartNS, t.EndNS = min(t.StartNS, n.StartNS), max(t.EndNS, n.EndNS)
		if n.Error {
			t.Errors++
		}
		n.SelfNS = selfTime(t.Nodes, i)
	}
	t.criticalPath()
	return t
}

// namesParent reports whether s names a parent other than itself.
func namesParent(s *Span) bool { return !s.Parent.IsZero() && s.Parent != s.ID }

func byStart(a, b Span) int {
	return cmp.Or(cmp.Compare(a.StartNS, b.StartNS), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.EndNS, b.EndNS), cmp.Compare(a.EventID, b.EventID))
}

func isValidationRun(t events.Type) bool {
	return t == events.ValidationCompleted || t == events.ValidationFailed || t == events.ValidationStarted
}

// fold removes the start markers that have an end: a phase.start with its
// phase.end (same span id, else the first unclaimed end of the same service
// and phase that ends after it starts), a validation.started with the
// completed/failed of the same service, whose span then reaches back to the
// start. It returns the span ids of folded starts that differ from their
// end's, so that their children find the end instead.
func fold(spans []Span) ([]Span, map[events.SpanID]events.SpanID) {
	if !slices.ContainsFunc(spans, func(s Span) bool { return s.Type == events.PhaseStart || s.Type == events.ValidationStarted }) {
		return spans, nil
	}
	type name struct{ service, name string }
	endByID := map[events.SpanID]int{}
	endByName := map[name][]int{}
	runs := map[string][]int{}
	for i := range spans {
		switch s := &spans[i]; s.Type {
		case events.PhaseEnd:
			if !s.ID.IsZero() {
				endByID[s.ID] = i
			}
			endByName[name{s.Service, s.Name}] = append(endByName[name{s.Service, s.Name}], i)
		case events.ValidationCompleted, events.ValidationFailed:
			runs[s.Service] = append(runs[s.Service], i)
		}
	}
	claimed := make([]bool, len(spans))
	drop := make([]bool, len(spans))
	var alias map[events.SpanID]events.SpanID
	first := func(cands []int, s *Span) int {
		for _, j := range cands {
			if !claimed[j] && spans[j].EndNS >= s.StartNS {
				return j
			}
		}
		return -1
	}
	for i := range spans {
		s := &spans[i]
		e := -1
		switch s.Type {
		case events.PhaseStart:
			if j, ok := endByID[s.ID]; ok && !s.ID.IsZero() && !claimed[j] {
				e = j
			} else {
				e = first(endByName[name{s.Service, s.Name}], s)
			}
		case events.ValidationStarted:
			e = first(runs[s.Service], s)
		}
		if e < 0 {
			continue
		}
		claimed[e], drop[i] = true, true
		end := &spans[e]
		end.StartNS = min(end.StartNS, s.StartNS)
		switch {
		case end.ID.IsZero():
			end.ID = s.ID
		case !s.ID.IsZero() && s.ID != end.ID:
			if alias == nil {
				alias = map[events.SpanID]events.SpanID{}
			}
			alias[s.ID] = end.ID
		}
		if end.Parent.IsZero() {
			end.Parent = s.Parent
		}
	}
	out := spans[:0]
	for i := range spans {
		if !drop[i] {
			out = append(out, spans[i])
		}
	}
	return out, alias
}

// breakCycles makes the first node of every parent cycle a root, marked
// Orphan: forged parent ids must not hang the walk.
func breakCycles(nodes []Node) {
	state := make([]uint8, len(nodes)) // 0 unknown, 1 on the current walk, 2 reaches a root
	var path []int
	for i := range nodes {
		path = path[:0]
		j := i
		for j >= 0 && state[j] == 0 {
			state[j] = 1
			path = append(path, j)
			j = nodes[j].Up
		}
		if j >= 0 && state[j] == 1 { // a cycle through j
			nodes[j].Up, nodes[j].Orphan = -1, true
		}
		for _, k := range path {
			state[k] = 2
		}
	}
}

// selfTime is the part of node i's span that none of its children covers.
func selfTime(nodes []Node, i int) int64 {
	n := &nodes[i]
	covered, cur0, cur1 := int64(0), int64(0), int64(0)
	open := false
	for _, c := range n.Children { // ordered by start
		s, e := max(nodes[c].StartNS, n.StartNS), min(nodes[c].EndNS, n.EndNS)
		if e <= s {
			continue
		}
		if open && s <= cur1 {
			cur1 = max(cur1, e)
			continue
		}
		if open {
			covered += cur1 - cur0
		}
		cur0, cur1, open = s, e, true
	}
	if open {
		covered += cur1 - cur0
	}
	return n.EndNS - n.StartNS - covered
}

// criticalPath walks back from the end of the trace: in each span, the child
// that finished last (before the current point) held the span up until it
// finished, so the path descends into it, then continues before its start.
func (t *Tree) criticalPath() {
	rev := make([]Segment, 0, 2*len(t.Nodes)+1)
	cursor := t.EndNS
	roots := t.Roots
	if len(roots) > 1 {
		roots = slices.Clone(roots)
		slices.SortStableFunc(roots, func(a, b int) int { return cmp.Compare(t.Nodes[b].EndNS, t.Nodes[a].EndNS) })
	}
	for _, r := range roots {
		n := &t.Nodes[r]
		e := min(n.EndNS, cursor)
		if e <= n.StartNS {
			continue
		}
		if e < cursor {
			rev = append(rev, Segment{Node: -1, StartNS: e, EndNS: cursor})
		}
		rev = t.crit(rev, r, n.StartNS, e)
		cursor = n.StartNS
	}
	if cursor > t.StartNS {
		rev = append(rev, Segment{Node: -1, StartNS: t.StartNS, EndNS: cursor})
	}
	slices.Reverse(rev)
	// Adjacent segments of one node join.
	out := rev[:0]
	for _, s := range rev {
		if k := len(out) - 1; k >= 0 && out[k].Node == s.Node && out[k].EndNS == s.StartNS {
			out[k].EndNS = s.EndNS
			continue
		}
		out = append(out, s)
	}
	t.Critical = out
	for _, s := range out {
		if s.Node >= 0 {
			t.Nodes[s.Node].CriticalNS += s.EndNS - s.StartNS
		}
	}
}

// crit appends, latest first, the critical segments of node i within [lo, hi].
func (t *Tree) crit(rev []Segment, i int, lo, hi int64) []Segment {
	n := &t.Nodes[i]
	lo = max(lo, n.StartNS)
	cursor := min(hi, n.EndNS)
	if cursor <= lo {
		return rev
	}
	kids := n.Children
	if len(kids) > 1 { // latest end first, without reordering the display
		kids = slices.Clone(kids)
		slices.SortStableFunc(kids, func(a, b int) int { return cmp.Compare(t.Nodes[b].EndNS, t.Nodes[a].EndNS) })
	}
	for _, c := range kids {
		cn := &t.Nodes[c]
		ce := min(cn.EndNS, cursor)
		cs := max(cn.StartNS, lo)
		if ce <= cs {
			continue
		}
		if ce < cursor {
			rev = append(rev, Segment{Node: i, StartNS: ce, EndNS: cursor})
		}
		rev = t.crit(rev, c, cs, ce)
		cursor = cs
		if cursor <= lo {
			break
		}
	}
	if cursor > lo {
		rev = append(rev, Segment{Node: i, StartNS: lo, EndNS: cursor})
	}
	return rev
}
