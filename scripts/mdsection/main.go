// Command mdsection replaces, in a Markdown file, the lines between
// "<!-- NAME:begin -->" and "<!-- NAME:end -->" with its standard input:
// `make bench` and `make load` regenerate their tables in BENCHMARKS.md.
//
//	mdsection NAME FILE < table.md
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mdsection NAME FILE < content")
		os.Exit(2)
	}
	name, file := os.Args[1], os.Args[2]
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	doc, err := os.ReadFile(file)
	if err != nil {
		fail(err)
	}
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		fail(fmt.Errorf("%s has no %s ... %s section", file, begin, end))
	}
	out := s[:i+len(begin)] + "\n" + strings.TrimRight(string(body), "\n") + "\n" + s[j:]
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mdsection:", err)
	os.Exit(1)
}
