//go:build load

package instant_test

// TestLoad is `make load`: a load generator against real servers on
// loopback, each figure beside its floor measured in the same run. It is
// bounded in time (LOAD_SECONDS per route phase, default 30) and in
// requests, stops by itself and stops what it started. It writes a
// Markdown report to LOAD_OUT when set, and the reconnect storm's, which
// comes last, to LOAD_STORM_OUT; LOAD_ONLY=storm runs the storm alone.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/centrifugal/gocent/v3"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

type loadReport struct {
	mu    sync.Mutex
	lines []string
}

func (r *loadReport) add(format string, args ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func TestLoad(t *testing.T) {
	dur := time.Duration(envInt("LOAD_SECONDS", 30)) * time.Second
	// LOAD_ONLY=storm runs the storm phase alone; its report (LOAD_STORM_OUT)
	// is written apart from the others' (LOAD_OUT), into its own section.
	only := os.Getenv("LOAD_ONLY")
	switch only {
	case "", "storm":
	default:
		t.Fatalf("LOAD_ONLY=%q: the one phase that runs alone is storm", only)
	}
	if only == "" {
		rep := &loadReport{}
		rep.add("Machine: %d cores (GOMAXPROCS %d), %s, Centrifugo %s. Everything on loopback, in one run.", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), "v6.9.1")
		rep.add("")
		loadMemory(t, rep) // first, on a quiet heap
		loadRoutes(t, rep, dur)
		ls := startLive(t, instant.CentrifugoOptions{})
		loadPublishing(t, rep, ls)
		loadOutbox(t, rep)
		loadEndToEnd(t, rep, ls)
		loadFanOut(t, rep, ls, envInt("LOAD_SUBSCRIBERS", 1000))
		writeReport(t, rep, os.Getenv("LOAD_OUT"))
	}
	storm := &loadReport{}
	loadStorm(t, storm, envInt("LOAD_PAGES", 1000))
	writeReport(t, storm, os.Getenv("LOAD_STORM_OUT"))
}

// writeReport logs rep and writes it to path when path is set.
func writeReport(t *testing.T, rep *loadReport, path string) {
	out := strings.Join(rep.lines, "\n") + "\n"
	t.Log("\n" + out)
	if path != "" {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// loadRoutes drives the token routes with many browser sessions, then a
// bare route behind the same session middleware, for dur each.
func loadRoutes(t *testing.T, rep *loadReport, dur time.Duration) {
	const sessionsN = 64
	inst := newInstant(t, testConfig())
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	r.POST("/test/login", func(c *gin.Context) {
		var u instant.User
		_ = c.ShouldBindJSON(&u)
		_ = instant.Login(c, u)
	})
	fixed := []byte(`{"token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.fixed.fixed","expires_at":1700000000}`)
	r.POST("/bare", func(c *gin.Context) {
		_ = sessions.Default(c).Get("instant.user") // the same session read
		_, _ = io.Copy(io.Discard, c.Request.Body)
		c.Data(http.StatusOK, "application/json", fixed)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: sessionsN, MaxIdleConns: sessionsN}
	defer transport.CloseIdleConnections()
	roles := []instant.User{alice, gina, sam, root}
	clients := make([]*http.Client, sessionsN)
	for k := range clients {
		jar, _ := cookiejar.New(nil)
		clients[k] = &http.Client{Jar: jar, Transport: transport}
		u := roles[k%len(roles)]
		u.ID = strconv.Itoa(100 + k)
		resp, err := clients[k].Post(srv.URL+"/test/login", "application/json", strings.NewReader(fmt.Sprintf(`{"id":%q,"username":"u%d","staff":%v,"superuser":%v,"groups":%q}`, u.ID, k, u.Staff, u.Superuser, append([]string{}, u.Groups...))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	batch := `{"client":"c","channels":["site_public","$site_users","$site_editors","$site_staff","$site_admin","$orders:o1","$site_user:100","news","$nope","$site_users"]}`
	kinds := []struct{ path, body string }{
		{"/instant/connection_token", `{}`},
		{"/instant/subscription_token", `{"channel":"$site_users"}`},
		{"/instant/auth", batch},
	}
	phase := func(name string, pick func(n int) (string, string)) (rps float64, p50, p99 time.Duration, errs int64) {
		var mu sync.Mutex
		var lat []time.Duration
		var bad atomic.Int64
		deadline := time.Now().Add(dur)
		var wg sync.WaitGroup
		for k := range sessionsN {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]time.Duration, 0, 4096)
				for n := k; time.Now().Before(deadline); n++ {
					path, body := pick(n)
					req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					start := time.Now()
					resp, err := clients[k].Do(req)
					if err != nil {
						bad.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					local = append(local, time.Since(start))
					if resp.StatusCode != http.StatusOK {
						bad.Add(1)
					}
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return float64(len(lat)) / dur.Seconds(), pct(lat, 0.5), pct(lat, 0.99), bad.Load()
	}
	bRPS, b50, b99, bErr := phase("bare", func(n int) (string, string) { return "/bare", kinds[n%3].body })
	iRPS, i50, i99, iErr := phase("instant", func(n int) (string, string) { k := kinds[n%3]; return k.path, k.body })
	rep.add("### Token routes: %d browser sessions (4 roles), %v each phase", sessionsN, dur)
	rep.add("")
	rep.add("| route mix | requests/s | p50 | p99 | errors |")
	rep.add("| --- | --- | --- | --- | --- |")
	rep.add("| bare route, same session middleware, fixed JSON (floor) | %.0f | %s | %s | %d |", bRPS, ms(b50), ms(b99), bErr)
	rep.add("| connection_token, subscription_token, auth of 10 channels, in turn | %.0f | %s | %s | %d |", iRPS, ms(i50), ms(i99), iErr)
	rep.add("")
	rep.add("Throughput ratio: **%.2f×** the bare route's (aim ≥ 0.75×); errors %d (aim 0).", iRPS/bRPS, iErr)
	rep.add("")
}

// loadPublishing measures events per second of each publishing path.
func loadPublishing(t *testing.T, rep *loadReport, ls *liveSetup) {
	const n = 2000
	ctx := context.Background()
	ev := func(k int) instant.Event {
		return instant.Event{Channel: "site_public", Message: "load " + strconv.Itoa(k), Data: map[string]int{"k": k}}
	}
	gc := gocent.New(gocent.Config{Addr: ls.srv.APIURL, Key: testAPIKey})
	payload := []byte(`{"id":"0123456789abcdef0123456789abcdef","channel":"site_public","message":"load 1234","event_class":"default","data":{"k":1234},"site":"site","date":"2026-11-28T12:00:00.000000000Z"}`)
	timeIt := func(f func(k int) error) time.Duration {
		start := time.Now()
		for k := range n {
			if err := f(k); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	bare := timeIt(func(k int) error { _, err := gc.Publish(ctx, "site_public", payload); return err })
	one := timeIt(func(k int) error { return ls.inst.Broadcast(ctx, ev(k)) })
	const g = 32
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1)); k <= n; k = int(next.Add(1)) {
				if err := ls.inst.Broadcast(ctx, ev(k)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	conc := time.Since(start)
	const per = 100
	batches := timeIt(func(k int) error {
		if k%per != 0 {
			return nil
		}
		batch := make([]instant.Event, 0, per)
		for j := k; j < k+per && j < n; j++ {
			batch = append(batch, ev(j))
		}
		return ls.inst.BroadcastBatch(ctx, batch)
	})
	barePipe := timeIt(func(k int) error {
		if k%per != 0 {
			return nil
		}
		pipe := gc.Pipe()
		for j := k; j < k+per && j < n; j++ {
			if err := pipe.AddPublish("site_public", payload); err != nil {
				return err
			}
		}
		_, err := gc.SendPipe(ctx, pipe)
		return err
	})
	rate := func(d time.Duration) float64 { return n / d.Seconds() }
	rep.add("### Publishing paths: %d events of ~200 bytes to one channel", n)
	rep.add("")
	rep.add("| path | events/s | µs per event | vs bare gocent |")
	rep.add("| --- | --- | --- | --- |")
	rep.add("| bare gocent `Publish` of the same bytes, one by one (floor) | %.0f | %.0f | 1.00× |", rate(bare), float64(bare.Microseconds())/n)
	rep.add("| `Broadcast`, one by one | %.0f | %.0f | %.2f× the time |", rate(one), float64(one.Microseconds())/n, float64(one)/float64(bare))
	rep.add("| `Broadcast`, %d goroutines | %.0f | %.0f | %.1f× one-by-one's rate |", g, rate(conc), float64(conc.Microseconds())/n, float64(one)/float64(conc))
	rep.add("| bare gocent `SendPipe` of %d of the same bytes a request (floor of the batch) | %.0f | %.1f | %.1f× one-by-one's rate |", per, rate(barePipe), float64(barePipe.Microseconds())/n, float64(one)/float64(barePipe))
	rep.add("| `BroadcastBatch`, %d events a call, one call at a time | %.0f | %.1f | %.1f× one-by-one's rate, %.2f× the pipe's time |", per, rate(batches), float64(batches.Microseconds())/n, float64(one)/float64(batches), float64(batches)/float64(barePipe))
	rep.add("")
}

// loadEndToEnd times Broadcast → arrival at a subscriber of a private
// channel, beside a bare gocent publish.
func loadEndToEnd(t *testing.T, rep *loadReport, ls *liveSetup) {
	const n = 300
	lc := ls.connect(t, &alice)
	arrived := make(chan string, n)
	sub, err := lc.c.NewSubscription("$site_users", centrifuge.SubscriptionConfig{GetToken: func(centrifuge.SubscriptionTokenEvent) (string, error) {
		return lc.token("/instant/subscription_token", map[string]any{"channel": "$site_users"})
	}})
	if err != nil {
		t.Fatal(err)
	}
	sub.OnPublication(func(e centrifuge.PublicationEvent) { arrived <- string(e.Data) })
	if ok, _ := awaitSubscribe(t, sub); !ok {
		t.Fatal("could not subscribe")
	}
	ctx := context.Background()
	gc := gocent.New(gocent.Config{Addr: ls.srv.APIURL, Key: testAPIKey})
	measure := func(send func(k int) error) []time.Duration {
		lat := make([]time.Duration, 0, n)
		for k := range n {
			start := time.Now()
			if err := send(k); err != nil {
				t.Fatal(err)
			}
			select {
			case <-arrived:
				lat = append(lat, time.Since(start))
			case <-time.After(5 * time.Second):
				t.Fatal("an event did not arrive")
			}
		}
		return lat
	}
	bare := measure(func(k int) error {
		_, err := gc.Publish(ctx, "$site_users", []byte(`{"id":"`+strconv.Itoa(k)+`","channel":"$site_users","message":"e2e","event_class":"default","site":"site","date":"2026-11-28T12:00:00Z"}`))
		return err
	})
	inst := measure(func(k int) error {
		return ls.inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "e2e"})
	})
	rep.add("### End to end: publish → arrival at a centrifuge-go subscriber of `$site_users`, %d events one at a time", n)
	rep.add("")
	rep.add("| path | p50 | p99 |")
	rep.add("| --- | --- | --- |")
	rep.add("| bare gocent `Publish` (floor) | %s | %s |", ms(pct(bare, 0.5)), ms(pct(bare, 0.99)))
	rep.add("| `Broadcast` | %s | %s |", ms(pct(inst, 0.5)), ms(pct(inst, 0.99)))
	rep.add("")
}

// loadFanOut publishes one event to subs subscribers of a private channel
// and times the arrival at the last.
func loadFanOut(t *testing.T, rep *loadReport, ls *liveSetup, subs int) {
	var got atomic.Int64
	var mu sync.Mutex
	var last time.Time
	conn, err := ls.inst.ConnectionToken(&alice)
	if err != nil {
		t.Fatal(err)
	}
	subTok, err := ls.inst.SubscriptionToken(nil, &alice, "$site_users")
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{}, subs)
	connectStart := time.Now()
	for range subs {
		c := centrifuge.NewJsonClient(ls.srv.WebsocketURL, centrifuge.Config{Token: conn.Token})
		t.Cleanup(c.Close)
		s, err := c.NewSubscription("$site_users", centrifuge.SubscriptionConfig{Token: subTok.Token})
		if err != nil {
			t.Fatal(err)
		}
		s.OnSubscribed(func(centrifuge.SubscribedEvent) { ready <- struct{}{} })
		s.OnPublication(func(centrifuge.PublicationEvent) {
			got.Add(1)
			mu.Lock()
			last = time.Now()
			mu.Unlock()
		})
		_ = s.Subscribe()
		if err := c.Connect(); err != nil {
			t.Fatal(err)
		}
	}
	for k := 0; k < subs; k++ {
		select {
		case <-ready:
		case <-time.After(60 * time.Second):
			t.Fatalf("%d of %d subscribers ready", k, subs)
		}
	}
	connectTime := time.Since(connectStart)
	ctx := context.Background()
	gc := gocent.New(gocent.Config{Addr: ls.srv.APIURL, Key: testAPIKey})
	round := func(send func() error) time.Duration {
		got.Store(0)
		start := time.Now()
		if err := send(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for got.Load() < int64(subs) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d subscribers got the event", got.Load(), subs)
			}
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		return last.Sub(start)
	}
	var bare, inst []time.Duration
	for range 5 {
		bare = append(bare, round(func() error {
			_, err := gc.Publish(ctx, "$site_users", []byte(`{"id":"x","channel":"$site_users","message":"fan-out","event_class":"default","site":"site","date":"2026-11-28T12:00:00Z"}`))
			return err
		}))
		inst = append(inst, round(func() error { return ls.inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "fan-out"}) }))
	}
	rep.add("### Fan-out: one event to %d subscribers of `$site_users` (connected in %v), median of 5", subs, connectTime.Round(time.Millisecond))
	rep.add("")
	rep.add("| path | until the last has it |")
	rep.add("| --- | --- |")
	rep.add("| bare gocent `Publish` (floor) | %s |", ms(pct(bare, 0.5)))
	rep.add("| `Broadcast` | %s |", ms(pct(inst, 0.5)))
	rep.add("")
}

// loadMemory serves 1,000 logged-in sessions and reads the heap.
func loadMemory(t *testing.T, rep *loadReport) {
	const users = 1000
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	cookies := make([]*http.Cookie, users)
	for k := range cookies {
		cookies[k] = loginCookie(t, instant.User{ID: strconv.Itoa(k), Username: "user" + strconv.Itoa(k), Groups: []string{"editors"}, Info: map[string]any{"name": "User " + strconv.Itoa(k)}})
	}
	var before, after runtime.MemStats
	runtime.GC() // twice: the first moves sync.Pools' contents aside, the second frees them
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, ck := range cookies {
		req := httptest.NewRequest("POST", "/instant/subscription_token", strings.NewReader(`{"channel":"$site_editors"}`))
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(ck)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(r)
	rep.add("### Memory: %d logged-in sessions served (subscription_token each)", users)
	rep.add("")
	rep.add("| measure | value |")
	rep.add("| --- | --- |")
	rep.add("| live heap of the process (the app, its 1,000 cookies, the test harness) after serving | %.1f MiB |", float64(after.HeapAlloc)/(1<<20))
	rep.add("| the same, minus before serving (cookies made, nothing served) | %.1f KiB |", float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1024)
	rep.add("")
}

// loadOutbox writes events through BroadcastTx, ten to a transaction, and
// times their delivery by Centrifugo's outbox consumer to a subscriber.
func loadOutbox(t *testing.T, rep *loadReport) {
	const n, perTx = 2000, 10
	o := startOutbox(t)
	ls := o.node(t, true)
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	ctx := context.Background()
	start := time.Now()
	for k := 0; k < n; k += perTx {
		tx, err := o.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := k; j < k+perTx; j++ {
			if err := ls.inst.BroadcastTx(ctx, tx, instant.Event{Channel: "$site_users", Message: "o" + strconv.Itoa(j)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	written := time.Since(start)
	waitCount(t, lc, n, 60*time.Second)
	delivered := time.Since(start)
	rep.add("### Outbox: %d events through `BroadcastTx`, %d to a transaction, PostgreSQL 15 on loopback", n, perTx)
	rep.add("")
	rep.add("| measure | events/s |")
	rep.add("| --- | --- |")
	rep.add("| written and committed | %.0f |", n/written.Seconds())
	rep.add("| delivered to a subscriber by Centrifugo's consumer (from the first write to the last arrival) | %.0f |", n/delivered.Seconds())
	rep.add("")
}

// stormRun is what testdata/storm.mjs reports of one storm, plus the
// app's own counts.
type stormRun struct {
	Pages                                    int
	Mode, Scenario, Failed                   string
	StartupMs, RestartMs, OutageMs, WaitedMs float64
	Back                                     int
	BackMs, OwnMs, DialsAfterUp              stormStats
	PerPage, PerPageOutage, PerPageBack      stormStats
	Requests                                 map[string]map[string]int // phase → route → requests
	Distribution                             map[string]int            // requests a page made from the stop until back → pages
	Refusals                                 map[string]int            // "phase connect|subscribe code" → Centrifugo's refusals (a page that reached it before the test told the pages it was back counts in "outage")
	ErrorCount, Lost, Inflight               int
	Errors                                   []string
	AppRequests, AppErrors, PageRequests     int64
	load                                     string // the load average when the run began
	dur                                      time.Duration
}

type stormStats struct{ N, Mean, P50, Max, Min float64 }

// loadStorm is the reconnect storm: pages browser pages (client.js under
// Node, testdata/storm.mjs; LOAD_PAGES, default 1000) on Centrifugo, which
// is killed and started again under them, once while their tokens are
// valid and once after they expired, with the tokens asked for in one
// request and one per channel: four runs, each with its own Centrifugo,
// app and Node process.
func loadStorm(t *testing.T, rep *loadReport, pages int) {
	node, flags, centrifugeJS := liveNode(t)
	nodeVersion, _ := exec.Command(node, "--version").Output()
	// The expired scenario's TTLs. client.js reuses a token for three
	// quarters of its life, and a page coming back on two busy cores may
	// take seconds: with 5 s tokens (3.75 s of reuse) it would ask twice in
	// one reconnect for the timing alone; 10 s tokens give it 7.5 s.
	const ttl = 10 * time.Second
	// A logged-in session cookie per page.
	cookies := make([]string, pages)
	for k := range cookies {
		c := loginCookie(t, instant.User{ID: strconv.Itoa(k + 1), Username: "u" + strconv.Itoa(k+1)})
		cookies[k] = c.Name + "=" + c.Value
	}
	cookiesFile := filepath.Join(t.TempDir(), "cookies.json")
	if b, err := json.Marshal(cookies); err != nil || os.WriteFile(cookiesFile, b, 0o600) != nil {
		t.Fatalf("cookies: %v", err)
	}
	start := time.Now()
	loadBefore := loadAverage()
	var runs []stormRun
	for _, scenario := range []string{"valid", "expired"} {
		for _, mode := range []string{"batched", "per-channel"} {
			var tokenTTL time.Duration // the defaults
			if scenario == "expired" {
				tokenTTL = ttl
			}
			r := runStorm(t, node, flags, centrifugeJS, mode, scenario, tokenTTL, cookiesFile)
			t.Logf("storm %s %s: %d of %d back, last after %.0f ms, %.2f requests a page, %d errors; by phase %v; refusals %v; %s",
				scenario, mode, r.Back, r.Pages, r.BackMs.Max, r.PerPage.Mean, r.ErrorCount, r.Requests, r.Refusals, r.dur.Round(time.Second))
			runs = append(runs, r)
		}
	}
	loadAfter := loadAverage()
	total := time.Since(start)

	rep.add("### Reconnect storm: %d pages, Centrifugo killed and started again under them", pages)
	rep.add("")
	rep.add("Each page is `client.js` with its own centrifuge-js 5.8 client and its own session cookie (one Node %s process holds them all: `testdata/storm.mjs`),", strings.TrimSpace(string(nodeVersion)))
	rep.add("holding its connection and four private channels (`$site_users`, `$site_user:<id>`, two rule channels `$project-<n>`) beside `site_public`;")
	rep.add("the app is a Gin app serving `Register`'s routes with cookie sessions. The pages' reconnect backoff is capped at 2 s (centrifuge-js: 0.5 s doubling, full jitter, up to 20 s by default), so that they all come back at once.")
	rep.add("**batched** is `client.js` (one `POST auth` for the connection and every channel, tokens reused while valid);")
	rep.add("**per channel** is the old way (`connection_token` and `subscription_token`, a request each, kept by centrifuge-js until Centrifugo refuses one as expired).")
	rep.add("Valid: a restart (kill, start on the same port with the same config) with the default TTLs; expired: %v TTLs, Centrifugo down past them.", ttl)
	rep.add("")
	rep.add("| scenario | tokens | app requests per page per reconnect: mean (max) | of them while Centrifugo was down + after it answered | every page resubscribed, after Centrifugo answered: last (p50) | a page's own reconnect, from its first connection that reached Centrifugo: p50 / max | Centrifugo's refusals of an expired token, connect + subscribe | errors |")
	rep.add("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range runs {
		scenario := "restart, tokens valid"
		if r.Scenario == "expired" {
			scenario = fmt.Sprintf("down %.1f s, tokens expired", r.OutageMs/1000)
		}
		tokens := "batched"
		if r.Mode == "per-channel" {
			tokens = "per channel"
		}
		back := fmt.Sprintf("%.1f s (%.1f s)", r.BackMs.Max/1000, r.BackMs.P50/1000)
		if r.Back < r.Pages {
			back = fmt.Sprintf("**%d of %d back** after %.0f s", r.Back, r.Pages, r.WaitedMs/1000)
		}
		rep.add("| %s | %s | %.2f (%.0f) | %.2f + %.2f | %s | %.2f s / %.1f s | %d + %d | %d |", scenario, tokens, r.PerPage.Mean, r.PerPage.Max,
			r.PerPageOutage.Mean, r.PerPageBack.Mean, back, r.OwnMs.P50/1000, r.OwnMs.Max/1000,
			r.Refusals["outage connect 109"]+r.Refusals["back connect 109"], r.Refusals["outage subscribe 109"]+r.Refusals["back subscribe 109"], stormErrors(r))
	}
	rep.add("")
	for _, r := range runs {
		restart := ""
		if r.Scenario == "valid" {
			restart = fmt.Sprintf(" Centrifugo was back %.1f s after it was killed;", r.RestartMs/1000)
		}
		rep.add("- %s, %s (load average %s as it began): %d pages up in %.1f s first;%s from the stop until back they asked %s (pages by requests: %s); Centrifugo's refusals: %s; dials a page needed after Centrifugo answered: p50 %.0f, max %.0f.",
			r.Scenario, r.Mode, r.load, r.Pages, r.StartupMs/1000, restart, routes(r.Requests["outage"], r.Requests["back"]), counts(r.Distribution), counts(r.Refusals), r.DialsAfterUp.P50, r.DialsAfterUp.Max)
	}
	rep.add("")
	rep.add("Errors count the app's answers ≥ 400, failed requests, `error` events of the helper, subscriptions lost, pages not back within 30 s, and requests the pages sent that the app did not count.")
	rep.add("The generated Centrifugo config sets no connection limit, per-user limit or connection rate limit (checked in each run); its client queue is the default 1 MiB.")
	rep.add("The storm phase took %v; load average %s before it and %s after (%d cores, shared).", total.Round(time.Second), loadBefore, loadAfter, runtime.NumCPU())
	rep.add("")
}

// stormErrors adds up what went wrong in a storm.
func stormErrors(r stormRun) int {
	n := r.ErrorCount + int(r.AppErrors) + r.Pages - r.Back
	// Each request a page sent reached the app, but those still on their
	// way when the script ended.
	if r.AppRequests < r.PageRequests-int64(r.Inflight) || r.AppRequests > r.PageRequests {
		n++
	}
	return n
}

// routes writes the requests of phases, added up by route.
func routes(phases ...map[string]int) string {
	sum := map[string]int{}
	for _, m := range phases {
		for k, v := range m {
			sum[k] += v
		}
	}
	if len(sum) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sum)) {
		parts = append(parts, fmt.Sprintf("%d `%s`", sum[k], k))
	}
	return strings.Join(parts, ", ")
}

// counts writes m's entries in key order.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// runStorm starts Centrifugo and the app, runs storm.mjs in mode and
// scenario, acts on its requests, and returns its report.
func runStorm(t *testing.T, node string, flags []string, centrifugeJS, mode, scenario string, ttl time.Duration, cookiesFile string) stormRun {
	began, load := time.Now(), loadAverage()
	var conf []byte
	cent, inst, _ := startCentrifugo(t, func(c *instant.Config) { c.ConnectionTokenTTL, c.SubscriptionTokenTTL = ttl, ttl }, func(inst *instant.Instant) error {
		return inst.Authorize("$project-{id}", func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
			return u != nil, nil
		})
	}, instant.CentrifugoOptions{}, func(raw []byte) ([]byte, error) { conf = raw; return raw, nil })
	defer cent.Stop()
	var limits struct {
		Client struct {
			ConnectionLimit     *int `json:"connection_limit"`
			UserConnectionLimit *int `json:"user_connection_limit"`
			ConnectionRateLimit *int `json:"connection_rate_limit"`
			QueueMaxSize        *int `json:"queue_max_size"`
		} `json:"client"`
	}
	if err := json.Unmarshal(conf, &limits); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*int{"connection_limit": limits.Client.ConnectionLimit, "user_connection_limit": limits.Client.UserConnectionLimit,
		"connection_rate_limit": limits.Client.ConnectionRateLimit, "queue_max_size": limits.Client.QueueMaxSize} {
		if v != nil {
			t.Fatalf("the generated config sets client.%s = %d: the storm's report says it sets none", name, *v)
		}
	}

	app := newRouter(inst)
	var appRequests, appErrors atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		app.ServeHTTP(sw, r)
		if strings.HasPrefix(r.URL.Path, "/instant/") {
			appRequests.Add(1)
		}
		if sw.code >= 400 {
			appErrors.Add(1)
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	clientJS, _ := filepath.Abs("client.js")
	script, _ := filepath.Abs("testdata/storm.mjs")
	args := append(slices.Clone(flags), script, clientJS, centrifugeJS, srv.URL, mode, scenario, cookiesFile, strconv.FormatInt(ttl.Milliseconds(), 10))
	cmd := exec.CommandContext(ctx, node, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reply := func(v any) {
		b, _ := json.Marshal(v)
		_, _ = stdin.Write(append(b, '\n'))
	}
	var result *stormRun
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		var msg struct {
			Do     string
			Result *stormRun
		}
		if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
			t.Errorf("storm.mjs wrote %q", lines.Text())
			continue
		}
		switch msg.Do {
		case "restart":
			start := time.Now()
			cent.Restart(t)
			reply(map[string]any{"ms": time.Since(start).Milliseconds()})
		case "stop":
			cent.Stop()
			reply(map[string]any{"ok": true})
		case "start":
			cent.Restart(t)
			reply(map[string]any{"ok": true})
		default:
			result = msg.Result
		}
	}
	if err := cmd.Wait(); err != nil || result == nil {
		t.Fatalf("node storm.mjs %s %s: %v\n%s", mode, scenario, err, stderr.Bytes())
	}
	if result.Failed != "" {
		t.Fatalf("storm %s %s: %s\n%s", mode, scenario, result.Failed, stderr.Bytes())
	}
	for _, m := range result.Requests {
		for _, n := range m {
			result.PageRequests += int64(n)
		}
	}
	result.AppRequests, result.AppErrors = appRequests.Load(), appErrors.Load()
	result.dur, result.load = time.Since(began), load
	if result.AppRequests != result.PageRequests {
		t.Logf("storm %s %s: the app served %d token and channel requests, the pages sent %d, %d of them unanswered at the end",
			mode, scenario, result.AppRequests, result.PageRequests, result.Inflight)
	}
	if len(result.Errors) > 0 || stderr.Len() > 0 {
		t.Logf("storm %s %s: %d errors, first %q; stderr:\n%s", mode, scenario, result.ErrorCount, result.Errors, stderr.Bytes())
	}
	return *result
}
