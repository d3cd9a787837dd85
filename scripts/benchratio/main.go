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

// runs are the paired ns/op of each side, from the "paired" sub-benchmark.
type runs struct{ pairedBare, pairedInst []float64 }

func main() {
	results := map[string]*runs{}
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	bareNS, instNS := map[string][]float64{}, map[string][]float64{}
	bareAllocs, instAllocs := map[string][]float64{}, map[string][]float64{}
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
		if results[name] == nil {
			results[name] = &runs{}
			order = append(order, name)
		}
		r := results[name]
		for k := 1; k+1 < len(f); k++ {
			v, err := strconv.ParseFloat(f[k], 64)
			if err != nil {
				continue
			}
			switch kind + " " + f[k+1] {
			case "bare ns/op":
				bareNS[name] = append(bareNS[name], v)
			case "instant ns/op":
				instNS[name] = append(instNS[name], v)
			case "bare allocs/op":
				bareAllocs[name] = append(bareAllocs[name], v)
			case "instant allocs/op":
				instAllocs[name] = append(instAllocs[name], v)
			case "paired bare-ns/op":
				r.pairedBare = append(r.pairedBare, v)
			case "paired instant-ns/op":
				r.pairedInst = append(r.pairedInst, v)
			}
		}
	}
	fmt.Println()
	fmt.Printf("%-28s %5s %12s %12s %8s %15s %14s\n", "benchmark", "runs", "bare ns/op", "instant ns/op", "ratio", "ratio min-max", "allocs b/i")
	for _, name := range order {
		r := results[name]
		b, i := r.pairedBare, r.pairedInst
		if len(b) == 0 || len(i) == 0 {
			b, i = bareNS[name], instNS[name]
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
			strings.TrimPrefix(name, "Benchmark"), n, mb, mi, mi/mb, slices.Min(per), slices.Max(per), median(bareAllocs[name]), median(instAllocs[name]))
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
