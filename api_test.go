package instant_test

import (
	"bytes"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxExportedNames bounds the API (issue 16): top-level names, constants,
// variables and the methods of exported types; struct fields not counted.
const maxExportedNames = 70

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

// TestExportedNames fails when the package exports more than
// maxExportedNames names, listing them.
func TestExportedNames(t *testing.T) {
	_, files := parsePackage(t)
	var names []string
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				if d.Recv == nil {
					names = append(names, d.Name.Name)
					continue
				}
				typ := d.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				if id, ok := typ.(*ast.Ident); ok && id.IsExported() {
					names = append(names, id.Name+"."+d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							names = append(names, s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								names = append(names, n.Name)
							}
						}
					}
				}
			}
		}
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
