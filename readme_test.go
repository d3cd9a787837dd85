package instant_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMECodeBlocks: every Go and JavaScript block of the README is
// compiled or run by a test, so the README cannot drift from the code.
// Each block's lines (trimmed, blank lines left out) must appear, in order
// and together, in a Go file the tests compile (this package's files,
// example_app's, the embedded module's) or in a script or page a test runs (testdata/*.mjs,
// example_app/minimal's page, which its Chromium test loads; HTML blocks
// too).
func TestREADMECodeBlocks(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, pattern := range []string{"*.go", "example_app/*.go", "example_app/*/*.go", "testdata/*.mjs", "example_app/minimal/*.html", "embedded/*.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sources = append(sources, "\n"+strings.Join(codeLines(string(b)), "\n")+"\n")
		}
	}
	blocks := 0
	for _, b := range fencedBlocks(string(readme)) {
		if b.lang != "go" && b.lang != "js" && b.lang != "html" {
			continue
		}
		blocks++
		want := "\n" + strings.Join(codeLines(b.text), "\n") + "\n"
		found := false
		for _, src := range sources {
			if strings.Contains(src, want) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("README line %d: this %s block is in no compiled or tested file:\n%s", b.line, b.lang, b.text)
		}
	}
	if blocks < 5 {
		t.Errorf("found %d Go and JS blocks in the README: is the parser broken?", blocks)
	}
}

type fenced struct {
	lang, text string
	line       int
}

// fencedBlocks returns the README's ``` blocks with their language.
func fencedBlocks(md string) []fenced {
	var out []fenced
	var cur *fenced
	var body []string
	for k, line := range strings.Split(md, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &fenced{lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: k + 1}
			body = body[:0]
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = strings.Join(body, "\n")
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body = append(body, line)
		}
	}
	return out
}

// codeLines is text's lines, trimmed, without the blank ones.
func codeLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
