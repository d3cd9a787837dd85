// Command paths counts the library's functions and files that one POST auth
// for a logged-in user, and one Broadcast, run through. Build it with
// coverage (`make paths` does):
//
//	go build -cover -covermode=atomic -coverpkg=github.com/gin-instant/instant/... -o bin/paths ./scripts/paths
//
// It serves each call once to warm up (lazy setup is not the path), clears
// the coverage counters, serves it again and lists every function whose
// counters moved, by `go tool covdata func`. Centrifugo is a stand-in that
// answers every publish: the count is of our code, not of the server's.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/coverage"
	"sort"
	"strings"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"replies":[{"publish":{}}]}`))
	}))
	defer api.Close()
	inst, err := instant.New(instant.Config{
		APIURL: api.URL + "/api", APIKey: "key", TokenSecret: "paths-secret-0123456789abcdef0123",
		GroupChannels: map[string][]string{"editors": {"$site_editors"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := inst.Authorize("$orders:{id}", func(c *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && p["id"] == "7", nil
	}); err != nil {
		log.Fatal(err)
	}
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore([]byte("cookie-key-0123456789abcdef01234"))))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	r.GET("/login", func(c *gin.Context) {
		_ = instant.Login(c, instant.User{ID: "2", Username: "gina", Groups: []string{"editors"}})
	})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		log.Fatalf("login cookies: %v", cookies)
	}

	auth := func(body string) func() {
		return func() {
			req := httptest.NewRequest("POST", "/instant/auth", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.AddCookie(cookies[0])
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"token"`) {
				log.Fatalf("auth: %d %s", w.Code, w.Body)
			}
		}
	}
	broadcast := func() {
		ev := instant.Event{Channel: "$site_editors", Message: "hi", Data: map[string]int{"n": 1}}
		if err := inst.Broadcast(context.Background(), ev); err != nil {
			log.Fatalf("Broadcast: %v", err)
		}
	}
	measure("POST auth, logged in, a group channel", auth(`{"client":"c1","channels":["$site_editors"]}`))
	own := inst.UserChannel("2")
	measure("POST auth, logged in, four channels: a group's, the user's own, a rule's, one refused",
		auth(`{"client":"c1","channels":["$site_editors","`+own+`","$orders:7","$orders:8"]}`))
	measure("Broadcast", broadcast)
}

func measure(name string, run func()) {
	run()
	dir, err := os.MkdirTemp("", "paths")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// The meta-data first: the runtime learns the counter mode from it,
	// and ClearCounters refuses to run before.
	if err := coverage.WriteMetaDir(dir); err != nil {
		log.Fatal(err)
	}
	if err := coverage.ClearCounters(); err != nil {
		log.Fatalf("%v (build with -cover -covermode=atomic)", err)
	}
	run()
	if err := coverage.WriteCountersDir(dir); err != nil {
		log.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "covdata", "func", "-i", dir).CombinedOutput()
	if err != nil {
		log.Fatalf("covdata: %v\n%s", err, out)
	}
	files := map[string]int{}
	var funcs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] == "0.0%" || !strings.HasPrefix(f[0], "github.com/gin-instant/instant/") ||
			strings.Contains(f[0], "/scripts/") {
			continue
		}
		file := filepath.Base(strings.SplitN(f[0], ":", 2)[0])
		files[file]++
		funcs = append(funcs, file+" "+f[1])
	}
	sort.Strings(funcs)
	var perFile []string
	for f, n := range files {
		perFile = append(perFile, fmt.Sprintf("%s %d", f, n))
	}
	sort.Strings(perFile)
	fmt.Printf("%s: %d functions in %d files (%s)\n", name, len(funcs), len(files), strings.Join(perFile, ", "))
	for _, f := range funcs {
		fmt.Println("\t" + f)
	}
}
