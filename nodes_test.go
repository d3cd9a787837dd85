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
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

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

// through is an Instant of the live setup's config whose API calls go to
// apiURL (and then apiURLs).
func (ls *liveSetup) through(t *testing.T, timeout time.Duration, apiURL string, apiURLs ...string) *instant.Instant {
	cfg := ls.cfg
	cfg.APIURL, cfg.APIURLs, cfg.PublishTimeout = apiURL, apiURLs, timeout
	return newInstant(t, cfg)
}

func TestLiveRetriesDeliverOnce(t *testing.T) {
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

func TestLiveStoppedNodeAnswersWithinTimeout(t *testing.T) {
	port, err := centrifugotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ls := startLive(t, instant.CentrifugoOptions{})
	dead := "http://127.0.0.1:" + itoa(port) + "/api"
	inst := ls.through(t, 500*time.Millisecond, dead)
	start := time.Now()
	err = inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "x"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && inst.Stats().Retried == 0 {
		t.Errorf("a stopped node: %v, Stats %+v", err, inst.Stats())
	}
	if d := time.Since(start); d > 500*time.Millisecond+time.Second {
		t.Errorf("answered after %v with a PublishTimeout of 500ms", d)
	}
	if inst.Stats().Retried == 0 {
		t.Error("a node that refused connections was not retried")
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

// TestLiveFailoverPastAHangingNode: a node that takes the request and never
// answers costs one attempt's share of PublishTimeout, not all of it; the
// next node delivers.
func TestLiveFailoverPastAHangingNode(t *testing.T) {
	ls := startLive(t, instant.CentrifugoOptions{})
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
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

// TestLiveFailoverPastANodeThatDiesMidReply: a node that published and
// then went away in the middle of its reply did not answer; the call goes
// on to the next node, with the same event id, so that the subscriber can
// drop the second copy.
func TestLiveFailoverPastANodeThatDiesMidReply(t *testing.T) {
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
	eventually(t, "two copies", func() bool { return len(copies()) >= 2 })
	time.Sleep(200 * time.Millisecond) // room for a third that should not come
	ids := copies()
	if cut.Load() != 1 || len(ids) != 2 || ids[0] != ids[1] {
		t.Errorf("replies cut %d, copies received %v: want two copies of one id", cut.Load(), ids)
	}
	if s := inst.Stats(); s.FailedOver != 1 || s.Published != 1 || s.Failed != 0 {
		t.Errorf("Stats %+v", s)
	}
}
