package instant_test

// Benchmarks of the hot paths beside a bare Gin route behind the same
// sessions middleware, in the same run. `make bench` prints the ratios.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/centrifugal/gocent/v3"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

func benchEngine(inst *instant.Instant) *gin.Engine {
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	if inst != nil {
		r.Use(inst.Session())
		inst.Register(r.Group("/instant"))
	}
	return r
}

// compare runs the bare route and the plugin's as compareCalls does: a
// fresh copy of each side's request each time, made before the clock
// starts.
func compare(b *testing.B, bare, inst route, body []byte, want int) {
	side := func(rt route) func(b *testing.B) func() {
		return func(b *testing.B) func() {
			req, w := rt.fresh(body), httptest.NewRecorder()
			return func() {
				rt.h.ServeHTTP(w, req)
				if w.Code != want {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		}
	}
	compareCalls(b, side(bare), side(inst))
}

// compareCalls runs the bare side and the plugin's as sub-benchmarks of
// their own (their allocations), and then "paired": one operation of each
// in turn, the order swapped every time, each timed alone, reported as
// bare-ns/op and instant-ns/op. Pairing operation by operation cancels
// what a shared machine's drift does to two runs a second apart; `make
// bench` reads its ratio. A side prepares an operation (untimed in the
// paired run) and returns it.
func compareCalls(b *testing.B, bare, inst func(b *testing.B) func()) {
	loop := func(side func(b *testing.B) func()) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				side(b)()
			}
		}
	}
	b.Run("bare", loop(bare))
	b.Run("instant", loop(inst))
	b.Run("paired", func(b *testing.B) {
		var took [2]time.Duration
		sides := [2]func(b *testing.B) func(){bare, inst}
		n := 0
		for b.Loop() {
			for k := range 2 {
				side := (n + k) % 2
				op := sides[side](b)
				start := time.Now()
				op()
				took[side] += time.Since(start)
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
		if sessions.Default(c).Get("instant.user") == nil {
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
		if sessions.Default(c).Get("instant.user") == nil || c.ShouldBindJSON(&in) != nil {
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
		if sessions.Default(c).Get("instant.user") == nil || c.ShouldBindJSON(&in) != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		c.JSON(http.StatusOK, gin.H{"channels": in.Channels})
	})
	inst := benchEngine(rulesInstant(b))
	compare(b, route{bare, newReq("/echo")}, route{inst, newReq("/instant/auth")}, body, http.StatusOK)
}

// benchCentrifugo starts a Centrifugo for b (the benchmark is skipped when
// it is missing, and fails under CI=true) and returns an Instant bound to
// it.
func benchCentrifugo(b *testing.B) (*instant.Instant, *centrifugotest.Server) {
	srv, inst, _ := startCentrifugo(b, nil, nil, instant.CentrifugoOptions{})
	return inst, srv
}

// benchPayload is an event as Broadcast encodes it, of about 200 bytes.
const benchPayload = `{"id":"0123456789abcdef0123456789abcdef","channel":"site_public","message":"bench 1234","event_class":"default","data":{"k":1234},"site":"site","date":"2026-11-28T12:00:00.000000000Z"}`

func benchEvent(k int) instant.Event {
	return instant.Event{Channel: "site_public", Message: "bench " + strconv.Itoa(1000+k%9000), Data: map[string]int{"k": 1000 + k%9000}}
}

// barePublish returns the bare side of the single-publish benchmarks: an
// HTTP POST of one publish command of benchPayload (/api/batch),
// idempotency key included, to srv with a plain http.Client. Each request
// gets a key of its own, as each event does, so that Centrifugo publishes
// every one.
func barePublish(srv *centrifugotest.Server) func(b *testing.B) func() {
	body := []byte(`{"commands":[{"publish":{"channel":"site_public","data":` + benchPayload + `,"idempotency_key":"0123456789abcdef0123456789abcdef"}}]}`)
	key := bytes.LastIndex(body, []byte("0123456789abcdef0123456789abcdef"))
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	reply := make([]byte, 4096)
	var sent uint64
	return func(b *testing.B) func() {
		sent++
		for d := range 16 { // a new key, in place
			body[key+d] = "0123456789abcdef"[sent>>(60-4*d)&0xf]
		}
		return func() {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.APIURL+"/batch", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", "apikey "+testAPIKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.ReadFull(resp.Body, reply)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(reply[:n], []byte(`{"replies":[{"publish":`)) {
				b.Fatalf("status %d: %s", resp.StatusCode, reply[:n])
			}
		}
	}
}

// BenchmarkBroadcast compares Broadcast of one event (its checks, its
// encoding and the publish request, through call's retry machinery) with
// a bare POST of a publication of the same size to the same Centrifugo,
// with the same kind of idempotency key.
func BenchmarkBroadcast(b *testing.B) {
	inst, srv := benchCentrifugo(b)
	ctx := context.Background()
	k := 0
	ours := func(b *testing.B) func() {
		k++
		ev := benchEvent(k)
		return func() {
			if err := inst.Broadcast(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	compareCalls(b, barePublish(srv), ours)
}

// BenchmarkBroadcastBatch compares BroadcastBatch of 100 events with a
// bare gocent Pipe of the same 100 publications (without idempotency
// keys, which gocent cannot send) to the same Centrifugo.
func BenchmarkBroadcastBatch(b *testing.B) {
	const per = 100
	inst, srv := benchCentrifugo(b)
	ctx := context.Background()
	gc := gocent.New(gocent.Config{Addr: srv.APIURL, Key: testAPIKey, HTTPClient: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}})
	payload := []byte(benchPayload)
	bare := func(b *testing.B) func() {
		return func() {
			pipe := gc.Pipe()
			for range per {
				if err := pipe.AddPublish("site_public", payload); err != nil {
					b.Fatal(err)
				}
			}
			replies, err := gc.SendPipe(ctx, pipe)
			if err != nil || len(replies) != per || replies[0].Error != nil {
				b.Fatalf("%d replies, %v", len(replies), err)
			}
		}
	}
	k := 0
	ours := func(b *testing.B) func() {
		batch := make([]instant.Event, per)
		for j := range batch {
			k++
			batch[j] = benchEvent(k)
		}
		return func() {
			if err := inst.BroadcastBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	compareCalls(b, bare, ours)
}
