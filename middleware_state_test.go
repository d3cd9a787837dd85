package instant_test

// Regression tests of the request state: LoadUser that panics, lies or is
// slow, goroutines that ask for the user, and gin's recycled contexts.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// A common LoadUser: it panics for every visitor whose session has no uid.
func uidLoadUser(c *gin.Context) (*instant.User, error) {
	return &instant.User{ID: sessions.Default(c).Get("uid").(string)}, nil
}

func TestPanickingLoadUserIs500AndTheServerGoesOn(t *testing.T) {
	inst, logs := loggedInstant(t, func(cfg *instant.Config) { cfg.LoadUser = uidLoadUser })
	r := newRouter(inst)
	r.GET("/me", instant.RequireUser(), func(c *gin.Context) { c.Status(204) })
	b := newBrowser(t, r)
	for _, path := range []string{"/instant/channels", "/me", "/instant/channels"} {
		if status, body := b.get(path); status != 500 || body["user"] != nil {
			t.Errorf("GET %s with a panicking LoadUser: %d %v, want a 500", path, status, body)
		}
	}
	status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "site_public"})
	if status != 500 || body["token"] != nil {
		t.Errorf("subscription_token: %d %v", status, body)
	}
	errs := logs.errors()
	if len(errs) != 4 {
		t.Errorf("log lines %q, want one a request", errs)
	}
	for _, e := range errs {
		if !strings.Contains(e, "LoadUser panicked") {
			t.Errorf("log line %q does not say LoadUser panicked", e)
		}
	}
}

func TestInvalidLoadUserResultIs500(t *testing.T) {
	for name, u := range map[string]*instant.User{
		"empty user":           {},
		"id with spaces":       {ID: strings.Repeat("a b ", 76)}, // 304 bytes
		"long id":              {ID: strings.Repeat("9", 300)},
		"bad group":            {ID: "1", Groups: []string{"a\nb"}},
		"info that is no JSON": {ID: "1", Info: map[string]any{"f": func() {}}},
	} {
		for _, disallow := range []bool{false, true} {
			inst, logs := loggedInstant(t, func(cfg *instant.Config) {
				cfg.DisallowAnonymous = disallow
				cfg.LoadUser = func(*gin.Context) (*instant.User, error) { return u, nil }
			})
			b := newBrowser(t, newRouter(inst))
			for _, route := range []string{"connection_token", "subscription_token"} {
				status, body := b.postJSON("/instant/"+route, map[string]any{"channel": "$site_users"})
				if status != 500 || body["token"] != nil {
					t.Errorf("%s, disallow=%v, %s: %d %v, want a 500 and no token", name, disallow, route, status, body)
				}
			}
			if errs := logs.errors(); len(errs) != 2 || !strings.Contains(errs[0], "invalid user") {
				t.Errorf("%s: log lines %q, want one a request naming the invalid user", name, errs)
			}
		}
	}
}

// TestLoadUserInFlightIsWaitedFor: a goroutine asks for the user while the
// request ends; the end of the request waits for LoadUser, a later request
// on gin's recycled context changes nothing, and the goroutine gets the
// user of its own request.
func TestLoadUserInFlightIsWaitedFor(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cfg := testConfig()
	cfg.LoadUser = func(c *gin.Context) (*instant.User, error) {
		once.Do(func() { close(entered); <-release })
		return &instant.User{ID: c.GetHeader("X-User")}, nil
	}
	inst := newInstant(t, cfg)
	r := newRouter(inst)
	got := make(chan *instant.User, 1)
	r.GET("/spawn", func(c *gin.Context) {
		ctx := c.Request.Context()
		go func() { got <- instant.CurrentUser(ctx) }()
		<-entered     // the goroutine is inside LoadUser
		c.Status(204) // returns without asking
	})
	r.GET("/other", func(c *gin.Context) { c.Status(204) })
	serve := func(path, user string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("X-User", user)
		r.ServeHTTP(httptest.NewRecorder(), req)
	}
	first := make(chan struct{})
	go func() { serve("/spawn", "alice"); close(first) }()
	<-entered
	select {
	case <-first:
		t.Error("the request ended while its LoadUser was still running")
	case <-time.After(200 * time.Millisecond):
	}
	serve("/other", "bob") // on gin's recycled context, if the first ended
	close(release)
	<-first
	if u := <-got; u == nil || u.ID != "alice" {
		t.Errorf("the goroutine of alice's request got %v", u)
	}
}

// TestConcurrentAskersWaitForLoadUser: two goroutines of one request and
// the handler ask at once; all get the user, LoadUser runs once.
func TestConcurrentAskersWaitForLoadUser(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	calls := 0
	cfg := testConfig()
	cfg.LoadUser = func(c *gin.Context) (*instant.User, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
		return &instant.User{ID: "7"}, nil
	}
	r := newRouter(newInstant(t, cfg))
	var users [3]*instant.User
	r.GET("/ask", func(c *gin.Context) {
		ctx := c.Request.Context()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); users[0] = instant.CurrentUser(ctx) }()
		<-entered // the first goroutine is inside LoadUser
		go func() { defer wg.Done(); users[1] = instant.CurrentUser(c.Copy()) }()
		time.AfterFunc(50*time.Millisecond, func() { close(release) })
		users[2] = instant.CurrentUser(c)
		wg.Wait()
		c.Status(204)
	})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ask", nil))
	for k, u := range users {
		if u == nil || u.ID != "7" {
			t.Errorf("asker %d got %v while LoadUser ran, want user 7", k, u)
		}
	}
	if calls != 1 {
		t.Errorf("LoadUser ran %d times for one request", calls)
	}
}

// TestKeptGinContextNeverGivesTheNextUser: c.Copy() and
// c.Request.Context(), kept past the request while gin hands its
// *gin.Context to the next one, keep their own user. (The *gin.Context
// itself now serves that next request, and CurrentUser(c) answers for
// it, as gin's own c.Get does: hand goroutines c.Copy().)
func TestKeptGinContextNeverGivesTheNextUser(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	type kept struct {
		cp   *gin.Context
		ctx  context.Context
		user string
	}
	keep := make(chan kept, 1)
	r.GET("/keep", func(c *gin.Context) {
		u := instant.CurrentUser(c)
		keep <- kept{c.Copy(), c.Request.Context(), u.ID}
		c.Status(204)
	})
	r.GET("/asked", func(c *gin.Context) { instant.CurrentUser(c); c.Status(204) })
	alices, roots := newBrowser(t, r).as(&alice), newBrowser(t, r).as(&root)
	for range 20 {
		alices.get("/keep")
		k := <-keep
		roots.get("/asked") // most often on the same, recycled, *gin.Context
		for name, ctx := range map[string]context.Context{"c.Copy()": k.cp, "c.Request.Context()": k.ctx} {
			if u := instant.CurrentUser(ctx); u == nil || u.ID != alice.ID {
				t.Fatalf("%s after the request gave %v, want alice", name, u)
			}
		}
	}
}

func TestLoadUserErrorIs500ForRequireMiddlewares(t *testing.T) {
	inst, logs := loggedInstant(t, func(cfg *instant.Config) {
		cfg.LoadUser = func(*gin.Context) (*instant.User, error) { return nil, errors.New("db down") }
	})
	r := newRouter(inst)
	r.GET("/users", instant.RequireUser(), func(c *gin.Context) { c.Status(204) })
	r.GET("/staff", instant.RequireStaff(), func(c *gin.Context) { c.Status(204) })
	b := newBrowser(t, r)
	for _, path := range []string{"/users", "/staff", "/instant/channels"} {
		if status, _ := b.get(path); status != http.StatusInternalServerError {
			t.Errorf("GET %s while LoadUser fails: %d, want 500 (not a login question)", path, status)
		}
	}
	if errs := logs.errors(); len(errs) != 3 || !strings.Contains(errs[0], "db down") {
		t.Errorf("log lines %q, want one a request with the cause", errs)
	}
}

func TestCurrentUserOutsideSessionAllocatesNothing(t *testing.T) {
	r := gin.New()
	var allocs float64
	var u *instant.User
	var inst *instant.Instant
	r.GET("/", func(c *gin.Context) {
		allocs = testing.AllocsPerRun(100, func() { u, inst = instant.CurrentUser(c), instant.Default(c) })
	})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if allocs != 0 || u != nil || inst != nil {
		t.Errorf("outside Session: CurrentUser %v, Default %v, %v allocations a call", u, inst, allocs)
	}
}

// TestDefaultIgnoresTheEnvironment: outside Session, Default and
// CurrentUser build nothing, whatever CENTRIFUGO_* holds.
func TestDefaultIgnoresTheEnvironment(t *testing.T) {
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", testSecret)
	r := gin.New()
	var inst *instant.Instant
	r.GET("/", func(c *gin.Context) { inst = instant.Default(c) })
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if inst != nil {
		t.Errorf("Default outside Session built an Instant from the environment: %p", inst)
	}
}

// TestContextBuiltOnTheGinContextNeverGivesTheNextUser: with
// engine.ContextWithFallback, a context built on the request's own
// *gin.Context reads whatever request that *gin.Context serves now; it
// gives nil, never the next request's user.
func TestContextBuiltOnTheGinContextNeverGivesTheNextUser(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	r.ContextWithFallback = true
	kept := make(chan context.Context, 1)
	inside, release := make(chan struct{}), make(chan struct{})
	var during *instant.User
	r.GET("/keep", func(c *gin.Context) {
		_ = instant.CurrentUser(c)
		during = instant.CurrentUser(context.WithoutCancel(c))
		kept <- context.WithoutCancel(c)
	})
	r.GET("/wait", func(c *gin.Context) {
		_ = instant.CurrentUser(c)
		close(inside)
		<-release
	})
	alices, sams := newBrowser(t, r).as(&alice), newBrowser(t, r).as(&sam)
	alices.get("/keep")
	ctx := <-kept
	done := make(chan struct{})
	go func() { defer close(done); _, _, _ = sams.tryGet("/wait") }()
	<-inside // sam's request runs, most often on alice's recycled *gin.Context
	u := instant.CurrentUser(ctx)
	close(release)
	<-done
	if u != nil && u.ID != alice.ID {
		t.Fatalf("alice's kept context now names user %s", u.ID)
	}
	if during != nil {
		t.Errorf("a context built on the handler's *gin.Context gave %v during the handler, want nil as for the *gin.Context", during)
	}
}

// TestUserFromAnotherGoroutineOnceLoaded: the documented way to use the
// user on another goroutine (load it on the handler's first) is free of
// races with the handler's own use of the session and the response, with
// and without LoadUser. Run with -race.
func TestUserFromAnotherGoroutineOnceLoaded(t *testing.T) {
	for _, withLoadUser := range []bool{false, true} {
		cfg := testConfig()
		if withLoadUser {
			cfg.LoadUser = func(*gin.Context) (*instant.User, error) { return &instant.User{ID: "7"}, nil }
		}
		r := newRouter(newInstant(t, cfg))
		got := make(chan string, 20)
		r.GET("/work", func(c *gin.Context) {
			instant.CurrentUser(c)
			ctx := c.Request.Context()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				if u := instant.CurrentUser(ctx); u != nil {
					got <- u.ID
				} else {
					got <- ""
				}
			}()
			s := sessions.Default(c)
			s.Set("visits", 1)
			_ = s.Save()
			c.JSON(http.StatusOK, gin.H{"ok": true})
			wg.Wait()
		})
		b := newBrowser(t, r).as(&alice)
		want := alice.ID
		if withLoadUser {
			want = "7"
		}
		for range 20 {
			b.get("/work")
			if id := <-got; id != want {
				t.Errorf("LoadUser %v: the goroutine got user %q, want %q", withLoadUser, id, want)
			}
		}
	}
}
