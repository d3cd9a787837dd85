package instant_test

// The API client (apiclient.go): the hand-written publish request against
// a real Centrifugo with history (one copy of every event, whatever is
// sent twice; partly failed batches say what went out), and every call's
// errors against a stand-in.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/gocent/v3"
	"github.com/gin-instant/instant"
)

// TestLiveSameEventTwiceIsPublishedOnce: an event sent again with its ID
// (Broadcast, BroadcastBatch) is one publication in each channel's
// history, and another event is not taken for it.
func TestLiveSameEventTwiceIsPublishedOnce(t *testing.T) {
	t.Parallel()
	ls := startLive(t, withHistory())
	ctx := context.Background()
	ev := instant.Event{ID: "ev-1", Channels: []string{"$site_users", "$site_staff"}, Message: "once"}
	for range 2 {
		if err := ls.inst.Broadcast(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	batch := []instant.Event{
		{ID: "b-1", Channel: "$site_users", Message: "batch one"},
		{ID: "b-2", Channels: []string{"$site_users", "$site_staff"}, Message: "batch two"},
	}
	for range 2 {
		if err := ls.inst.BroadcastBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	// A new event, and the same ID in a channel it was not sent to.
	if err := ls.inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "other"}); err != nil {
		t.Fatal(err)
	}
	if err := ls.inst.Broadcast(ctx, instant.Event{ID: "ev-1", Channel: "$site_admin", Message: "once"}); err != nil {
		t.Fatal(err)
	}
	users := historyOf(t, ls.cfg, "$site_users")
	if len(users) != 4 || users[0] != "ev-1 once" || users[1] != "b-1 batch one" || users[2] != "b-2 batch two" || !strings.HasSuffix(users[3], " other") {
		t.Errorf("$site_users history %q, want each event once", users)
	}
	if staff := historyOf(t, ls.cfg, "$site_staff"); strings.Join(staff, "|") != "ev-1 once|b-2 batch two" {
		t.Errorf("$site_staff history %q", staff)
	}
	if admin := historyOf(t, ls.cfg, "$site_admin"); strings.Join(admin, "|") != "ev-1 once" {
		t.Errorf("$site_admin history %q", admin)
	}
	if s := ls.inst.Stats(); s.Published != 8 || s.Failed != 0 {
		t.Errorf("Stats %+v", s)
	}
}

// lossyProxy forwards every request to target and, for the first failures
// requests, throws Centrifugo's reply away and answers status instead: a
// gateway whose publish did reach Centrifugo.
func lossyProxy(t *testing.T, target string, failures int32, status int) (*httptest.Server, *atomic.Int32) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(u)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > failures {
			fwd.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		fwd.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Errorf("Centrifugo answered %d behind the proxy", rec.Code)
		}
		http.Error(w, "injected after forwarding", status)
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// TestLiveRetryAfterAGatewayErrorPublishesOnce: a 502 or 504 whose publish
// reached Centrifugo is retried, and Centrifugo drops the second copy.
func TestLiveRetryAfterAGatewayErrorPublishesOnce(t *testing.T) {
	t.Parallel()
	ls := startLive(t, withHistory())
	ctx := context.Background()
	for _, status := range []int{http.StatusBadGateway, http.StatusGatewayTimeout} {
		p, requests := lossyProxy(t, ls.srv.HTTPURL, 1, status)
		inst := ls.through(t, 5*time.Second, p.URL+"/api")
		msg := fmt.Sprintf("after a %d", status)
		if err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: msg}); err != nil {
			t.Fatalf("%d: %v", status, err)
		}
		batch := []instant.Event{{Channel: "$site_staff", Message: msg + " a"}, {Channel: "$site_staff", Message: msg + " b"}}
		if err := inst.BroadcastBatch(ctx, batch); err != nil {
			t.Fatalf("%d, batch: %v", status, err)
		}
		if s := inst.Stats(); requests.Load() != 3 || s.Retried != 1 || s.Published != 3 {
			t.Errorf("%d: %d requests, Stats %+v: want one retry", status, requests.Load(), s)
		}
	}
	var users, staff []string
	for _, h := range historyOf(t, ls.cfg, "$site_users") {
		users = append(users, strings.SplitN(h, " ", 2)[1])
	}
	for _, h := range historyOf(t, ls.cfg, "$site_staff") {
		staff = append(staff, strings.SplitN(h, " ", 2)[1])
	}
	if strings.Join(users, "|") != "after a 502|after a 504" {
		t.Errorf("$site_users history %q, want each event once", users)
	}
	if strings.Join(staff, "|") != "after a 502 a|after a 502 b|after a 504 a|after a 504 b" {
		t.Errorf("$site_staff history %q, want each event once", staff)
	}
}

// TestLivePartlyFailedBatch: Centrifugo refuses the publications to a
// namespace it does not know (102); the error names the events that did
// not go out, the others are published, and Stats counts them.
func TestLivePartlyFailedBatch(t *testing.T) {
	t.Parallel()
	ls := startLive(t, withHistory())
	batch := []instant.Event{
		{ID: "p0", Channel: "$site_users", Message: "zero"},
		{ID: "p1", Channel: "nosuchns:x", Message: "one"},
		{ID: "p2", Channel: "$site_users", Message: "two"},
		{ID: "p3", Channels: []string{"$site_staff", "nosuchns:y"}, Message: "three"},
		{ID: "p4", Channel: "$site_users", Message: "four"},
	}
	err := ls.inst.BroadcastBatch(context.Background(), batch)
	var pe *instant.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PublishError", err)
	}
	if !slices.Equal(pe.Failed, []int{1, 3}) || pe.Code != 102 || strings.Join(pe.Channels, ",") != "nosuchns:x,nosuchns:y" {
		t.Errorf("Failed %v, code %d, channels %v: want events 1 and 3, 102", pe.Failed, pe.Code, pe.Channels)
	}
	if !strings.Contains(err.Error(), "events 1, 3 of 5 not published") {
		t.Errorf("text %q", err)
	}
	if got := historyOf(t, ls.cfg, "$site_users"); strings.Join(got, "|") != "p0 zero|p2 two|p4 four" {
		t.Errorf("$site_users history %q", got)
	}
	if s := ls.inst.Stats(); s.Published != 3 || s.Failed != 1 || s.Retried != 0 {
		t.Errorf("Stats %+v, want 3 published", s)
	}
	// Sent again, the same: event 3's publication to $site_staff is
	// not made twice.
	if err := ls.inst.BroadcastBatch(context.Background(), batch); !errors.As(err, &pe) || !slices.Equal(pe.Failed, []int{1, 3}) {
		t.Errorf("again: %v", err)
	}
	if got := historyOf(t, ls.cfg, "$site_staff"); strings.Join(got, "|") != "p3 three" {
		t.Errorf("$site_staff history %q", got)
	}
	// Broadcast's error has no Failed: there is one event.
	err = ls.inst.Broadcast(context.Background(), instant.Event{Channels: []string{"$site_users", "nosuchns:z"}})
	if !errors.As(err, &pe) || pe.Failed != nil || pe.Code != 102 {
		t.Errorf("Broadcast: %v", err)
	}
}

// TestLiveErrorOfAHugePublishIsBounded: 30,000 personal channels that
// Centrifugo refuses (its config knows no personal namespace here) make an
// error of a few KiB that counts them, not a list of every user.
func TestLiveErrorOfAHugePublishIsBounded(t *testing.T) {
	t.Parallel()
	// The server's config is another site's: it knows no personal namespace of inst's.
	srv, _, _ := startCentrifugo(t, func(c *instant.Config) { c.SiteSlug = "elsewhere" }, nil, instant.CentrifugoOptions{})
	cfg := testConfig()
	cfg.APIURL, cfg.PublishTimeout = srv.APIURL, 20*time.Second
	inst := newInstant(t, cfg)
	users := make([]string, 30000)
	for k := range users {
		users[k] = "user-" + strconv.Itoa(100000+k)
	}
	err := inst.Broadcast(context.Background(), instant.Event{Users: users, Message: "to everyone"})
	var pe *instant.PublishError
	if !errors.As(err, &pe) || pe.Code != 102 || len(pe.Channels) != 30000 {
		t.Fatalf("err = %.300v, want 102 for 30,000 channels", err)
	}
	text := err.Error()
	if len(text) >= 4<<10 || !strings.Contains(text, "and 29997 more") || strings.Contains(text, users[3]) {
		t.Errorf("error of %d bytes: %.500q", len(text), text)
	}
}

// TestPublishSendsTheEventIDAsIdempotencyKey: every publication of
// Broadcast and BroadcastBatch carries its event's id, whatever bytes it
// holds, in the legacy /api format gocent speaks.
func TestPublishSendsTheEventIDAsIdempotencyKey(t *testing.T) {
	inst, f := fakeInstant(t)
	odd := "id \"quoted\" \\ \n\t\x01 é"
	if err := inst.Broadcast(context.Background(), instant.Event{Channels: []string{"a", "b"}, Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if err := inst.BroadcastBatch(context.Background(), []instant.Event{{ID: odd, Channel: "a"}, {Channels: []string{"b", "c"}}}); err != nil {
		t.Fatal(err)
	}
	for req, want := range [][]int{{0, 0}, {0, 1, 1}} {
		if len(f.requests[req]) != len(want) {
			t.Fatalf("request %d: %d commands", req, len(f.requests[req]))
		}
		for k, cmd := range f.requests[req] {
			params := cmd["params"].(map[string]any)
			data := params["data"].(map[string]any)
			key, _ := params["idempotency_key"].(string)
			if key == "" || key != data["id"] {
				t.Errorf("request %d, publication %d: key %q, event id %q", req, k, key, data["id"])
			}
			first := f.requests[req][0]["params"].(map[string]any)["idempotency_key"]
			if (want[k] == want[0]) != (key == first) {
				t.Errorf("request %d, publication %d: key %q next to %q", req, k, key, first)
			}
		}
	}
	if got := f.requests[1][0]["params"].(map[string]any)["idempotency_key"]; got != odd {
		t.Errorf("key %q, want %q", got, odd)
	}
}

func TestBroadcastAPIErrors(t *testing.T) {
	inst, f := fakeInstant(t)
	f.answer(func(w http.ResponseWriter, n int) { w.WriteHeader(http.StatusUnauthorized) }, nil)
	err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
	var pe *instant.PublishError
	if !errors.Is(err, instant.ErrAPIKey) || !errors.As(err, &pe) || pe.StatusCode != 401 || speaksGocent(pe.Err) {
		t.Errorf("401: %v (%T)", err, pe.Err)
	}
	f.answer(nil, func(w http.ResponseWriter, n int) {
		w.Write([]byte(batchOf(`{"publish":{}}`, `{"error":{"code":102,"message":"unknown channel"}}`)))
	})
	err = inst.Broadcast(context.Background(), instant.Event{Channels: []string{"a", "bc:d"}})
	if !errors.As(err, &pe) || pe.Code != 102 || len(pe.Channels) != 1 || pe.Channels[0] != "bc:d" ||
		pe.Err == nil || pe.Err.Error() != "centrifugo error 102: unknown channel" || speaksGocent(pe.Err) {
		t.Errorf("API error: %v", err)
	}
	if errors.Is(err, instant.ErrAPIKey) {
		t.Error("API error taken for a key refusal")
	}
}

func TestOtherAPICallsWrapErrors(t *testing.T) {
	inst, f := fakeInstant(t)
	f.answer(func(w http.ResponseWriter, n int) {
		w.Write([]byte(`{"error":{"code":108,"message":"not available"}}` + "\n"))
	}, nil)
	_, err := inst.Presence(context.Background(), "$news")
	var pe *instant.PublishError
	if !errors.As(err, &pe) || pe.Op != "presence" || pe.Code != 108 || pe.Channels[0] != "$news" {
		t.Errorf("presence: %v", err)
	}
	f.answer(func(w http.ResponseWriter, n int) { w.WriteHeader(http.StatusUnauthorized) }, nil)
	err = inst.Disconnect(context.Background(), "42")
	if !errors.Is(err, instant.ErrAPIKey) || !strings.HasPrefix(err.Error(), "instant: disconnect: ") {
		t.Errorf("disconnect: %v", err)
	}
}

// speaksGocent reports whether err, or an error it wraps, is one of
// gocent's types or sentinels: a PublishError's Err speaks only of this
// package's names (and the standard library's).
func speaksGocent(err error) bool {
	for err != nil {
		if strings.Contains(fmt.Sprintf("%T", err), "gocent") || errors.Is(err, gocent.ErrMalformedResponse) {
			return true
		}
		err = errors.Unwrap(err)
	}
	return false
}
