package instant_test

// Benchmarks of the hot paths beside a bare Gin route behind the same
// sessions middleware, in the same run. `make bench` prints the ratios.

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// loginCookie returns a session cookie holding u, as Login writes it.
func loginCookie(b testing.TB, u instant.User) *http.Cookie {
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.GET("/login", func(c *gin.Context) { _ = instant.Login(c, u) })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		b.Fatalf("cookies %v", cookies)
	}
	return cookies[0]
}

func benchEngine(inst *instant.Instant) *gin.Engine {
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	if inst != nil {
		r.Use(inst.Session())
		inst.Register(r.Group("/instant"))
	}
	return r
}

// route is one side of a comparison: a handler and the request it serves.
type route struct {
	h   http.Handler
	req *http.Request
}

// fresh returns a copy of rt's request with its own body: gorilla/sessions
// caches the decoded session on the request, so reusing one would skip the
// decoding.
func (rt route) fresh(body []byte) *http.Request {
	req := new(http.Request)
	*req = *rt.req
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return req
}

// serve sends a fresh copy of rt's request each time.
func serve(b *testing.B, rt route, body []byte, want int) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		rt.h.ServeHTTP(w, rt.fresh(body))
		if w.Code != want {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// compare runs the bare route and the plugin's as sub-benchmarks of their
// own (their allocations), and then "paired": one request of each in
// turn, the order swapped every time, each timed alone, reported as
// bare-ns/op and instant-ns/op. Pairing request by request cancels what a
// shared machine's drift does to two runs a second apart; `make bench`
// reads its ratio.
func compare(b *testing.B, bare, inst route, body []byte, want int) {
	b.Run("bare", func(b *testing.B) { serve(b, bare, body, want) })
	b.Run("instant", func(b *testing.B) { serve(b, inst, body, want) })
	b.Run("paired", func(b *testing.B) {
		var took [2]time.Duration
		sides := [2]route{bare, inst}
		n := 0
		for b.Loop() {
			for k := range 2 {
				side := (n + k) % 2
				req, w := sides[side].fresh(body), httptest.NewRecorder()
				start := time.Now()
				sides[side].h.ServeHTTP(w, req)
				took[side] += time.Since(start)
				if w.Code != want {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			n++
		}
		b.ReportMetric(float64(took[0].Nanoseconds())/float64(n), "bare-ns/op")
		b.ReportMetric(float64(took[1].Nanoseconds())/float64(n), "instant-ns/op")
	})
}

// BenchmarkSession compares a handler that reads the session user by hand
// (bare) with the same handler reading it through Session and CurrentUser.
func BenchmarkSession(b *testing.B) {
	ck := loginCookie(b, gina)
	req := httptest.NewRequest("GET", "/page", nil)
	req.AddCookie(ck)

	bare := benchEngine(nil)
	bare.GET("/page", func(c *gin.Context) {
		if sessions.Default(c).Get(instant.SessionKey) == nil {
			c.Status(http.StatusUnauthorized)
			return
		}
		c.Status(http.StatusNoContent)
	})
	inst := benchEngine(newInstant(b, testConfig()))
	inst.GET("/page", func(c *gin.Context) {
		if instant.CurrentUser(c) == nil {
			c.Status(http.StatusUnauthorized)
			return
		}
		c.Status(http.StatusNoContent)
	})
	compare(b, route{bare, req}, route{inst, req}, nil, http.StatusNoContent)
}

// BenchmarkSessionUnused is a request whose handler never asks for the
// user: what Session costs on every other route of an app.
func BenchmarkSessionUnused(b *testing.B) {
	ck := loginCookie(b, gina)
	req := httptest.NewRequest("GET", "/page", nil)
	req.AddCookie(ck)
	handler := func(c *gin.Context) { c.Status(http.StatusNoContent) }
	bare := benchEngine(nil)
	bare.GET("/page", handler)
	inst := benchEngine(newInstant(b, testConfig()))
	inst.GET("/page", handler)
	compare(b, route{bare, req}, route{inst, req}, nil, http.StatusNoContent)
}

// BenchmarkSubscriptionToken compares the subscription_token route with a
// bare JSON POST route that reads the same session and body.
func BenchmarkSubscriptionToken(b *testing.B) {
	ck := loginCookie(b, gina)
	body := []byte(`{"channel":"$site_editors"}`)
	newReq := func(path string) *http.Request {
		req := httptest.NewRequest("POST", path, nil)
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(ck)
		return req
	}
	bare := benchEngine(nil)
	bare.POST("/echo", func(c *gin.Context) {
		var in struct {
			Channel string `json:"channel"`
		}
		if sessions.Default(c).Get(instant.SessionKey) == nil || c.ShouldBindJSON(&in) != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		c.JSON(http.StatusOK, gin.H{"channel": in.Channel})
	})
	inst := benchEngine(newInstant(b, testConfig()))
	compare(b, route{bare, newReq("/echo")}, route{inst, newReq("/instant/subscription_token")}, body, http.StatusOK)
}

// BenchmarkDecide is the role and rule decision alone.
func BenchmarkDecide(b *testing.B) {
	inst := rulesInstant(b)
	b.ReportAllocs()
	for b.Loop() {
		if !inst.Allowed(nil, &gina, "$site_editors") || inst.Allowed(nil, &gina, "$orders:o9") {
			b.Fatal("wrong decision")
		}
	}
}

// BenchmarkCurrentUserOutsideSession is CurrentUser on a route that
// Session does not cover: it reads what Session recorded (nothing) and
// builds nothing.
func BenchmarkCurrentUserOutsideSession(b *testing.B) {
	r := gin.New()
	r.GET("/", func(c *gin.Context) {
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if instant.CurrentUser(c) != nil {
				b.Fatal("a user outside Session")
			}
		}
	})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

// BenchmarkAuthBatch compares the auth route, signing tokens for a batch
// of 10 channels, with a bare JSON POST route that reads the same session
// and body.
func BenchmarkAuthBatch(b *testing.B) {
	ck := loginCookie(b, root)
	body := []byte(`{"client":"c","channels":["site_public","$site_users","$site_editors","$site_staff","$site_admin","$orders:o1","$site_user:4","news","$nope","$site_users"]}`)
	newReq := func(path string) *http.Request {
		req := httptest.NewRequest("POST", path, nil)
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(ck)
		return req
	}
	bare := benchEngine(nil)
	bare.POST("/echo", func(c *gin.Context) {
		var in struct {
			Client   string   `json:"client"`
			Channels []string `json:"channels"`
		}
		if sessions.Default(c).Get(instant.SessionKey) == nil || c.ShouldBindJSON(&in) != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		c.JSON(http.StatusOK, gin.H{"channels": in.Channels})
	})
	inst := benchEngine(rulesInstant(b))
	compare(b, route{bare, newReq("/echo")}, route{inst, newReq("/instant/auth")}, body, http.StatusOK)
}
