# Reads `go test -bench` output and prints, for each benchmark with "bare"
# and "instant" sub-benchmarks, the mean ns/op of each and their ratio.
/^Benchmark.*\/(bare|instant)-/ {
	split($1, parts, "/")
	name = parts[1]; kind = parts[2]; sub(/-[0-9]+$/, "", kind)
	for (i = 2; i <= NF; i++) if ($(i+1) == "ns/op") { sum[name, kind] += $i; n[name, kind]++ }
	names[name] = 1
}
{ print }
END {
	print ""
	printf "%-32s %14s %14s %8s\n", "benchmark", "bare ns/op", "instant ns/op", "ratio"
	for (name in names) {
		if (n[name, "bare"] && n[name, "instant"]) {
			b = sum[name, "bare"] / n[name, "bare"]; i = sum[name, "instant"] / n[name, "instant"]
			printf "%-32s %14.0f %14.0f %7.2fx\n", name, b, i, i / b
		}
	}
}
