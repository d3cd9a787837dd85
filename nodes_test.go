package instant_test

// Retries and failover against a real Centrifugo, through a fault-injecting
// proxy on loopback.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// TestTimed runs the tests that bound how long a call takes (a share of
// PublishTimeout, "fails at once") beside each other, before this
// package's parallel tests start: they wait on hung, frozen, slow and
// stopped servers, not on the CPU, while the live tests' load could
// stretch a bound they assert. (make test runs the other modules' suites
// at the same time: the bounds keep a margin for that.) A test that
// loads the CPU itself, as TestSilentNodeIsMarkedDownAndProbedOnceAtATime's
// eight callers do, stays on its own.
func TestTimed(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"SlowSingleNodeHasAllOfPublishTimeout", testSlowSingleNodeHasAllOfPublishTimeout},
		{"BroadcastHonoursPublishTimeout", testBroadcastHonoursPublishTimeout},
		{"CheckWithinPublishTimeout", testCheckWithinPublishTimeout},
		{"LiveStoppedNodeAnswersWithinTimeout", testLiveStoppedNodeAnswersWithinTimeout},
		{"LiveFailoverPastAHangingNode", testLiveFailoverPastAHangingNode},
		{"LiveFailoverPastANodeThatDiesMidReply", testLiveFailoverPastANodeThatDiesMidReply},
		{"LiveFailoverPastASlowNodePublishesOnceInACluster", testLiveFailoverPastASlowNodePublishesOnceInACluster},
		{"LiveBroadcastWhileCentrifugoIsDown", testLiveBroadcastWhileCentrifugoIsDown},
		{"LiveFrozenCentrifugoCostsOneTimeout", testLiveFrozenCentrifugoCostsOneTimeout},
		{"LiveFailoverPastAFrozenNode", testLiveFailoverPastAFrozenNode},
		{"SlowNodeIsNotWedged", testSlowNodeIsNotWedged},
		{"CallersDeadlineDoesNotMarkTheNodeDown", testCallersDeadlineDoesNotMarkTheNodeDown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t)
		})
	}
}

// faultyProxy forwards to target, answering the first failures requests
// with status instead.
type faultyProxy struct {
	srv      *httptest.Server
	requests atomic.Int32
}

func newFaultyProxy(t *testing.T, target string, failures int32, status int) *faultyProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(u)
	p := &faultyProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.requests.Add(1) <= failures {
			http.Error(w, "injected fault", status)
			return
		}
		fwd.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func TestLiveRetriesDeliverOnce(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	p := newFaultyProxy(t, ls.srv.HTTPURL, 2, http.StatusInternalServerError)
	inst := ls.through(t, 5*time.Second, p.srv.URL+"/api")
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "after two 500s"}); err != nil {
		t.Fatalf("Broadcast through two 500s: %v", err)
	}
	lc.waitFor("after two 500s")
	time.Sleep(300 * time.Millisecond) // room for a copy that should not come
	n := 0
	for _, got := range lc.waitFor("after two 500s") {
		if got["message"] == "after two 500s" {
			n++
		}
	}
	if n != 1 || p.requests.Load() != 3 {
		t.Errorf("delivered %d times in %d requests, want once in 3", n, p.requests.Load())
	}
	if s := inst.Stats(); s.Retried != 2 || s.Published != 1 || s.Failed != 0 {
		t.Errorf("Stats %+v, want 2 retries and 1 published", s)
	}
}

func TestLiveRefusalsAreNotRetried(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound} {
		p := newFaultyProxy(t, ls.srv.HTTPURL, 100, status)
		inst := ls.through(t, 2*time.Second, p.srv.URL+"/api")
		err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "refused"})
		var pe *instant.PublishError
		if !errors.As(err, &pe) || pe.StatusCode != status || p.requests.Load() != 1 {
			t.Errorf("%d: %v after %d requests, want the refusal after one", status, err, p.requests.Load())
		}
		if s := inst.Stats(); s.Retried != 0 || s.Failed != 1 {
			t.Errorf("%d: Stats %+v", status, s)
		}
	}
	// An API error (a Centrifugo error code in a 200) is a refusal too.
	inst := ls.through(t, 2*time.Second, ls.srv.APIURL)
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "nosuchns:x", Message: "x"}); err == nil || inst.Stats().Retried != 0 {
		t.Errorf("unknown namespace: %v, %+v", err, inst.Stats())
	}
}

func testLiveStoppedNodeAnswersWithinTimeout(t *testing.T) {
	ls := startLive(t, instant.CentrifugoOptions{})
	// Nothing listens on port 1 (a free port of the kernel's could be
	// taken by a test beside this one).
	dead := "http://127.0.0.1:1/api"
	inst := ls.through(t, 500*time.Millisecond, dead)
	start := time.Now()
	err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "x"})
	// Nothing listens: the node is marked down at its first refusal, and
	// the call ends there (nodes.go), ErrUnreachable.
	if !errors.Is(err, instant.ErrUnreachable) {
		t.Errorf("a stopped node: %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond+time.Second {
		t.Errorf("answered after %v with a PublishTimeout of 500ms", d)
	}
	if s := inst.Stats(); s.Retried != 0 || s.Failed != 1 || s.NodesDown != 1 {
		t.Errorf("a node that refused connections: Stats %+v, want it marked down and not retried", s)
	}

	// With a live node after it in APIURLs, the event goes through.
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	inst = ls.through(t, 2*time.Second, dead, ls.srv.APIURL)
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "failed over"}); err != nil {
		t.Fatal(err)
	}
	lc.waitFor("failed over")
	if s := inst.Stats(); s.FailedOver != 1 || s.Published != 1 {
		t.Errorf("Stats %+v, want one failover", s)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// testLiveFailoverPastAHangingNode: a node that takes the request and never
// answers costs one attempt's share of PublishTimeout, not all of it; the
// next node delivers.
func testLiveFailoverPastAHangingNode(t *testing.T) {
	ls := startLive(t, instant.CentrifugoOptions{})
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	hang := hangingServer(t)
	inst := ls.through(t, 3*time.Second, hang.URL+"/api", ls.srv.APIURL)
	start := time.Now()
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "past a hang"}); err != nil {
		t.Fatalf("Broadcast past a hanging node: %v", err)
	}
	if d := time.Since(start); d >= 3*time.Second {
		t.Errorf("took %v, the whole PublishTimeout", d)
	}
	lc.waitFor("past a hang")
	if s := inst.Stats(); s.FailedOver != 1 || s.Published != 1 {
		t.Errorf("Stats %+v, want one failover", s)
	}
}

// testLiveFailoverPastANodeThatDiesMidReply: a node that published and
// then went away in the middle of its reply did not answer; the call goes
// on to the next node with the same idempotency key, and Centrifugo
// publishes once (two copies arrived before the key was sent).
func testLiveFailoverPastANodeThatDiesMidReply(t *testing.T) {
	ls := startLive(t, instant.CentrifugoOptions{})
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	target, _ := url.Parse(ls.srv.HTTPURL)
	fwd := httputil.NewSingleHostReverseProxy(target)
	var cut atomic.Int32
	dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		fwd.ServeHTTP(rec, r) // Centrifugo publishes
		cut.Add(1)
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer dying.Close()
	inst := ls.through(t, 3*time.Second, dying.URL+"/api", ls.srv.APIURL)
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "cut short"}); err != nil {
		t.Fatalf("Broadcast past a reply cut short: %v", err)
	}
	copies := func() (ids []any) {
		for _, p := range lc.waitFor("cut short") {
			if p["message"] == "cut short" {
				ids = append(ids, p["id"])
			}
		}
		return ids
	}
	copies()                           // the first
	time.Sleep(300 * time.Millisecond) // room for a second copy that should not come
	if ids := copies(); cut.Load() != 1 || len(ids) != 1 {
		t.Errorf("replies cut %d, copies received %v: want one copy", cut.Load(), ids)
	}
	if s := inst.Stats(); s.FailedOver != 1 || s.Published != 1 || s.Failed != 0 {
		t.Errorf("Stats %+v", s)
	}
}

// statusThenOK answers the first requests with the given statuses and
// headers, and then as Centrifugo does to a publish: a stand-in for unit
// tests of the retry logic.
func statusThenOK(t *testing.T, answers ...func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := int(n.Add(1)) - 1
		if k < len(answers) {
			answers[k](w)
			return
		}
		w.Write([]byte(batchOf(`{"publish":{}}`)))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// fakeClock stands in for the clock of the retry loop and the probes: it
// moves only when the test advances it, and After's channels fire once it
// passes their time. Context deadlines (PublishTimeout) stay real.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waits   []fakeWait
	waiting chan struct{} // a token when After is called
}

type fakeWait struct {
	at time.Time
	ch chan time.Time
}

func withFakeClock(inst *instant.Instant) *fakeClock {
	c := &fakeClock{now: time.Now(), waiting: make(chan struct{}, 1)}
	instant.SetClock(inst, c.Now, c.After)
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waits = append(c.waits, fakeWait{c.now.Add(d), ch})
	select {
	case c.waiting <- struct{}{}:
	default:
	}
	return ch
}

// Advance moves the clock d on, firing the waits it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = slices.DeleteFunc(c.waits, func(w fakeWait) bool {
		if w.at.After(c.now) {
			return false
		}
		w.ch <- c.now
		return true
	})
}

// drive runs f, advancing the clock to the end of each wait f begins, and
// returns how far the clock moved: the time f would have waited.
func (c *fakeClock) drive(f func()) time.Duration {
	start := c.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	for {
		select {
		case <-done:
			return c.Now().Sub(start)
		case <-c.waiting:
			c.mu.Lock()
			last := c.now
			for _, w := range c.waits {
				if w.at.After(last) {
					last = w.at
				}
			}
			d := last.Sub(c.now)
			c.mu.Unlock()
			c.Advance(d)
		}
	}
}

// inTwoSeconds is an HTTP date two seconds from now.
func inTwoSeconds() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }

func standIn(t *testing.T, timeout time.Duration, url string) *instant.Instant {
	cfg := testConfig()
	cfg.APIURL, cfg.PublishTimeout = url+"/api", timeout
	return newInstant(t, cfg)
}

// TestRetries408And429: a 408 and a 429 are asked again (they were
// refusals before), a 429 no sooner than its Retry-After, in seconds or as
// an HTTP date. The waits are on a fake clock.
func TestRetries408And429(t *testing.T) {
	t.Parallel()
	type answers = []func(w http.ResponseWriter)
	cases := []struct {
		name            string
		answers         answers
		atLeast, atMost time.Duration // between the first and the last request
	}{
		{"408", answers{status(http.StatusRequestTimeout, "")}, 0, time.Second},
		{"429 without Retry-After", answers{status(http.StatusTooManyRequests, "")}, 0, time.Second},
		{"429 after 1s", answers{status(http.StatusTooManyRequests, "1")}, time.Second, 2 * time.Second},
		{"429 then 503, each after 1s", answers{status(http.StatusTooManyRequests, "1"), status(http.StatusServiceUnavailable, "1")}, 2 * time.Second, 3 * time.Second},
		// An HTTP date counts whole seconds: one to two seconds away.
		{"429 after a date", answers{statusAt(http.StatusTooManyRequests, inTwoSeconds)}, 900 * time.Millisecond, 3 * time.Second},
		{"429 after a date gone by", answers{status(http.StatusTooManyRequests, "Sun, 06 Nov 1994 08:49:37 GMT")}, 0, time.Second},
		{"429 after nonsense", answers{status(http.StatusTooManyRequests, "soon")}, 0, time.Second},
	}
	for _, c := range cases {
		srv, n := statusThenOK(t, c.answers...)
		inst := standIn(t, 5*time.Second, srv.URL)
		var err error
		wait := withFakeClock(inst).drive(func() { err = inst.Broadcast(context.Background(), instant.Event{Channel: "a"}) })
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if int(n.Load()) != len(c.answers)+1 || wait < c.atLeast || wait > c.atMost {
			t.Errorf("%s: %d requests over %v, want %d over %v to %v", c.name, n.Load(), wait, len(c.answers)+1, c.atLeast, c.atMost)
		}
		if s := inst.Stats(); s.Retried != uint64(len(c.answers)) || s.Published != 1 {
			t.Errorf("%s: Stats %+v", c.name, s)
		}
	}
}

// TestRetryAfterPastTheTimeoutGivesUpAtOnce: a 429 asking to come back
// after PublishTimeout ends the call with its error at once, not after
// sleeping to the deadline: a publish, and the calls made through gocent.
func TestRetryAfterPastTheTimeoutGivesUpAtOnce(t *testing.T) {
	calls := map[string]func(*instant.Instant) error{
		"Broadcast": func(inst *instant.Instant) error {
			return inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
		},
		"Disconnect": func(inst *instant.Instant) error { return inst.Disconnect(context.Background(), "1") },
	}
	for _, after := range []string{"3", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), "99999999999999999999"} {
		for name, call := range calls {
			retryAfterPastTheTimeout(t, name+", Retry-After "+after, after, call)
		}
	}
}

func retryAfterPastTheTimeout(t *testing.T, what, after string, call func(*instant.Instant) error) {
	t.Helper()
	srv, n := statusThenOK(t, status(http.StatusTooManyRequests, after), status(http.StatusTooManyRequests, after))
	inst := standIn(t, 2*time.Second, srv.URL)
	start := time.Now()
	err := call(inst)
	var pe *instant.PublishError
	if !errors.As(err, &pe) || pe.StatusCode != http.StatusTooManyRequests {
		t.Errorf("%s: %v, want the 429", what, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond || n.Load() != 1 {
		t.Errorf("%s: gave up after %v and %d requests, want at once after one", what, d, n.Load())
	}
	if s := inst.Stats(); s.Failed != 1 || s.Retried != 0 {
		t.Errorf("%s: Stats %+v", what, s)
	}
}

// testLiveFailoverPastASlowNodePublishesOnceInACluster: two Centrifugo
// nodes on one Redis. Node A publishes and answers too late; the call
// fails over to node B with the same idempotency keys, and the history
// both share holds one copy (two before the keys were sent).
func testLiveFailoverPastASlowNodePublishesOnceInACluster(t *testing.T) {
	redis := centrifugotest.StartRedis(t)
	node := func() *centrifugotest.Server {
		srv, _, _ := startCentrifugo(t, nil, nil, instant.CentrifugoOptions{RedisAddress: redis.URL, HistorySize: 100, HistoryTTL: 5 * time.Minute})
		return srv
	}
	a, b := node(), node()
	target, _ := url.Parse(a.HTTPURL)
	fwd := httputil.NewSingleHostReverseProxy(target)
	release := make(chan struct{})
	var slow atomic.Int32
	slowA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		fwd.ServeHTTP(rec, r) // node A publishes
		if strings.HasSuffix(r.URL.Path, "/batch") {
			slow.Add(1) // not the probes of node A once it is marked down
		}
		select { // and answers after the attempt gave up
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slowA.Close()
	defer close(release)
	cfg := testConfig()
	cfg.APIURL, cfg.APIURLs, cfg.PublishTimeout = slowA.URL+"/api", []string{b.APIURL}, 2*time.Second
	inst := newInstant(t, cfg)
	ctx := context.Background()
	if err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "single"}); err != nil {
		t.Fatal(err)
	}
	batch := []instant.Event{{Channel: "$site_users", Message: "batch a"}, {Channels: []string{"$site_users", "$site_staff"}, Message: "batch b"}}
	// A node that did not answer in time is marked down, and the next
	// calls of inst skip it: a fresh Instant sends the batch to node A
	// first again.
	fresh := newInstant(t, cfg)
	if err := fresh.BroadcastBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if s, f := inst.Stats(), fresh.Stats(); slow.Load() != 2 || s.FailedOver != 1 || f.FailedOver != 1 || s.Published+f.Published != 3 {
		t.Errorf("slow answers %d, Stats %+v and %+v: want a failover each", slow.Load(), s, f)
	}
	cfg.APIURL = b.APIURL
	var users []string
	for _, h := range historyOf(t, cfg, "$site_users") {
		users = append(users, strings.SplitN(h, " ", 2)[1])
	}
	if strings.Join(users, "|") != "single|batch a|batch b" {
		t.Errorf("history %q, want each event once", users)
	}
	if staff := historyOf(t, cfg, "$site_staff"); len(staff) != 1 {
		t.Errorf("$site_staff history %q, want one", staff)
	}
}

// countingTransport counts the requests sent, by host, and passes them on.
type countingTransport struct {
	mu    sync.Mutex
	sent  map[string]int
	inner http.RoundTripper
}

func newCountingTransport() *countingTransport {
	return &countingTransport{sent: map[string]int{}, inner: http.DefaultTransport.(*http.Transport).Clone()}
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.sent[r.URL.Host]++
	c.mu.Unlock()
	return c.inner.RoundTrip(r)
}

func (c *countingTransport) count(host string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[host]
}

func hostOf(apiURL string) string { u, _ := url.Parse(apiURL); return u.Host }

// testLiveBroadcastWhileCentrifugoIsDown: Centrifugo stopped, the first
// Broadcast meets the refusal and ends there; the next ones fail at once
// with ErrUnreachable without a request (a probe goes out every 500ms at
// most), and so do the other calls; Stats shows the node down. Started
// again on the same port, a Broadcast goes through within 3 s.
func testLiveBroadcastWhileCentrifugoIsDown(t *testing.T) {
	ls := startLive(t, instant.CentrifugoOptions{})
	counter := newCountingTransport()
	cfg := ls.cfg
	cfg.PublishTimeout = 2 * time.Second
	cfg.HTTPClient = &http.Client{Transport: counter}
	inst := newInstant(t, cfg)
	host := hostOf(cfg.APIURL)
	ctx := context.Background()
	ev := instant.Event{Channel: "$site_users", Message: "x"}
	if err := inst.Broadcast(ctx, ev); err != nil {
		t.Fatal(err)
	}
	ls.srv.Stop()

	var took []time.Duration
	for k := 1; k <= 6; k++ {
		before, start := counter.count(host), time.Now()
		err := inst.Broadcast(ctx, ev)
		d := time.Since(start)
		took = append(took, d)
		var pe *instant.PublishError
		if !errors.Is(err, instant.ErrUnreachable) || !errors.As(err, &pe) || pe.Op != "publish" || len(pe.Channels) != 1 {
			t.Fatalf("Broadcast %d with Centrifugo down: %v, want a *PublishError that is ErrUnreachable", k, err)
		}
		if d > time.Second {
			t.Errorf("Broadcast %d took %v with Centrifugo down, PublishTimeout 2s", k, d)
		}
		// The first meets the refusal; the others try nothing, unless a
		// probe came due while they ran (not in a few milliseconds).
		if sent := counter.count(host) - before; k > 1 && sent > int(d/(500*time.Millisecond)) {
			t.Errorf("Broadcast %d sent %d requests in %v while the node is down", k, sent, d)
		}
	}
	t.Logf("Broadcasts with Centrifugo down took %v", took)
	if s := inst.Stats(); s.NodesDown != 1 || s.Failed != 6 || s.Published != 1 {
		t.Errorf("Stats %+v, want the node down and 6 failed", s)
	}
	// The other calls go through the same path.
	before := counter.count(host)
	_, errP := inst.Presence(ctx, "$site_users")
	errD := inst.Disconnect(ctx, "1")
	for k, err := range []error{errP, errD} {
		if !errors.Is(err, instant.ErrUnreachable) {
			t.Errorf("call %d while down: %v, want ErrUnreachable", k, err)
		}
	}
	if errD == nil || !strings.HasPrefix(errD.Error(), "instant: disconnect: ") {
		t.Errorf("Disconnect while down: %v", errD)
	}
	if sent := counter.count(host) - before; sent > 1 {
		t.Errorf("%d requests while the node is down", sent)
	}

	ls.srv.Restart(t) // the same port, and healthy when it returns
	up := time.Now()
	var err error
	for time.Since(up) < 3*time.Second {
		if err = inst.Broadcast(ctx, ev); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("3 s after Centrifugo came back: %v", err)
	}
	t.Logf("a Broadcast went through %v after Centrifugo answered again", time.Since(up))
	if s := inst.Stats(); s.NodesDown != 0 || s.Published != 2 {
		t.Errorf("Stats %+v, want no node down", s)
	}
}

// TestDownNodeIsSkippedAndProbed: of two nodes, the first refusing
// connections, it is tried once and then skipped by the calls that
// follow, which go to the second at once (a failover each), until its
// probe is due (every 500ms): one probe asks it again.
func TestDownNodeIsSkippedAndProbed(t *testing.T) {
	port, err := centrifugotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://127.0.0.1:" + itoa(port)
	live, n := statusThenOK(t)
	counter := newCountingTransport()
	cfg := testConfig()
	cfg.APIURL, cfg.APIURLs, cfg.PublishTimeout = dead+"/api", []string{live.URL + "/api"}, 2*time.Second
	cfg.HTTPClient = &http.Client{Transport: counter}
	inst := newInstant(t, cfg)
	clock := withFakeClock(inst)
	for k := range 20 {
		if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"}); err != nil {
			t.Fatalf("Broadcast %d: %v", k, err)
		}
	}
	if d, s := counter.count(hostOf(dead)), inst.Stats(); d != 1 || n.Load() != 20 || s.FailedOver != 20 || s.NodesDown != 1 {
		t.Errorf("%d requests to the dead node, %d to the live one, Stats %+v: want one, 20, a failover each, one node down", d, n.Load(), s)
	}
	clock.Advance(600 * time.Millisecond) // the probe is due
	for range 5 {
		if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if d := counter.count(hostOf(dead)); d != 2 {
		t.Errorf("%d requests to the dead node after its probe came due, want 2", d)
	}
}

// TestFailingNodeIsNotMarkedDown: a node that answers 503 answered: it
// is retried within the call, and not marked down.
func TestFailingNodeIsNotMarkedDown(t *testing.T) {
	busy, n := statusThenOK(t, status(http.StatusServiceUnavailable, ""), status(http.StatusServiceUnavailable, ""))
	inst := standIn(t, 2*time.Second, busy.URL)
	var err error
	withFakeClock(inst).drive(func() { err = inst.Broadcast(context.Background(), instant.Event{Channel: "a"}) })
	if err != nil || n.Load() != 3 {
		t.Errorf("two 503s: %v after %d requests, want through on the third", err, n.Load())
	}
	if s := inst.Stats(); s.NodesDown != 0 || s.Retried != 2 {
		t.Errorf("two 503s: Stats %+v", s)
	}
}

// ==== A node that goes silent (takes the request, answers nothing) costs
// one timeout, not one a call.

// testLiveFrozenCentrifugoCostsOneTimeout: Centrifugo frozen (SIGSTOP:
// silent, not refusing), the first Broadcast waits out PublishTimeout and
// fails with ErrUnreachable (and context.DeadlineExceeded: the time ran
// out); the next four fail at once with ErrUnreachable. Thawed, a
// Broadcast goes through within a few seconds and reaches a subscriber.
func testLiveFrozenCentrifugoCostsOneTimeout(t *testing.T) {
	ls := startLive(t, instant.CentrifugoOptions{})
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	inst := ls.through(t, time.Second, ls.srv.APIURL)
	ctx := context.Background()
	if err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "before"}); err != nil {
		t.Fatal(err)
	}
	ls.srv.Freeze(t)
	var took []time.Duration
	for k := 1; k <= 5; k++ {
		start := time.Now()
		err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "frozen"})
		d := time.Since(start)
		took = append(took, d)
		var pe *instant.PublishError
		if !errors.Is(err, instant.ErrUnreachable) || !errors.As(err, &pe) || pe.Op != "publish" {
			t.Errorf("Broadcast %d to a frozen Centrifugo: %v, want a *PublishError that is ErrUnreachable", k, err)
		}
		switch {
		case k == 1 && (!errors.Is(err, context.DeadlineExceeded) || d < 900*time.Millisecond || d > 2*time.Second):
			t.Errorf("Broadcast 1: %v after %v, want the time to run out after PublishTimeout (1s)", err, d)
		case k > 1 && d >= 500*time.Millisecond: // waiting would take the 1s
			t.Errorf("Broadcast %d took %v after a timeout, want it to fail at once", k, d)
		}
	}
	t.Logf("Broadcasts to a frozen Centrifugo took %v; the last said: %v", took, func() error {
		return inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "frozen"})
	}())
	if s := inst.Stats(); s.NodesDown != 1 || s.Failed != 6 {
		t.Errorf("Stats %+v, want the node down and 6 failed", s)
	}

	ls.srv.Thaw(t)
	took1, err := retryFor(5*time.Second, func() error {
		return inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "thawed"})
	})
	if err != nil {
		t.Fatalf("5 s after the thaw: %v", err)
	}
	t.Logf("a Broadcast went through %v after the thaw", took1)
	lc.waitFor("thawed")
	if s := inst.Stats(); s.NodesDown != 0 {
		t.Errorf("Stats %+v, want no node down", s)
	}
}

// testLiveFailoverPastAFrozenNode: two Centrifugo nodes, the first frozen.
// The first Broadcast waits out the frozen node's share of PublishTimeout
// and goes through the live one; the next ones go there at once. Thawed,
// the first node is taken again.
func testLiveFailoverPastAFrozenNode(t *testing.T) {
	a, b := startLive(t, instant.CentrifugoOptions{}), startLive(t, instant.CentrifugoOptions{})
	lc := b.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	inst := a.through(t, 2*time.Second, a.srv.APIURL, b.srv.APIURL)
	ctx := context.Background()
	a.srv.Freeze(t)
	var took []time.Duration
	for k := 1; k <= 5; k++ {
		msg := "through the live node " + itoa(k)
		start := time.Now()
		err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: msg})
		d := time.Since(start)
		took = append(took, d)
		if err != nil {
			t.Fatalf("Broadcast %d: %v", k, err)
		}
		if k > 1 && d >= 500*time.Millisecond { // waiting would take the frozen node's 1s share
			t.Errorf("Broadcast %d took %v: it waited on the frozen node again", k, d)
		}
		lc.waitFor(msg)
	}
	t.Logf("Broadcasts past a frozen node took %v", took)
	if s := inst.Stats(); s.NodesDown != 1 || s.FailedOver != 5 || s.Published != 5 || s.Failed != 0 {
		t.Errorf("Stats %+v, want the frozen node down and 5 failovers", s)
	}
	a.srv.Thaw(t)
	if _, err := retryFor(5*time.Second, func() error {
		if err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "x"}); err != nil {
			return err
		}
		if s := inst.Stats(); s.NodesDown != 0 {
			return errors.New("the thawed node is still down")
		}
		return nil
	}); err != nil {
		t.Errorf("5 s after the thaw: %v", err)
	}
}

// TestSilentNodeIsMarkedDownAndProbedOnceAtATime: a node that takes the
// request and never answers is marked down when the call's time runs out;
// the calls that follow, 8 callers at once while a fake clock moves 1.5 s,
// fail at once without a publish reaching the node, while probes ask it,
// one at a time, whether it answers again. Once it does, calls go through.
func TestSilentNodeIsMarkedDownAndProbedOnceAtATime(t *testing.T) {
	m := newMoodyAPI(t)
	m.setHung(true)
	inst := standIn(t, 400*time.Millisecond, m.srv.URL)
	clock := withFakeClock(inst)
	start := time.Now()
	err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
	if d := time.Since(start); !errors.Is(err, instant.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) || d < 350*time.Millisecond {
		t.Fatalf("silent node: %v after %v, want ErrUnreachable after PublishTimeout", err, d)
	}
	if s := inst.Stats(); s.NodesDown != 1 || s.Failed != 1 {
		t.Errorf("silent node: Stats %+v, want it down", s)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	calls := 0
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
				d := time.Since(start)
				if !errors.Is(err, instant.ErrUnreachable) {
					t.Errorf("a call after the timeout: %v, want ErrUnreachable", err)
				}
				mu.Lock()
				slowest, calls = max(slowest, d), calls+1
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	// A probe comes due after 500ms, and takes 400ms of real time: its context is real.
	for range 30 { // 50ms steps, each after at least 8 more calls
		mu.Lock()
		next := calls + 8
		mu.Unlock()
		for c := 0; c < next; time.Sleep(time.Millisecond) {
			mu.Lock()
			c = calls
			mu.Unlock()
		}
		clock.Advance(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if _, probes, _ := m.counts(); probes > 0 { // the probe's request is on its way
			break
		}
	}
	publishes, probes, most := m.counts()
	t.Logf("%d calls to a silent node, the slowest %v; %d probes reached it", calls, slowest, probes)
	if slowest >= 300*time.Millisecond || publishes != 1 || probes < 1 || probes > 2 || most > 1 {
		t.Errorf("calls to a silent node: the slowest took %v, %d publishes and %d probes reached it (%d at once), want at once, 1, 1 or 2 one at a time", slowest, publishes, probes, most)
	}
	if s := inst.Stats(); s.NodesDown != 1 {
		t.Errorf("Stats %+v, want the node still down", s)
	}

	m.setHung(false)
	took, err := retryFor(3*time.Second, func() error {
		clock.Advance(500 * time.Millisecond) // a probe is due
		return inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
	})
	if err != nil {
		t.Fatalf("3 s after the node answers again: %v", err)
	}
	if _, _, most := m.counts(); most > 1 || inst.Stats().NodesDown != 0 {
		t.Errorf("%d probes at once, Stats %+v", most, inst.Stats())
	}
	t.Logf("through %v after the node answered again", took)
}

// testSlowNodeIsNotWedged: a node that answered one call too late (alive,
// but slow) is probed, and the next call goes through.
func testSlowNodeIsNotWedged(t *testing.T) {
	m := newMoodyAPI(t)
	m.setDelay(600 * time.Millisecond)
	inst := standIn(t, 400*time.Millisecond, m.srv.URL)
	clock := withFakeClock(inst)
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"}); !errors.Is(err, instant.ErrUnreachable) {
		t.Fatalf("a slow answer: %v, want ErrUnreachable", err)
	}
	m.setDelay(0)
	clock.Advance(500 * time.Millisecond) // the probe is due
	took, err := retryFor(3*time.Second, func() error { return inst.Broadcast(context.Background(), instant.Event{Channel: "a"}) })
	if err != nil || took > time.Second {
		t.Errorf("after one slow answer: %v, through after %v", err, took)
	}
}

// testCallersDeadlineDoesNotMarkTheNodeDown: a caller's own short ctx
// running out (or canceled) while a healthy but slow node works is no
// fault of the node's: it is not marked down, the error is the context's
// and not ErrUnreachable, and the next call waits for the node's answer.
func testCallersDeadlineDoesNotMarkTheNodeDown(t *testing.T) {
	m := newMoodyAPI(t)
	m.setDelay(300 * time.Millisecond)
	inst := standIn(t, 2*time.Second, m.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := inst.Broadcast(ctx, instant.Event{Channel: "a"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, instant.ErrUnreachable) {
		t.Errorf("caller's 50ms deadline: %v, want the deadline and not ErrUnreachable", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err = inst.Broadcast(ctx, instant.Event{Channel: "a"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, instant.ErrUnreachable) {
		t.Errorf("caller canceled: %v, want context.Canceled and not ErrUnreachable", err)
	}
	if s := inst.Stats(); s.NodesDown != 0 {
		t.Errorf("Stats %+v, want no node down", s)
	}
	start := time.Now()
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"}); err != nil {
		t.Errorf("the next call: %v", err)
	}
	// The last call reached the node and waited its time, and no probe was
	// sent. The first two reach it too unless, on a loaded machine, their
	// callers' 50ms end before the request is sent.
	if publishes, probes, _ := m.counts(); publishes < 1 || publishes > 3 || probes != 0 || time.Since(start) < 250*time.Millisecond {
		t.Errorf("%d publishes and %d probes reached the node, the last call took %v: want 1 to 3, 0 and the node's time", publishes, probes, time.Since(start))
	}
}
