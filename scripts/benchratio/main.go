// Command benchratio reads `go test -bench -count=N` output on stdin,
// echoes it, and then prints for each benchmark that has "bare" and
// "instant" sub-benchmarks the median ns/op and allocs/op of each, the
// ratio of the medians, and the spread of the ratio across runs (the k-th
// instant run over the k-th bare run).
package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

type runs struct{ ns, allocs []float64 }

func main() {
	results := map[string]map[string]*runs{} // benchmark → bare|instant → runs
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name, kind, ok := strings.Cut(f[0], "/")
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(kind, '-'); i > 0 {
			kind = kind[:i]
		}
		if kind != "bare" && kind != "instant" {
			continue
		}
		if results[name] == nil {
			results[name] = map[string]*runs{"bare": {}, "instant": {}}
			order = append(order, name)
		}
		r := results[name][kind]
		for k := 1; k+1 < len(f); k++ {
			v, err := strconv.ParseFloat(f[k], 64)
			if err != nil {
				continue
			}
			switch f[k+1] {
			case "ns/op":
				r.ns = append(r.ns, v)
			case "allocs/op":
				r.allocs = append(r.allocs, v)
			}
		}
	}
	fmt.Println()
	fmt.Printf("%-28s %5s %12s %12s %8s %15s %14s\n", "benchmark", "runs", "bare ns/op", "instant ns/op", "ratio", "ratio min-max", "allocs b/i")
	for _, name := range order {
		b, i := results[name]["bare"], results[name]["instant"]
		n := min(len(b.ns), len(i.ns))
		if n == 0 {
			continue
		}
		per := make([]float64, n)
		for k := range n {
			per[k] = i.ns[k] / b.ns[k]
		}
		mb, mi := median(b.ns), median(i.ns)
		fmt.Printf("%-28s %5d %12.0f %12.0f %7.2fx %7.2f-%.2fx %6.0f/%.0f\n",
			strings.TrimPrefix(name, "Benchmark"), n, mb, mi, mi/mb, slices.Min(per), slices.Max(per), median(b.allocs), median(i.allocs))
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
