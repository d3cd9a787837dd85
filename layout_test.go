package instant_test

// The layout as a reader meets it: each file holds one concern, and a
// token request reads downhill (route → request state → decision → token
// → answer) without returning to a file it left. These tests read the
// package's own source (go/types, with the dependencies' export data from
// `go list -export`), so the layout cannot drift from what doc.go says.

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// pkgSource is the package's non-test source, type-checked.
type pkgSource struct {
	fset   *token.FileSet
	files  []*ast.File
	info   *types.Info
	decls  map[string]*ast.FuncDecl // "name" or "Type.method"
	byPos  map[token.Pos]string     // a declaration's name's position → its key
	fileOf map[string]string        // declaration key ("Type" too) → file base name
}

// loadSource reads and type-checks the package, once for all the tests.
func loadSource(t *testing.T) *pkgSource {
	t.Helper()
	src, err := loadedSource()
	if err != nil {
		t.Fatal(err)
	}
	return src
}

var loadedSource = sync.OnceValues(func() (*pkgSource, error) {
	cmd := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}} {{.Export}}", ".")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -export: %w", err)
	}
	exports := map[string]string{}
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		path, file, _ := strings.Cut(sc.Text(), " ")
		exports[path] = file
	}
	src := &pkgSource{fset: token.NewFileSet(), decls: map[string]*ast.FuncDecl{}, byPos: map[token.Pos]string{}, fileOf: map[string]string{}}
	names, _ := filepath.Glob("*.go")
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(src.fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		src.files = append(src.files, f)
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				key := funcKey(d)
				src.decls[key], src.fileOf[key], src.byPos[d.Name.Pos()] = d, name, key
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						src.fileOf[s.Name.Name] = name
					case *ast.ValueSpec:
						for _, n := range s.Names {
							src.fileOf[n.Name] = name
						}
					}
				}
			}
		}
	}
	src.info = &types.Info{Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: importer.ForCompiler(src.fset, "gc", func(path string) (io.ReadCloser, error) {
		return os.Open(exports[path])
	})}
	if _, err := conf.Check("instant", src.fset, src.files, src.info); err != nil {
		return nil, fmt.Errorf("type-checking the package: %w", err)
	}
	return src, nil
})

func funcKey(d *ast.FuncDecl) string {
	if d.Recv == nil {
		return d.Name.Name
	}
	typ := d.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if ix, ok := typ.(*ast.IndexExpr); ok {
		typ = ix.X
	}
	return typ.(*ast.Ident).Name + "." + d.Name.Name
}

// callees are the package's functions and methods fn refers to, in source
// order; a method of an interface stands for the file that declares it.
func (src *pkgSource) callees(fn *ast.FuncDecl) []string {
	var out []string
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		id, ok := n.(*ast.Ident)
		if !ok {
			return true
		}
		obj, ok := src.info.Uses[id].(*types.Func)
		if !ok || obj.Pkg() == nil || obj.Pkg().Path() != "instant" {
			return true
		}
		key, ok := src.byPos[obj.Pos()]
		if !ok { // a method of an interface
			key = "interface:" + src.fset.Position(obj.Pos()).Filename
			src.fileOf[key] = filepath.Base(src.fset.Position(obj.Pos()).Filename)
		}
		if !slices.Contains(out, key) {
			out = append(out, key)
		}
		return true
	})
	return out
}

// fileGraph is every call between files on the way of the functions
// reachable from entries: edges[from][to] names one call that makes it.
func (src *pkgSource) fileGraph(t *testing.T, entries ...string) map[string]map[string]string {
	t.Helper()
	edges := map[string]map[string]string{}
	seen := map[string]bool{}
	var walk func(key string)
	walk = func(key string) {
		if seen[key] {
			return
		}
		seen[key] = true
		fn := src.decls[key]
		if fn == nil || fn.Body == nil {
			return
		}
		from := src.fileOf[key]
		if edges[from] == nil {
			edges[from] = map[string]string{}
		}
		for _, callee := range src.callees(fn) {
			if to := src.fileOf[callee]; to != from {
				if _, ok := edges[from][to]; !ok {
					edges[from][to] = key + " → " + callee
				}
			}
			walk(callee)
		}
	}
	for _, e := range entries {
		if src.decls[e] == nil {
			t.Fatalf("no function %s in the package", e)
		}
		walk(e)
	}
	return edges
}

// downhillOrder orders the files of g so that every call goes to a file
// further down, and reports the calls that go back up instead (the
// edges of cycles), none when the files read downhill.
func downhillOrder(g map[string]map[string]string) (order []string, upward []string) {
	state := map[string]int{} // 1: on the way, 2: done
	var post []string
	var visit func(f string)
	visit = func(f string) {
		state[f] = 1
		for _, to := range slices.Sorted(maps.Keys(g[f])) {
			switch state[to] {
			case 0:
				visit(to)
			case 1:
				upward = append(upward, f+" → "+to+" ("+g[f][to]+")")
			}
		}
		state[f] = 2
		post = append(post, f)
	}
	for _, f := range slices.Sorted(maps.Keys(g)) {
		if state[f] == 0 {
			visit(f)
		}
	}
	slices.Reverse(post)
	return post, upward
}

// A token request, from Session to the answer, calls only downhill: no
// file it reaches calls back into a file above it, and the files of its
// way come in the order route → request state → decision → token →
// answer.
func TestATokenRequestReadsDownhill(t *testing.T) {
	src := loadSource(t)
	g := src.fileGraph(t, "Instant.session", "register",
		"Instant.connectionTokenRoute", "Instant.subscriptionTokenRoute", "Instant.authRoute", "Instant.channelsRoute")
	// The way, as calls the order must also respect: a call from a file
	// further along it back to one before would show as a call back up.
	way := []string{"middleware.go", "routes.go", "state.go", "access.go", "token.go", "answers.go"}
	for k := 1; k < len(way); k++ {
		if g[way[k-1]] == nil {
			g[way[k-1]] = map[string]string{}
		}
		if _, ok := g[way[k-1]][way[k]]; !ok {
			g[way[k-1]][way[k]] = "the way"
		}
	}
	order, upward := downhillOrder(g)
	for _, u := range upward {
		t.Errorf("a call back up: %s", u)
	}
	t.Logf("%d files, downhill: %s", len(order), strings.Join(order, " → "))
	for _, f := range way {
		if len(g[f]) == 0 && !slices.ContainsFunc(order, func(o string) bool { return g[o][f] != "" && g[o][f] != "the way" }) {
			t.Errorf("%s is not on a token request's way", f)
		}
	}
	// The way a reader follows from one route: every file entered once.
	if g := src.fileGraph(t, "Instant.subscriptionTokenRoute"); len(g) > 0 {
		if _, upward := downhillOrder(g); len(upward) > 0 {
			t.Errorf("the subscription token route calls back up: %v", upward)
		}
	}
}

// Each concern lives in the file named for it.
func TestFilesAreNamedForTheirConcern(t *testing.T) {
	src := loadSource(t)
	for file, names := range map[string][]string{
		"config.go":     {"Config", "Config.complete", "ConfigFromEnv", "checkAPIURL"},
		"instant.go":    {"Instant", "New"},
		"middleware.go": {"Instant.Session", "Session", "Default", "CurrentUser", "RequireUser", "RequireStaff"},
		"routes.go":     {"Instant.Register", "Register", "Instant.readPost", "Instant.subscriptionTokenRoute"},
		"state.go":      {"reqState", "requestUser", "Instant.loadUser"},
		"access.go":     {"Instant.decide", "Instant.mayConnect", "Instant.Allowed", "Instant.SubscriptionToken"},
		"roles.go":      {"Level", "Channel", "channelTable", "grant", "Instant.Channels"},
		"rules.go":      {"Instant.Authorize", "rule"},
		"token.go":      {"Token", "Instant.sign", "Instant.signSubscription"},
		"answers.go":    {"Instant.refuse", "Instant.answerToken", "abortJSON", "failServer"},
		"names.go":      {"validChannel", "isPrivate", "namespaceOf", "Instant.UserChannel", "newEventID"},
		"user.go":       {"User", "userCache"},
		"publisher.go":  {"Event", "Instant.Broadcast", "Instant.BroadcastBatch"},
		"apiclient.go":  {"apiClient", "gocentAPI", "gocentAPI.publish", "newGocentAPI"},
		"nodes.go":      {"Instant.call", "downNodes"},
		"stats.go":      {"Stats", "counters", "Instant.Stats"},
		"centrifugo.go": {"CentrifugoOptions", "Instant.CentrifugoConfig"},
		"errors.go":     {"PublishError", "ErrConfig"},
	} {
		for _, name := range names {
			if got := src.fileOf[name]; got != file {
				t.Errorf("%s is in %q, want %s", name, got, file)
			}
		}
	}
}
