// Command benchratio reads `go test -bench` output and prints, for every
// benchmark group that has a sub-benchmark whose name starts with "baseline",
// each member's time per op as a ratio to that baseline from the same run.
// With -count > 1 it uses the median of each benchmark's runs. Figures
// measured on shared machines only mean something as such ratios.
//
//	go test -run '^$' -bench . -benchmem ./... | tee bench.out
//	go run ./internal/tools/benchratio bench.out
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

type result struct {
	name    string
	nsPerOp float64 // median over the runs
	runs    []float64
	allocs  string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return report(os.Stdin, os.Stdout)
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return report(f, os.Stdout)
}

// report groups results by everything before the last '/' and prints ratios.
func report(in io.Reader, out io.Writer) error {
	groups := map[string][]result{}
	var order []string
	sc := bufio.NewScanner(in)
	pkg := ""
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "pkg: "); ok {
			pkg = p[strings.LastIndexByte(p, '/')+1:] + "."
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
			continue
		}
		ns, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // drop the GOMAXPROCS suffix
		}
		name = pkg + name // benchmarks of one name in two packages are two groups
		r := result{name: name, nsPerOp: ns}
		for i := 4; i+1 < len(f); i++ {
			if f[i+1] == "allocs/op" {
				r.allocs = f[i]
			}
		}
		group := name
		if i := strings.LastIndexByte(name, '/'); i > 0 {
			group = name[:i]
		}
		if _, ok := groups[group]; !ok {
			order = append(order, group)
		}
		merged := false
		for i := range groups[group] {
			if g := &groups[group][i]; g.name == name {
				g.runs = append(g.runs, ns)
				g.nsPerOp = median(g.runs)
				merged = true
			}
		}
		if !merged {
			r.runs = []float64{ns}
			groups[group] = append(groups[group], r)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	printed := false
	for _, g := range order {
		sub := func(r result) string { return strings.TrimPrefix(r.name, g+"/") }
		for _, base := range groups[g] {
			if base.name == g || !strings.HasPrefix(sub(base), "baseline") {
				continue
			}
			fmt.Fprintf(out, "%s (baseline %s: %.1f ns/op, median of %d)\n", g, sub(base), base.nsPerOp, len(base.runs))
			for _, r := range groups[g] {
				if strings.HasPrefix(sub(r), "baseline") {
					continue
				}
				fmt.Fprintf(out, "  %-28s %10.1f ns/op  %5.2fx the baseline's time  (%.2fx its speed)  allocs/op %s\n",
					sub(r), r.nsPerOp, r.nsPerOp/base.nsPerOp, base.nsPerOp/r.nsPerOp, r.allocs)
			}
			printed = true
		}
	}
	if !printed {
		fmt.Fprintln(out, "no benchmark group with a baseline found")
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
