// Command benchratio reads the output of one or more `go test -bench` runs
// on stdin, echoes it, and then prints, for each benchmark with "bare",
// "instant" and "paired" sub-benchmarks (bench_test.go's compare), the
// median ns/op of each side as the paired run timed them request by
// request, the ratio of the medians, the spread of the per-run ratio, and
// the median allocs/op of the bare and instant runs. Without a paired run,
// the bare and instant runs' ns/op are used.
package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	// benchmark → "kind unit" (e.g. "bare allocs/op", "paired instant-ns/op") → one value a run
	series := map[string]map[string][]float64{}
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
		if kind != "bare" && kind != "instant" && kind != "paired" {
			continue
		}
		if series[name] == nil {
			series[name] = map[string][]float64{}
			order = append(order, name)
		}
		for k := 1; k+1 < len(f); k++ {
			if v, err := strconv.ParseFloat(f[k], 64); err == nil {
				key := kind + " " + f[k+1]
				series[name][key] = append(series[name][key], v)
			}
		}
	}
	fmt.Println()
	fmt.Printf("%-28s %5s %12s %12s %8s %15s %14s\n", "benchmark", "runs", "bare ns/op", "instant ns/op", "ratio", "ratio min-max", "allocs b/i")
	for _, name := range order {
		s := series[name]
		b, i := s["paired bare-ns/op"], s["paired instant-ns/op"]
		if len(b) == 0 || len(i) == 0 {
			b, i = s["bare ns/op"], s["instant ns/op"]
		}
		n := min(len(b), len(i))
		if n == 0 {
			continue
		}
		per := make([]float64, n)
		for k := range n {
			per[k] = i[k] / b[k]
		}
		mb, mi := median(b[:n]), median(i[:n])
		fmt.Printf("%-28s %5d %12.0f %12.0f %7.2fx %7.2f-%.2fx %6.0f/%.0f\n",
			strings.TrimPrefix(name, "Benchmark"), n, mb, mi, mi/mb, slices.Min(per), slices.Max(per), median(s["bare allocs/op"]), median(s["instant allocs/op"]))
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
