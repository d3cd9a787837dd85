package instant_test

// Reauthorize against a real Centrifugo v6.9.1 run with the config
// CentrifugoConfig writes, with centrifuge-go clients whose tokens come
// from the app's routes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-contrib/sessions/redis"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// appStore is the app's own store of users and project memberships, which
// a LoadUser app reads on every request and a rule reads for
// "$project:{id}".
type appStore struct {
	mu      sync.Mutex
	users   map[string]instant.User
	members map[string]map[string]bool // project → user IDs
}

func newAppStore() *appStore {
	return &appStore{users: map[string]instant.User{}, members: map[string]map[string]bool{}}
}

func (s *appStore) put(u instant.User) {
	s.mu.Lock()
	s.users[u.ID] = u
	s.mu.Unlock()
}

func (s *appStore) user(id string) (instant.User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	return u, ok
}

func (s *appStore) join(project, id string, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members[project] == nil {
		s.members[project] = map[string]bool{}
	}
	s.members[project][id] = in
}

func (s *appStore) member(project, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[project][id]
}

// reauthSetup is a Centrifugo with the generated config and the app's
// store; replicas are Instants (and Gin apps) bound to it.
type reauthSetup struct {
	srv   *centrifugotest.Server
	cfg   instant.Config // the replicas', without LoadUser
	store *appStore
	// flaky makes the "$flaky:{id}" rule panic when it decides for
	// Reauthorize (its context holds reauthMarkKey).
	flaky atomic.Bool
	// room, when set, is called by the "$room:{id}" rule, which allows
	// every user.
	room atomic.Pointer[func(*gin.Context, *instant.User)]
	// slowRule, in nanoseconds, is how long the "$project:{id}" rule
	// takes, as a database query would.
	slowRule atomic.Int64
}

type reauthMarkKey struct{}

// reauthOptions vary the setup.
type reauthOptions struct {
	centrifugo instant.CentrifugoOptions
	tokenTTL   time.Duration
	// proxy: serve the app on a real port first and give Centrifugo its
	// proxy routes (the app is set with reauthSetup.serveProxy).
	proxy bool
}

// startReauth starts Centrifugo with the config of an Instant that has the
// test's rules.
func startReauth(t *testing.T, o reauthOptions) (*reauthSetup, *proxyTarget) {
	t.Helper()
	rs := &reauthSetup{store: newAppStore()}
	var pt *proxyTarget
	if o.proxy {
		pt = &proxyTarget{}
		srv := httptest.NewServer(pt)
		t.Cleanup(srv.Close)
		o.centrifugo.ProxyURL = srv.URL + "/instant"
	}
	rs.srv = centrifugotest.Start(t, func(port int) ([]byte, error) {
		cfg := testConfig()
		cfg.APIURL = fmt.Sprintf("http://127.0.0.1:%d/api", port)
		cfg.PublishTimeout = 3 * time.Second
		cfg.SubscriptionTokenTTL = o.tokenTTL
		rs.cfg = cfg
		inst, err := instant.New(cfg)
		if err != nil {
			return nil, err
		}
		rs.rules(t, inst)
		opts := o.centrifugo
		opts.Port, opts.LogLevel = port, "error"
		return inst.CentrifugoConfig(opts)
	})
	return rs, pt
}

// rules adds the app's rules: a project's members read "$project:{id}";
// "$flaky:{id}" is allowed to all, except that it panics when Reauthorize
// asks and rs.flaky is set.
func (rs *reauthSetup) rules(t testing.TB, inst *instant.Instant) {
	err := inst.Authorize("$project:{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		time.Sleep(time.Duration(rs.slowRule.Load()))
		return u != nil && rs.store.member(p["id"], u.ID), nil
	})
	if err == nil {
		err = inst.Authorize("$flaky:{id}", func(c *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
			if rs.flaky.Load() && c.Value(reauthMarkKey{}) != nil {
				panic("the rule's database is down")
			}
			return u != nil, nil
		})
	}
	if err == nil {
		err = inst.Authorize("$room:{id}", func(c *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
			if f := rs.room.Load(); f != nil {
				(*f)(c, u)
			}
			return u != nil, nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// replica is one app server: an Instant and its Gin app.
type replica struct {
	inst *instant.Instant
	app  *gin.Engine
	live *liveSetup // for liveClient
}

// replica builds an app server. With loadUser, the session holds only the
// user's ID ("/test/login-id") and LoadUser reads the store; without it,
// Login fills the session ("/test/login").
func (rs *reauthSetup) replica(t *testing.T, loadUser bool, store sessions.Store) *replica {
	t.Helper()
	cfg := rs.cfg
	if loadUser {
		cfg.LoadUser = func(c *gin.Context) (*instant.User, error) {
			id, _ := sessions.Default(c).Get("uid").(string)
			if u, ok := rs.store.user(id); ok {
				return &u, nil
			}
			return nil, nil
		}
	}
	inst := newInstant(t, cfg)
	rs.rules(t, inst)
	if store == nil {
		store = cookie.NewStore(cookieKey)
	}
	app := newRouterWith(inst, store)
	app.POST("/test/login-id", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("uid", c.Query("id"))
		_ = s.Save()
		c.Status(http.StatusNoContent)
	})
	return &replica{inst: inst, app: app, live: &liveSetup{srv: rs.srv, cfg: cfg, inst: inst, app: app}}
}

// asID logs the browser in by ID, for a LoadUser replica.
func (b *browser) asID(id string) *browser {
	b.t.Helper()
	if status, _ := b.post("/test/login-id?id="+id, "application/json", []byte("{}")); status != http.StatusNoContent {
		b.t.Fatalf("login-id %s: status %d", id, status)
	}
	return b
}

// tokenStatus is the subscription_token route's status for channel.
func (b *browser) tokenStatus(channel string) int {
	b.t.Helper()
	status, _ := b.postJSON("/instant/subscription_token", map[string]any{"channel": channel})
	return status
}

// watchEnds records when each of lc's subscriptions ends.
func watchEnds(lc *liveClient) (ended func(channel string) (time.Time, bool)) {
	var mu sync.Mutex
	at := map[string]time.Time{}
	for ch, sub := range lc.subs {
		sub.OnUnsubscribed(func(centrifuge.UnsubscribedEvent) {
			mu.Lock()
			at[ch] = time.Now()
			mu.Unlock()
		})
	}
	return func(channel string) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		t, ok := at[channel]
		return t, ok
	}
}

// waitEnd waits up to limit for channel's subscription to end.
func waitEnd(ended func(string) (time.Time, bool), channel string, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for {
		if at, ok := ended(channel); ok {
			return at, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReauthorizeLoadUser: a staff member of project p1, subscribed to
// $site_staff, $project:p1, $flaky:1, $site_users and their own channel,
// is demoted and removed from p1 in the app's store: after Reauthorize,
// the first three end within a second (the rule that panics counts as a
// refusal, logged), $site_users and the own channel stay, the routes answer
// 403 for what was taken, the page is told, and another staff member keeps
// $site_staff.
func TestReauthorizeLoadUser(t *testing.T) {
	rs, _ := startReauth(t, reauthOptions{})
	logger, logs := newLogger()
	cfg := rs.cfg
	cfg.Logger = logger
	rs.cfg = cfg
	r := rs.replica(t, true, nil)
	stella := instant.User{ID: "7", Username: "stella", Staff: true}
	rs.store.put(stella)
	rs.store.put(instant.User{ID: "8", Username: "otto", Staff: true})
	rs.store.join("p1", "7", true)

	b := newBrowser(t, r.app).asID("7")
	lc := r.live.connectWith(t, b)
	own := r.inst.UserChannel("7")
	channels := []string{"$site_staff", "$project:p1", "$flaky:1", "$site_users", own}
	for _, ch := range channels {
		if !lc.subscribe(ch, true, "") {
			t.Fatalf("stella could not subscribe to %s", ch)
		}
	}
	ended := watchEnds(lc)
	otto := r.live.connectWith(t, newBrowser(t, r.app).asID("8"))
	if !otto.subscribe("$site_staff", true, "") {
		t.Fatal("otto could not subscribe to $site_staff")
	}
	ottoEnded := watchEnds(otto)

	demoted := instant.User{ID: "7", Username: "stella"}
	rs.store.put(demoted)
	rs.store.join("p1", "7", false)
	rs.flaky.Store(true)
	ctx := context.WithValue(context.Background(), reauthMarkKey{}, true)
	start := time.Now()
	if err := r.inst.Reauthorize(ctx, demoted); err != nil {
		t.Fatalf("Reauthorize: %v", err)
	}
	took := time.Since(start)
	for _, ch := range []string{"$site_staff", "$project:p1", "$flaky:1"} {
		at, ok := waitEnd(ended, ch, 3*time.Second)
		switch {
		case !ok:
			t.Errorf("%s: still subscribed 3 s after Reauthorize", ch)
		case at.Sub(start) > time.Second:
			t.Errorf("%s ended %v after Reauthorize began, want within 1 s", ch, at.Sub(start))
		default:
			t.Logf("%s ended %v after Reauthorize began (the call took %v)", ch, at.Sub(start).Round(time.Millisecond), took.Round(time.Millisecond))
		}
	}
	if errs := logs.errors(); !slices.ContainsFunc(errs, func(m string) bool { return strings.Contains(m, "Reauthorize counted failed rules") }) {
		t.Errorf("the failed rule was not logged: %q", errs)
	}

	// The page is told, on the personal channel.
	push := lc.waitFor("access changed")
	var got map[string]any
	for _, p := range push {
		if p["event_class"] == "instant.reauthorized" {
			got = p
		}
	}
	if got == nil || got["channel"] != own {
		t.Errorf("no instant.reauthorized push on %s: %v", own, push)
	} else if data, _ := got["data"].(map[string]any); data["again_ms"] != nil {
		t.Errorf("a LoadUser app's push asks to ask again later: %v", got)
	}

	// What is still allowed stays.
	if err := r.inst.Broadcast(context.Background(), instant.Event{Channels: []string{"$site_users", "$site_staff"}, Message: "after"}); err != nil {
		t.Fatal(err)
	}
	lc.waitFor("after")
	otto.waitFor("after")
	for _, ch := range []string{"$site_users", own} {
		if _, gone := ended(ch); gone {
			t.Errorf("%s ended, though stella may still read it", ch)
		}
	}
	if _, gone := ottoEnded("$site_staff"); gone {
		t.Error("otto's $site_staff ended: Reauthorize touched another user")
	}

	// The routes decide with the new stella.
	for ch, want := range map[string]int{"$site_staff": 403, "$project:p1": 403, "$site_users": 200, own: 200} {
		if status := b.tokenStatus(ch); status != want {
			t.Errorf("subscription_token %s after the demotion: %d, want %d", ch, status, want)
		}
	}
}

// TestReauthorizeRuleContext: a rule called by Reauthorize gets a
// *gin.Context whose request carries the ctx given to Reauthorize, whose
// current user is the user reauthorized, and which takes a response
// without harm.
func TestReauthorizeRuleContext(t *testing.T) {
	rs, _ := startReauth(t, reauthOptions{})
	r := rs.replica(t, false, nil)
	type seen struct {
		mark    any
		current string
		inst    bool
	}
	var mu sync.Mutex
	var calls []seen
	hook := func(c *gin.Context, u *instant.User) {
		if c.Value(reauthMarkKey{}) != nil {
			s := seen{mark: c.Request.Context().Value(reauthMarkKey{}), inst: instant.Default(c) == r.inst}
			if cu := instant.CurrentUser(c); cu != nil {
				s.current = cu.ID
			}
			c.JSON(http.StatusTeapot, gin.H{"ignored": true})
			mu.Lock()
			calls = append(calls, s)
			mu.Unlock()
		}
	}
	rs.room.Store(&hook)
	lc := r.live.connect(t, &alice)
	if !lc.subscribe("$room:1", true, "") {
		t.Fatal("could not subscribe")
	}
	ctx := context.WithValue(context.Background(), reauthMarkKey{}, "mark")
	if err := r.inst.Reauthorize(ctx, alice); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] != (seen{mark: "mark", current: alice.ID, inst: true}) {
		t.Errorf("the rule saw %+v, want one call with the mark, alice and the Instant", calls)
	}
}

// TestReauthorizeLoginReplicas: one browser session, filled by Login as
// staff, is served by two replicas that share a Redis session store. A
// demotion on A is 403 on A at once and on B within a second; a promotion
// on B is 200 on B at once and on A within a second; a Login after a
// record wins over it.
func TestReauthorizeLoginReplicas(t *testing.T) {
	t.Parallel()
	rs, _ := startReauth(t, reauthOptions{})
	rdb := centrifugotest.StartRedis(t)
	store := func() sessions.Store {
		s, err := redis.NewStore(4, "tcp", rdb.Addr, "", "", cookieKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, bRep := rs.replica(t, false, store()), rs.replica(t, false, store())
	sam := instant.User{ID: "9", Username: "sam", Staff: true}
	onA := newBrowser(t, a.app).as(&sam)
	onB := newBrowser(t, bRep.app)
	onB.c.Jar = onA.c.Jar // the same browser, served by B
	for name, b := range map[string]*browser{"A": onA, "B": onB} {
		if status := b.tokenStatus("$site_staff"); status != 200 {
			t.Fatalf("%s before any change: %d", name, status)
		}
	}
	ctx := context.Background()

	follow := func(b *browser, want int) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			status := b.tokenStatus("$site_staff")
			if status == want {
				return time.Since(start)
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("still %d after 3 s, want %d", status, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	demoted := instant.User{ID: "9", Username: "sam"}
	if err := a.inst.Reauthorize(ctx, demoted); err != nil {
		t.Fatal(err)
	}
	if status := onA.tokenStatus("$site_staff"); status != 403 {
		t.Errorf("A, right after its own Reauthorize: %d, want 403", status)
	}
	if d := follow(onB, 403); d > 1500*time.Millisecond {
		t.Errorf("B followed the demotion after %v, want within about a second", d)
	} else {
		t.Logf("B followed the demotion after %v", d.Round(time.Millisecond))
	}
	if _, body := onB.get("/instant/channels"); strings.Contains(fmt.Sprint(body["channels"]), "$site_staff") || body["user"].(map[string]any)["staff"] != false {
		t.Errorf("B's channels route after the demotion: %v", body)
	}
	// The proxies decide with the new sam too.
	if body := askProxy(t, onB, bRep.inst, "subscribe", "9", "$site_staff"); body["error"] == nil {
		t.Errorf("B's subscribe proxy after the demotion: %v", body)
	}
	if body := askProxy(t, onB, bRep.inst, "sub_refresh", "9", "$site_staff"); body["result"].(map[string]any)["expired"] != true {
		t.Errorf("B's sub_refresh proxy after the demotion: %v", body)
	}

	if err := bRep.inst.Reauthorize(ctx, sam); err != nil {
		t.Fatal(err)
	}
	if status := onB.tokenStatus("$site_staff"); status != 200 {
		t.Errorf("B, right after its own Reauthorize: %d, want 200", status)
	}
	if d := follow(onA, 200); d > 1500*time.Millisecond {
		t.Errorf("A followed the promotion after %v, want within about a second", d)
	} else {
		t.Logf("A followed the promotion after %v", d.Round(time.Millisecond))
	}

	// A record older than the session's login does not apply: demoted,
	// then logged in again as staff (the app's login read fresh roles).
	if err := a.inst.Reauthorize(ctx, demoted); err != nil {
		t.Fatal(err)
	}
	follow(onB, 403)
	onA.as(&sam)
	for name, b := range map[string]*browser{"A": onA, "B": onB} {
		if status := b.tokenStatus("$site_staff"); status != 200 {
			t.Errorf("%s after a new Login as staff: %d, want 200", name, status)
		}
	}
	time.Sleep(1100 * time.Millisecond) // both replicas read the log again
	for name, b := range map[string]*browser{"A": onA, "B": onB} {
		if status := b.tokenStatus("$site_staff"); status != 200 {
			t.Errorf("%s a second after a new Login as staff: %d, want 200", name, status)
		}
	}
}

// TestReauthorizeRecordsAcrossRestart: with the Redis engine the records
// outlive a Centrifugo restart (a new replica still refuses the demoted
// session); with the memory engine they die with it, and the session goes
// back to the roles of its login.
func TestReauthorizeRecordsAcrossRestart(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"memory", "redis"} {
		t.Run(engine, func(t *testing.T) {
			var o reauthOptions
			if engine == "redis" {
				o.centrifugo.RedisAddress = centrifugotest.StartRedis(t).URL
			}
			rs, _ := startReauth(t, o)
			a := rs.replica(t, false, nil)
			sam := instant.User{ID: "9", Username: "sam", Staff: true}
			onA := newBrowser(t, a.app).as(&sam)
			if err := a.inst.Reauthorize(context.Background(), instant.User{ID: "9", Username: "sam"}); err != nil {
				t.Fatal(err)
			}
			rs.srv.Restart(t)
			c := rs.replica(t, false, nil)
			onC := newBrowser(t, c.app)
			onC.c.Jar = onA.c.Jar
			want := map[string]int{"memory": 200, "redis": 403}[engine]
			if status := onC.tokenStatus("$site_staff"); status != want {
				t.Errorf("a new replica after the restart: %d, want %d", status, want)
			}
		})
	}
}

// TestReauthorizeFollowedAfterTheLogIsLost: a replica that read the access
// log before Centrifugo restarted with its memory engine (the log's epoch
// changes; asking "since" the old position is Centrifugo's error 112)
// starts again from the new log: a demotion written after the restart
// reaches its Login sessions within a poll or two.
func TestReauthorizeFollowedAfterTheLogIsLost(t *testing.T) {
	t.Parallel()
	rs, _ := startReauth(t, reauthOptions{})
	a := rs.replica(t, false, nil)
	sam := instant.User{ID: "9", Username: "sam", Staff: true}
	onA := newBrowser(t, a.app).as(&sam)
	if status := onA.tokenStatus("$site_staff"); status != 200 {
		t.Fatalf("staff before: %d", status)
	}
	time.Sleep(1500 * time.Millisecond) // a has read the log: it holds a position
	if status := onA.tokenStatus("$site_staff"); status != 200 {
		t.Fatalf("staff before the restart: %d", status)
	}
	rs.srv.Restart(t)
	// a asks since its old position, past its poll interval.
	time.Sleep(1500 * time.Millisecond)
	onA.tokenStatus("$site_staff")
	time.Sleep(100 * time.Millisecond)
	b := rs.replica(t, false, nil)
	if err := b.inst.Reauthorize(context.Background(), instant.User{ID: "9", Username: "sam"}); err != nil {
		t.Fatal(err)
	}
	status := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if status = onA.tokenStatus("$site_staff"); status == 403 {
			break
		}
	}
	if status != 403 {
		t.Errorf("the demoted session on the replica that read the lost log: %d after 5 s, want 403", status)
	}
}

// TestReauthorizeWithoutCentrifugo: when Centrifugo cannot be asked,
// Reauthorize says so within PublishTimeout, while Login sessions keep
// working with the roles the replica knew (here: their login's), and the
// failure is logged once, not once a request.
func TestReauthorizeWithoutCentrifugo(t *testing.T) {
	inst, logs := loggedInstant(t, func(cfg *instant.Config) { cfg.PublishTimeout = 300 * time.Millisecond })
	b := newBrowser(t, newRouter(inst)).as(&sam)
	start := time.Now()
	for time.Since(start) < 1200*time.Millisecond {
		if status := b.tokenStatus("$site_staff"); status != 200 {
			t.Fatalf("subscription_token without Centrifugo: %d, want 200", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := logs.accessWarnings(); n != 1 {
		t.Errorf("%d lines saying the records cannot be read, want one", n)
	}
	start = time.Now()
	err := inst.Reauthorize(context.Background(), instant.User{ID: sam.ID})
	var pe *instant.PublishError
	if err == nil || !errors.As(err, &pe) {
		t.Errorf("Reauthorize without Centrifugo: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Reauthorize took %v", d)
	}
	if err := inst.Reauthorize(context.Background(), instant.User{}); !errors.Is(err, instant.ErrInvalidUser) {
		t.Errorf("Reauthorize of a user without ID: %v", err)
	}
	var none *instant.Instant
	if err := none.Reauthorize(context.Background(), alice); !errors.Is(err, instant.ErrNotInstalled) {
		t.Errorf("nil Instant: %v", err)
	}
}

// TestReauthorizeRecordNamesAreReserved: no config, rule or decision
// grants the namespaces of the records, not even a rule for every "$"
// channel.
func TestReauthorizeRecordNamesAreReserved(t *testing.T) {
	inst := newInstant(t, testConfig())
	for _, p := range []string{"$site_access:{id}", "$site_access_log:*"} {
		if err := inst.Authorize(p, func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }); !errors.Is(err, instant.ErrInvalidPattern) {
			t.Errorf("Authorize(%q): %v", p, err)
		}
	}
	cfg := testConfig()
	cfg.StaffChannels = []string{"$site_access:x"}
	cfg.GroupChannels = map[string][]string{"g": {"site_access_log:all"}}
	if _, err := instant.New(cfg); !errors.Is(err, instant.ErrConfig) || !strings.Contains(err.Error(), "site_access_log") {
		t.Errorf("config naming the records' channels: %v", err)
	}
	// The widest rules Authorize takes ("$*" is refused: its namespace is
	// not literal) still cannot reach the records.
	for _, p := range []string{"$site_{x}", "$other_access:*"} {
		if err := inst.Authorize(p, func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, newRouter(inst)).as(&root)
	for ch, want := range map[string]int{"$site_access:abc": 403, "$site_access_log:all": 403, "$site_accessible": 200, "$other_access:x": 200} {
		if status := b.tokenStatus(ch); status != want {
			t.Errorf("%s under a rule for every channel: %d, want %d", ch, status, want)
		}
	}
}

// proxyTarget serves the app set later, for a Centrifugo started first.
type proxyTarget struct {
	mu  sync.Mutex
	app http.Handler
}

func (p *proxyTarget) set(h http.Handler) {
	p.mu.Lock()
	p.app = h
	p.mu.Unlock()
}

func (p *proxyTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	app := p.app
	p.mu.Unlock()
	if app == nil {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	app.ServeHTTP(w, r)
}

// TestReauthorizeKeptTokenWindow measures what a hostile client can do
// with a subscription token it kept from before a demotion: subscribe
// again until the token expires (SubscriptionTokenTTL, 2 s here), and not
// after. In proxy mode too: Centrifugo asks no proxy about "$" channels,
// which always need a token.
func TestReauthorizeKeptTokenWindow(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		t.Run(map[bool]string{false: "tokens", true: "proxy"}[proxy], func(t *testing.T) {
			rs, pt := startReauth(t, reauthOptions{tokenTTL: 2 * time.Second, proxy: proxy})
			r := rs.replica(t, false, nil)
			if pt != nil {
				pt.set(r.app)
			}
			b := newBrowser(t, r.app).as(&sam)
			lc := r.live.connectWith(t, b)
			if !lc.subscribe("$site_staff", true, "") {
				t.Fatal("sam could not subscribe to $site_staff")
			}
			ended := watchEnds(lc)
			_, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "$site_staff"})
			kept, _ := body["token"].(string)
			exp := time.Unix(int64(body["expires_at"].(float64)), 0)

			demoted := instant.User{ID: sam.ID, Username: sam.Username}
			reauthAt := time.Now()
			if err := r.inst.Reauthorize(context.Background(), demoted); err != nil {
				t.Fatal(err)
			}
			if _, ok := waitEnd(ended, "$site_staff", 3*time.Second); !ok {
				t.Fatal("the subscription did not end")
			}
			if status := b.tokenStatus("$site_staff"); status != 403 {
				t.Errorf("the route after the demotion: %d", status)
			}
			// Without a token: refused, proxy or not ("$" needs a token).
			if c := r.live.connectWith(t, b); c.subscribe("$site_staff", false, "") || c.refusal != 103 {
				t.Errorf("$site_staff without a token: refusal %d, want 103", c.refusal)
			}
			// With the kept token, before it expires: accepted.
			if time.Until(exp) < 300*time.Millisecond {
				t.Skip("the kept token expired before it could be tried; rerun")
			}
			if !r.live.connectWith(t, b).subscribe("$site_staff", false, kept) {
				t.Error("the kept token was refused before it expired")
			}
			// After it expires: refused (109, token expired).
			time.Sleep(time.Until(exp) + 100*time.Millisecond)
			c := r.live.connectWith(t, b)
			if c.subscribe("$site_staff", false, kept) || c.refusal != 109 {
				t.Errorf("the kept token after it expired: refusal %d, want 109", c.refusal)
			}
			t.Logf("a kept token subscribed again for %v after Reauthorize (SubscriptionTokenTTL 2s)", exp.Sub(reauthAt).Round(time.Millisecond))
		})
	}
}

// TestReauthorizeNumbers measures, when INSTANT_REAUTH_NUMBERS=1, the time
// from Reauthorize to the client seeing its subscription end (100 runs,
// p50/p99), and Reauthorize's cost with 10,000 active channels. Without
// the variable it runs 5 runs and 500 channels, as a check.
func TestReauthorizeNumbers(t *testing.T) {
	runs, channels := 5, 500
	if os.Getenv("INSTANT_REAUTH_NUMBERS") == "1" {
		runs, channels = 100, 10_000
	}
	rs, _ := startReauth(t, reauthOptions{})
	r := rs.replica(t, true, nil)
	ctx := context.Background()

	// The latency: user 7 is made staff, subscribes, is demoted.
	rs.store.put(instant.User{ID: "7", Staff: true})
	b := newBrowser(t, r.app).asID("7")
	lc := r.live.connectWith(t, b)
	var lat []time.Duration
	for range runs {
		rs.store.put(instant.User{ID: "7", Staff: true})
		for ch := range lc.subs {
			delete(lc.subs, ch)
		}
		if !lc.subscribe("$site_staff", true, "") {
			t.Fatal("could not subscribe")
		}
		ended := watchEnds(lc)
		rs.store.put(instant.User{ID: "7"})
		start := time.Now()
		if err := r.inst.Reauthorize(ctx, instant.User{ID: "7"}); err != nil {
			t.Fatal(err)
		}
		at, ok := waitEnd(ended, "$site_staff", 5*time.Second)
		if !ok {
			t.Fatal("the subscription did not end")
		}
		lat = append(lat, at.Sub(start))
		_ = lc.c.RemoveSubscription(lc.subs["$site_staff"])
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	t.Logf("Reauthorize → subscription ended, %d runs: p50 %.2f ms, p99 %.2f ms", runs, msOf(p50), msOf(p99))
	if p99 > time.Second {
		t.Errorf("p99 %v, want within 1 s", p99)
	}

	// The cost with many active channels: members subscribe to distinct
	// project channels, 125 a connection (Centrifugo's default channel
	// limit is 128), through tokens signed directly.
	const perClient = 125
	var wg sync.WaitGroup
	var failed sync.Map
	for k := 0; k < channels; k += perClient {
		id := "m" + strconv.Itoa(k/perClient)
		rs.store.put(instant.User{ID: id})
		u, _ := rs.store.user(id)
		conn, err := r.inst.ConnectionToken(&u)
		if err != nil {
			t.Fatal(err)
		}
		c := centrifuge.NewJsonClient(rs.srv.WebsocketURL, centrifuge.Config{Token: conn.Token})
		t.Cleanup(c.Close)
		if err := c.Connect(); err != nil {
			t.Fatal(err)
		}
		for j := k; j < min(k+perClient, channels); j++ {
			ch := "$project:n" + strconv.Itoa(j)
			rs.store.join("n"+strconv.Itoa(j), id, true)
			rs.store.join("n"+strconv.Itoa(j), "7", j%2 == 0) // 7 may read half
			tok, err := r.inst.SubscriptionToken(nil, &u, ch)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := c.NewSubscription(ch, centrifuge.SubscriptionConfig{Token: tok.Token})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			var once sync.Once
			sub.OnSubscribed(func(centrifuge.SubscribedEvent) { once.Do(wg.Done) })
			sub.OnError(func(e centrifuge.SubscriptionErrorEvent) { failed.Store(ch, e.Error); once.Do(wg.Done) })
			_ = sub.Subscribe()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the members did not all subscribe within 60 s")
	}
	failed.Range(func(k, v any) bool { t.Fatalf("%v: %v", k, v); return false })

	// User 7, staff, is subscribed to $site_staff among them, and demoted.
	rs.store.put(instant.User{ID: "7", Staff: true})
	for ch := range lc.subs {
		delete(lc.subs, ch)
	}
	if !lc.subscribe("$site_staff", true, "") {
		t.Fatal("could not subscribe")
	}
	ended := watchEnds(lc)
	rs.store.put(instant.User{ID: "7"})
	var took []time.Duration
	var endedAfter time.Duration
	for run := range 5 {
		start := time.Now()
		if err := r.inst.Reauthorize(ctx, instant.User{ID: "7"}); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		if run == 0 {
			at, ok := waitEnd(ended, "$site_staff", 5*time.Second)
			if !ok {
				t.Fatal("the subscription did not end")
			}
			endedAfter = at.Sub(start)
		}
	}
	sort.Slice(took, func(a, b int) bool { return took[a] < took[b] })
	t.Logf("Reauthorize with %d active channels (%d refused, unsubscribed): median %.1f ms of 5 (min %.1f, max %.1f); the user's subscription ended %.1f ms after it began",
		channels+3, channels/2, msOf(took[2]), msOf(took[0]), msOf(took[4]), msOf(endedAfter))

	// The same with a rule that takes a millisecond, as a database query.
	rs.slowRule.Store(int64(time.Millisecond))
	start := time.Now()
	if err := r.inst.Reauthorize(ctx, instant.User{ID: "7"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the same with a rule of 1 ms: %.1f ms", msOf(time.Since(start)))
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	k := (len(s)*p + 99) / 100
	return s[max(k-1, 0)]
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// TestClientJSReauthorizedPush runs testdata/clientjs_reauth.mjs under
// Node: on the push on its personal channel, client.js asks for its
// channels at once and again_ms later (when a replica that had not
// followed yet has), subscribes to the new channel, denies the removed one,
// and does not hand the push to the page; the same class elsewhere is an
// app event.
func TestClientJSReauthorizedPush(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and node is not installed")
		}
		t.Skip("node is not installed")
	}
	js, _ := filepath.Abs("client.js")
	out, err := exec.Command(node, "testdata/clientjs_reauth.mjs", js).Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	want := map[string]any{
		"afterPush":      "$site_staff $site_user:7", // the first answer, from a replica not yet following
		"askedAfterPush": float64(2),
		"afterAgain":     "$site_editors $site_user:7",
		"denied":         "$site_staff",
		"asked":          float64(3),
		"pushEmitted":    "",
		"elsewhere":      "$room instant.reauthorized",
		"elsewhereAsked": float64(1),
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
}

// ExampleInstant_Reauthorize: the app demotes a staff user in its own
// store, then makes the change take effect now: their open subscriptions
// to what they may no longer read end, and their pages are told to ask
// for their channels again. A stand-in for Centrifugo's API prints what it
// is asked: the active channels, one unsubscribe ($site_staff; the rest
// are still allowed), and the push on the user's personal channel.
func ExampleInstant_Reauthorize() {
	centrifugo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/batch" { // publishes
			var batch struct {
				Commands []struct {
					Publish struct {
						Channel string
						Data    struct {
							EventClass string `json:"event_class"`
						}
					}
				}
			}
			_ = json.NewDecoder(r.Body).Decode(&batch)
			for _, c := range batch.Commands {
				fmt.Println("publish", c.Publish.Channel, c.Publish.Data.EventClass)
			}
			fmt.Fprint(w, `{"replies":[{"publish":{}}]}`)
			return
		}
		dec := json.NewDecoder(r.Body) // the other calls: one command a line
		for {
			var cmd struct {
				Method string
				Params struct{ Channel, User string }
			}
			if dec.Decode(&cmd) != nil {
				return
			}
			switch cmd.Method {
			case "channels":
				fmt.Println("channels")
				fmt.Fprintln(w, `{"result":{"channels":{"$site_staff":{},"$site_users":{},"site_public":{}}}}`)
			case "unsubscribe":
				fmt.Println("unsubscribe", cmd.Params.User, cmd.Params.Channel)
				fmt.Fprintln(w, `{"result":{}}`)
			}
		}
	}))
	defer centrifugo.Close()

	staff := map[string]bool{"7": true} // the app's own store
	inst, err := instant.New(instant.Config{
		APIURL:      centrifugo.URL + "/api",
		TokenSecret: "a-secret-of-at-least-32-bytes-long!",
		LoadUser: func(c *gin.Context) (*instant.User, error) {
			return &instant.User{ID: "7", Staff: staff["7"]}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	staff["7"] = false
	err = inst.Reauthorize(context.Background(), instant.User{ID: "7", Staff: false})
	fmt.Println("err:", err)
	// Output:
	// channels
	// unsubscribe 7 $site_staff
	// publish $site_user:7 instant.reauthorized
	// err: <nil>
}
