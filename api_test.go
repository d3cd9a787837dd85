package instant_test

import (
	"bytes"
	"flag"
	"go/ast"
	"go/doc"
	"go/format"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxExportedNames bounds the API: top-level names, constants, variables
// and the methods of exported types; struct fields not counted.
const maxExportedNames = 70

var update = flag.Bool("update", false, "rewrite testdata/api.txt from the code")

// parsePackage parses the package's non-test files.
func parsePackage(t *testing.T) (*token.FileSet, []*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return fset, files
}

// TestAPI compares the package's exported API, declarations without their
// docs, with testdata/api.txt, and bounds its names at maxExportedNames. A
// change of the API is a change of that file, seen in review: run
// `go test -run TestAPI -update .` and read the diff.
func TestAPI(t *testing.T) {
	fset, files := parsePackage(t)
	pkg, err := doc.NewFromFiles(fset, files, "github.com/gin-instant/instant")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var b strings.Builder
	decl := func(n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field:
				n.Doc, n.Comment = nil, nil
			case *ast.ValueSpec:
				n.Doc, n.Comment = nil, nil
			case *ast.TypeSpec:
				n.Doc, n.Comment = nil, nil
			case *ast.GenDecl:
				n.Doc = nil
			}
			return true
		})
		var d strings.Builder
		_ = printer.Fprint(&d, fset, n)
		for _, line := range strings.Split(d.String(), "\n") {
			if strings.TrimSpace(line) != "" { // the lines the docs held
				b.WriteString(line + "\n")
			}
		}
		b.WriteString("\n")
	}
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			for _, s := range v.Decl.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if n.IsExported() {
						names = append(names, n.Name)
					}
				}
			}
			decl(v.Decl)
		}
	}
	funcs := func(recv string, fs []*doc.Func) {
		for _, f := range fs {
			names = append(names, recv+f.Name)
			f.Decl.Body = nil
			f.Decl.Doc = nil
			decl(f.Decl)
		}
	}
	values(pkg.Consts)
	values(pkg.Vars)
	funcs("", pkg.Funcs)
	for _, typ := range pkg.Types {
		names = append(names, typ.Name)
		typ.Decl.Doc = nil
		decl(typ.Decl)
		values(typ.Consts)
		values(typ.Vars)
		funcs("", typ.Funcs)
		funcs(typ.Name+".", typ.Methods)
	}
	src, err := format.Source([]byte("package instant\n\n" + b.String()))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimPrefix(string(src), "package instant\n\n")
	const golden = "testdata/api.txt"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the API differs from %s (go test -run TestAPI -update . rewrites it; review the diff):\n%s", golden, lineDiff(string(want), got))
	}
	slices.Sort(names)
	if len(names) > maxExportedNames {
		t.Errorf("%d exported names, at most %d allowed:\n%s", len(names), maxExportedNames, strings.Join(names, "\n"))
	}
	for _, gone := range []string{"FromContext", "UserFromContext", "Configure", "Instant.ChannelsFor", "Instant.ChannelsAt", "PublishError.Is", "Level.MarshalText"} {
		if slices.Contains(names, gone) {
			t.Errorf("%s is back: one way to do each thing", gone)
		}
	}
}

// lineDiff lists the lines of want missing from got (-) and those of got
// missing from want (+).
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if g[l] == 0 {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] == 0 {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAPISpeaksOnlyOurNames: no exported declaration or doc comment of
// the package names gocent, the API client library behind one file.
func TestAPISpeaksOnlyOurNames(t *testing.T) {
	fset, files := parsePackage(t)
	pkg, err := doc.NewFromFiles(fset, files, "github.com/gin-instant/instant")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(pkg.Doc)
	decl := func(n ast.Node) {
		_ = printer.Fprint(&b, fset, n)
		b.WriteByte('\n')
	}
	for _, v := range append(pkg.Consts, pkg.Vars...) {
		b.WriteString(v.Doc)
		decl(v.Decl)
	}
	funcs := pkg.Funcs
	for _, typ := range pkg.Types {
		b.WriteString(typ.Doc)
		decl(typ.Decl)
		for _, v := range append(typ.Consts, typ.Vars...) {
			b.WriteString(v.Doc)
			decl(v.Decl)
		}
		funcs = append(append(funcs, typ.Funcs...), typ.Methods...)
	}
	for _, f := range funcs {
		b.WriteString(f.Doc)
		decl(f.Decl)
	}
	if b.Len() < 10000 {
		t.Fatalf("the docs read %d bytes: not the package's", b.Len())
	}
	for k, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(strings.ToLower(line), "gocent") {
			t.Errorf("line %d of the API names gocent: %s", k+1, line)
		}
	}
}
