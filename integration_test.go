package instant_test

// Tests against a real Centrifugo v6.9.1 on a free loopback port, with
// centrifuge-go clients. They skip when Centrifugo is missing, and fail
// under CI=true (internal/centrifugotest).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-instant/instant"
)

var liveChannels = []string{"site_public", "$site_users", "$site_editors", "$site_staff", "$site_admin", "$orders:o1", "$private_chan"}

func TestLiveRolesAgreeWithCentrifugo(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	cases := []struct {
		name string
		u    *instant.User
		want []string // channels the client ends up subscribed to
	}{
		{"anonymous", nobody, []string{"site_public"}},
		{"user", &alice, []string{"site_public", "$site_users", "$orders:o1"}},
		{"group member", &gina, []string{"site_public", "$site_users", "$site_editors"}},
		{"staff", &sam, []string{"site_public", "$site_users", "$site_staff"}},
		{"superuser", &root, []string{"site_public", "$site_users", "$site_staff", "$site_admin"}},
	}
	clients := map[string]*liveClient{}
	for _, tc := range cases {
		lc, bare := ls.connect(t, tc.u), ls.connect(t, tc.u)
		clients[tc.name] = lc
		var got []string
		for _, ch := range liveChannels {
			if lc.subscribe(ch, privateChannel(ch), "") {
				got = append(got, ch)
			}
			// Centrifugo agrees by itself: it refuses a "$" channel to a
			// client that brings no token.
			if privateChannel(ch) {
				if bare.subscribe(ch, false, "") {
					t.Errorf("Centrifugo let %s read %s without a token", tc.name, ch)
				} else if bare.refusal != 103 {
					t.Errorf("Centrifugo refused %s to %s with code %d, want 103", ch, tc.name, bare.refusal)
				}
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s subscribed to %v, want %v", tc.name, got, tc.want)
		}
	}

	// One broadcast per channel, then a last public one as a marker: each
	// client must have exactly the events of the channels it holds.
	ctx := context.Background()
	for _, ch := range liveChannels {
		err := ls.inst.Broadcast(ctx, instant.Event{Channel: ch, Message: "to " + ch, EventClass: "test", Data: map[string]any{"ch": ch, "n": 1}})
		if err != nil {
			t.Fatalf("Broadcast to %s: %v", ch, err)
		}
	}
	if err := ls.inst.Broadcast(ctx, instant.Event{Message: "marker", Target: instant.LevelPublic}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		lc := clients[tc.name]
		if lc == nil {
			continue
		}
		got := lc.waitFor("marker")
		var msgs []string
		for _, p := range got {
			if p["message"] == "marker" {
				continue
			}
			msgs = append(msgs, p["message"].(string))
			ch := strings.TrimPrefix(p["message"].(string), "to ")
			data, _ := p["data"].(map[string]any)
			if p["channel"] != ch || p["event_class"] != "test" || data["ch"] != ch || p["site"] != "site" || p["id"] == "" {
				t.Errorf("%s: payload not intact: %v", tc.name, p)
			}
		}
		var want []string
		for _, ch := range tc.want {
			want = append(want, "to "+ch)
		}
		sort.Strings(msgs)
		sort.Strings(want)
		if strings.Join(msgs, "|") != strings.Join(want, "|") {
			t.Errorf("%s received %v, want %v", tc.name, msgs, want)
		}
	}
}

func TestLiveBroadcastToSeveralChannels(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	staff := ls.connect(t, &sam)
	admin := ls.connect(t, &root)
	staff.subscribe("$site_staff", true, "")
	admin.subscribe("$site_admin", true, "")
	err := ls.inst.Broadcast(context.Background(), instant.Event{
		Channels: []string{"$site_staff", "$site_admin"}, Message: "both", Data: []int{1, 2, 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b := staff.waitFor("both")[0], admin.waitFor("both")[0]
	if a["channel"] != "$site_staff" || b["channel"] != "$site_admin" || a["id"] != b["id"] {
		t.Errorf("staff got %v, admin got %v", a, b)
	}
	if fmt.Sprint(a["data"]) != "[1 2 3]" {
		t.Errorf("data %v", a["data"])
	}
}

// TestLiveBroadcastBatch sends 500 events in one BroadcastBatch, to a
// staff channel and to the staff member's personal channel in turn: all
// arrive, each on its channel, in the order sent.
func TestLiveBroadcastBatch(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	staff := ls.connect(t, &sam)
	own := ls.inst.UserChannel(sam.ID)
	if !staff.subscribe("$site_staff", true, "") || !staff.subscribe(own, true, "") {
		t.Fatal("subscriptions refused")
	}
	const n = 500
	events := make([]instant.Event, n)
	for k := range events {
		events[k] = instant.Event{Channel: "$site_staff", Message: "b" + strconv.Itoa(k)}
		if k%2 == 1 {
			events[k] = instant.Event{Users: []string{sam.ID}, Message: "b" + strconv.Itoa(k)}
		}
	}
	if err := ls.inst.BroadcastBatch(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	got := staff.waitFor("b" + strconv.Itoa(n-1))
	perChannel := map[string][]string{}
	for _, p := range got {
		ch, _ := p["channel"].(string)
		msg, _ := p["message"].(string)
		perChannel[ch] = append(perChannel[ch], msg)
	}
	for ch, first := range map[string]int{"$site_staff": 0, own: 1} {
		msgs := perChannel[ch]
		if len(msgs) != n/2 {
			t.Errorf("%s: %d events, want %d", ch, len(msgs), n/2)
			continue
		}
		for j, m := range msgs {
			if want := "b" + strconv.Itoa(first+2*j); m != want {
				t.Errorf("%s: event %d is %s, want %s", ch, j, m, want)
				break
			}
		}
	}
}

func TestLiveCentrifugoRefusesForgedTokens(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	lc := ls.connect(t, &alice)
	// A token for another user's sub: Centrifugo refuses it.
	other, err := ls.inst.SubscriptionToken(nil, &root, "$site_admin")
	if err != nil {
		t.Fatal(err)
	}
	if lc.subscribe("$site_admin", false, other.Token) {
		t.Error("Centrifugo accepted a subscription token made for another user")
	}
	// A token signed with another secret: refused too.
	cfg := testConfig()
	cfg.TokenSecret = "some-other-secret-0123456789abcdef"
	forged, err := newInstant(t, cfg).SubscriptionToken(nil, &alice, "$site_users")
	if err != nil {
		t.Fatal(err)
	}
	lc2 := ls.connect(t, &alice)
	if lc2.subscribe("$site_users", false, forged.Token) {
		t.Error("Centrifugo accepted a token signed with another secret")
	}
}

func TestLiveBroadcastErrors(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	// Wrong API key: a typed error.
	cfg := ls.cfg
	cfg.APIKey = "wrong-key"
	bad := newInstant(t, cfg)
	err := bad.Broadcast(context.Background(), instant.Event{Message: "x", Target: instant.LevelPublic})
	var pe *instant.PublishError
	if !errors.Is(err, instant.ErrAPIKey) || !errors.As(err, &pe) || pe.StatusCode != 401 || !strings.HasPrefix(pe.Err.Error(), "http status 401") {
		t.Errorf("wrong key: %v", err)
	}
	// Centrifugo stopped: an error, at once (the connection is refused),
	// not when PublishTimeout (10 s) runs out.
	ls.srv.Stop()
	start := time.Now()
	err = ls.inst.Broadcast(context.Background(), instant.Event{Message: "x", Target: instant.LevelPublic})
	if err == nil || !errors.As(err, &pe) {
		t.Fatalf("stopped server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v with Centrifugo stopped, PublishTimeout %v", d, ls.cfg.PublishTimeout)
	}
}

// TestLiveHistoryAndDisconnect: a channel with history keeps the events
// broadcast to it, in order; Disconnect drops a user's connection, which
// comes back.
func TestLiveHistoryAndDisconnect(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{HistorySize: 10, HistoryTTL: time.Minute})
	ctx := context.Background()
	for _, m := range []string{"first", "second"} {
		if err := ls.inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []string
	for _, p := range history(t, ls.cfg, "$site_users") {
		var ev map[string]any
		if err := json.Unmarshal(p, &ev); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, ev["message"].(string))
	}
	if strings.Join(msgs, ",") != "first,second" {
		t.Errorf("history %v", msgs)
	}

	lc := ls.connect(t, &alice)
	dropped := make(chan uint32, 1)
	back := make(chan struct{}, 1)
	lc.c.OnConnecting(func(e centrifuge.ConnectingEvent) {
		select {
		case dropped <- e.Code:
		default:
		}
	})
	lc.c.OnConnected(func(centrifuge.ConnectedEvent) { back <- struct{}{} })
	if err := ls.inst.Disconnect(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-dropped:
		if code != 4001 {
			t.Errorf("disconnect code %d, want 4001", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Disconnect did not reach the client")
	}
	select {
	case <-back:
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not reconnect after Disconnect")
	}
	if err := ls.inst.Disconnect(ctx, ""); !errors.Is(err, instant.ErrInvalidUser) {
		t.Errorf("Disconnect of no one: %v", err)
	}
}

// TestLiveTokensRefresh uses tokens that expire in two seconds: the client
// asks the routes again, keeps its connection and its subscription, and
// still receives private events.
func TestLiveTokensRefresh(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	cfg := ls.cfg
	cfg.ConnectionTokenTTL, cfg.SubscriptionTokenTTL = 2*time.Second, 2*time.Second
	short := &liveSetup{srv: ls.srv, inst: newInstant(t, cfg)}
	short.app = newRouter(short.inst)

	lc := short.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	disconnected := make(chan struct{}, 1)
	lc.c.OnDisconnected(func(centrifuge.DisconnectedEvent) { disconnected <- struct{}{} })
	time.Sleep(5 * time.Second) // two and more lifetimes of each token
	lc.mu.Lock()
	conn, sub := lc.calls["/instant/connection_token"], lc.calls["/instant/subscription_token"]
	lc.mu.Unlock()
	if conn < 2 || sub < 2 {
		t.Errorf("token requests: %d connection, %d subscription; want refreshes of both", conn, sub)
	}
	select {
	case <-disconnected:
		t.Error("the client was disconnected while refreshing")
	default:
	}
	if err := short.inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "after refresh"}); err != nil {
		t.Fatal(err)
	}
	lc.waitFor("after refresh")
}

// TestLiveDefaultConfigRecovers: with the config CentrifugoConfig writes
// by default, a page that drops and reconnects receives what was published
// to its private channels meanwhile, in order and once. A public channel
// without a namespace shares the options of the private ones without one,
// and recovers too.
func TestLiveDefaultConfigRecovers(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	ctx := context.Background()
	lc := ls.connect(t, &alice)
	for _, ch := range []string{"$site_users", "site_public"} {
		if !lc.subscribe(ch, true, "") {
			t.Fatalf("alice could not subscribe to %s", ch)
		}
	}
	if err := ls.inst.Broadcast(ctx, instant.Event{Channels: []string{"$site_users", "site_public"}, Message: "before"}); err != nil {
		t.Fatal(err)
	}
	lc.waitFor("before")
	if err := lc.c.Disconnect(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"missed-1", "missed-2", "missed-3"} {
		if err := ls.inst.Broadcast(ctx, instant.Event{Channels: []string{"$site_users", "site_public"}, Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	if err := lc.c.Connect(); err != nil {
		t.Fatal(err)
	}
	if err := ls.inst.Broadcast(ctx, instant.Event{Channels: []string{"$site_users", "site_public"}, Message: "after"}); err != nil {
		t.Fatal(err)
	}
	var private, public []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		private, public = nil, nil
		for _, p := range lc.waitFor("after") {
			if p["channel"] == "$site_users" {
				private = append(private, p["message"].(string))
			} else {
				public = append(public, p["message"].(string))
			}
		}
		if slices.Contains(private, "after") && slices.Contains(public, "after") || time.Now().After(deadline) {
			break
		}
	}
	if want := "before missed-1 missed-2 missed-3 after"; strings.Join(private, " ") != want {
		t.Errorf("$site_users received %q, want %q", private, want)
	}
	// site_public has no namespace, as $site_users: it shares their
	// options, history included.
	if want := "before missed-1 missed-2 missed-3 after"; strings.Join(public, " ") != want {
		t.Errorf("site_public received %q, want %q", public, want)
	}
}
