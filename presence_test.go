package instant_test

// Presence and personal channels against a real Centrifugo v6.9.1 with the
// config CentrifugoConfig writes, and centrifuge-go clients.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

var (
	ann = instant.User{ID: "11", Username: "ann", Info: map[string]any{"name": "Ann"}}
	bob = instant.User{ID: "12", Username: "bob", Info: map[string]any{"name": "Bob"}}
	cy  = instant.User{ID: "13", Username: "cy", Info: map[string]any{"name": "Cy"}}
)

// joins records the joins and leaves one subscription is pushed.
type joins struct {
	mu           sync.Mutex
	joined, left []string                // user IDs, in order
	infos        []centrifuge.ClientInfo // of the joins
}

func (j *joins) has(list *[]string, user string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, u := range *list {
		if u == user {
			return true
		}
	}
	return false
}

// watchedSub subscribes lc to channel (with a token from the routes when
// private) and records the joins and leaves pushed to it.
func watchedSub(t *testing.T, lc *liveClient, channel string) (*centrifuge.Subscription, *joins) {
	t.Helper()
	return watchedSubWith(t, lc, channel, privateChannel(channel), false)
}

// watchedSubWith is watchedSub with the choices made by the caller: a
// token from the routes (withToken), and joinLeave, asking Centrifugo to
// push joins and leaves (centrifuge-js and -go let any client ask).
func watchedSubWith(t *testing.T, lc *liveClient, channel string, withToken, joinLeave bool) (*centrifuge.Subscription, *joins) {
	t.Helper()
	cfg := centrifuge.SubscriptionConfig{JoinLeave: joinLeave}
	if withToken {
		cfg.GetToken = func(centrifuge.SubscriptionTokenEvent) (string, error) {
			return lc.token("/instant/subscription_token", map[string]any{"channel": channel})
		}
	}
	sub, err := lc.c.NewSubscription(channel, cfg)
	if err != nil {
		t.Fatal(err)
	}
	j := &joins{}
	sub.OnJoin(func(e centrifuge.JoinEvent) {
		j.mu.Lock()
		j.joined = append(j.joined, e.User)
		j.infos = append(j.infos, e.ClientInfo)
		j.mu.Unlock()
	})
	sub.OnLeave(func(e centrifuge.LeaveEvent) { j.mu.Lock(); j.left = append(j.left, e.User); j.mu.Unlock() })
	if ok, code := awaitSubscribe(t, sub); !ok {
		t.Fatalf("could not subscribe to %s: code %d", channel, code)
	}
	return sub, j
}

// eventually waits up to ten seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLivePresence(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{Presence: true})
	ctx := context.Background()
	const room = "$site_users"

	// cy watches; ann joins with two clients, bob with one.
	_, watch := watchedSub(t, ls.connect(t, &cy), room)
	watchedSub(t, ls.connect(t, &ann), room)
	watchedSub(t, ls.connect(t, &ann), room)
	bobSub, _ := watchedSub(t, ls.connect(t, &bob), room)
	eventually(t, "cy was told of bob's join", func() bool { return watch.has(&watch.joined, bob.ID) })

	members, err := ls.inst.Presence(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id, name string
		clients  int
	}{{ann.ID, "Ann", 2}, {bob.ID, "Bob", 1}, {cy.ID, "Cy", 1}}
	if len(members) != len(want) {
		t.Fatalf("Presence: %+v", members)
	}
	for k, m := range members {
		var info map[string]any
		_ = json.Unmarshal(m.Info, &info)
		if m.UserID != want[k].id || m.Clients != want[k].clients || info["name"] != want[k].name {
			t.Errorf("member %d: %s %d %s, want %+v", k, m.UserID, m.Clients, m.Info, want[k])
		}
	}

	if err := bobSub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cy was told of bob's leave", func() bool { return watch.has(&watch.left, bob.ID) })

	// An anonymous subscriber of a public channel learns nothing: no
	// pushes when a user joins, and no presence on asking.
	anonSub, anonWatch := watchedSub(t, ls.connect(t, nil), "site_public")
	watchedSub(t, ls.connect(t, &ann), "site_public")
	if _, err := anonSub.Presence(ctx); err == nil {
		t.Error("an anonymous subscriber of site_public got its presence")
	}
	var ce *centrifuge.Error
	if _, err := anonSub.Presence(ctx); !errors.As(err, &ce) || ce.Code != 103 {
		t.Errorf("anonymous presence call: %v, want permission denied (103)", err)
	}
	time.Sleep(500 * time.Millisecond) // a join push would have come by now
	anonWatch.mu.Lock()
	if len(anonWatch.joined) != 0 {
		t.Errorf("an anonymous subscriber of site_public was told of joins: %v", anonWatch.joined)
	}
	anonWatch.mu.Unlock()
}

func TestLivePersonalChannels(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	seven, eight := &instant.User{ID: "7"}, &instant.User{ID: "8"}
	own := ls.inst.UserChannel("7")
	if own != "$site_user:7" {
		t.Fatalf("UserChannel(7) = %q", own)
	}
	lc7 := ls.connect(t, seven)
	if !lc7.subscribe(own, true, "") {
		t.Fatal("user 7 could not subscribe to their own channel")
	}
	lc8 := ls.connect(t, eight)
	if status, _ := lc8.b.postJSON("/instant/subscription_token", map[string]any{"channel": own}); status != 403 {
		t.Errorf("user 8 asked for user 7's channel: %d, want 403", status)
	}
	if lc8.subscribe(own, false, "") || lc8.refusal != 103 {
		t.Errorf("Centrifugo let user 8 into user 7's channel without a token (refusal %d)", lc8.refusal)
	}
	if _, body := lc7.b.get("/instant/channels"); !hasChannel(body, own, "personal") {
		t.Errorf("GET channels for user 7 does not list %s: %v", own, body["channels"])
	}
	if _, body := lc8.b.get("/instant/channels"); hasChannel(body, own, "personal") {
		t.Errorf("GET channels for user 8 lists user 7's channel")
	}
	err := ls.inst.Broadcast(context.Background(), instant.Event{Channel: "site_public", Users: []string{"7"}, Message: "for seven"})
	if err != nil {
		t.Fatal(err)
	}
	got := lc7.waitFor("for seven")
	if last := got[len(got)-1]; last["channel"] != own {
		t.Errorf("the payload names channel %v, want %s", last["channel"], own)
	}
}

// startPresence is startLive with presence on, cfg changed by mod first
// and rules added by rules (before the config is written, so that their
// namespaces are declared).
func startPresence(t *testing.T, mod func(*instant.Config), rules func(*instant.Instant)) *liveSetup {
	t.Helper()
	ls := &liveSetup{}
	ls.srv, ls.inst, ls.cfg = startCentrifugo(t, func(c *instant.Config) {
		c.PublishTimeout = livePublishTimeout
		if mod != nil {
			mod(c)
		}
	}, func(inst *instant.Instant) error {
		if rules != nil {
			rules(inst)
		}
		return nil
	}, instant.CentrifugoOptions{Presence: true})
	ls.app = newRouter(ls.inst)
	return ls
}

// quiet waits long enough for a push that should not come.
func quiet() { time.Sleep(500 * time.Millisecond) }

func (j *joins) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.joined) + len(j.left)
}

// presenceCode is the code of Centrifugo's refusal of a presence call (0
// when it answered).
func presenceCode(t *testing.T, sub *centrifuge.Subscription) (centrifuge.PresenceResult, uint32) {
	t.Helper()
	res, err := sub.Presence(context.Background())
	if err == nil {
		return res, 0
	}
	var ce *centrifuge.Error
	if !errors.As(err, &ce) {
		t.Fatalf("presence of %s: %v", sub.Channel, err)
	}
	return res, ce.Code
}

// TestLivePublicChannelsShowNoPresence: a public channel gets no presence
// and no joins or leaves, for a logged-in reader who asks for them too,
// while private channels keep both. news:all is a namespace of public
// channels only; site_public shares its (empty) namespace with
// $site_users, and Centrifugo gives both the same options: there, a
// reader who subscribes with the routes' token is left out of presence.
func TestLivePublicChannelsShowNoPresence(t *testing.T) {
	t.Parallel()
	ls := startPresence(t, func(c *instant.Config) { c.PublicChannels = []string{"site_public", "news:all"} }, nil)
	ctx := context.Background()
	annC, bobC := ls.connect(t, &ann), ls.connect(t, &bob)

	// news:all: ann asks for joins and leaves, bob arrives; nothing is
	// pushed, and neither ann nor the server API may list who is there.
	news, newsWatch := watchedSubWith(t, annC, "news:all", false, true)
	watchedSubWith(t, bobC, "news:all", false, true)
	// $site_users: the same two, with tokens: bob's arrival is pushed.
	users, usersWatch := watchedSubWith(t, annC, "$site_users", true, true)
	watchedSubWith(t, bobC, "$site_users", true, true)
	eventually(t, "ann was told of bob's join on $site_users", func() bool { return usersWatch.has(&usersWatch.joined, bob.ID) })
	quiet()
	if n := newsWatch.count(); n != 0 {
		t.Errorf("news:all pushed %d joins or leaves to ann: %v", n, newsWatch.joined)
	}
	if res, code := presenceCode(t, news); code == 0 {
		t.Errorf("ann listed the readers of news:all: %v", res.Clients)
	}
	if m, err := ls.inst.Presence(ctx, "news:all"); err == nil {
		t.Errorf("Instant.Presence listed the readers of news:all: %v", m)
	}

	// $site_users: ann's own query is refused, the presence route and the
	// server API answer.
	if res, code := presenceCode(t, users); code != 103 {
		t.Errorf("ann's presence call on $site_users: %v (refusal %d), want 103", res.Clients, code)
	}
	if _, got := presenceRoute(t, annC.b, "$site_users"); len(membersOf(got["$site_users"])) != 2 {
		t.Errorf("the presence route on $site_users: %v, want 2 clients", got)
	}
	members, err := ls.inst.Presence(ctx, "$site_users")
	if err != nil || len(members) != 2 || members[0].UserID != ann.ID || members[1].UserID != bob.ID {
		t.Errorf("Instant.Presence($site_users) = %+v, %v", members, err)
	}

	// site_public, read with a token (ann) and without (bob): public
	// channels show no presence, to the app either.
	watchedSubWith(t, annC, "site_public", true, false)
	watchedSubWith(t, bobC, "site_public", false, false)
	if members, err = ls.inst.Presence(ctx, "site_public"); !errors.Is(err, instant.ErrInvalidChannel) || members != nil {
		t.Errorf("Presence of site_public: %v, %v; want ErrInvalidChannel and nobody", members, err)
	}
}

// TestLivePresenceShowsTheRuleInfo: what the members of a channel see of
// a user is that channel's info: the rule's when it gives one, else
// User.Info, and never the connection's.
func TestLivePresenceShowsTheRuleInfo(t *testing.T) {
	t.Parallel()
	ls := startPresence(t, nil, func(inst *instant.Instant) {
		_ = inst.Authorize("$chat:*", func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
			return u != nil, map[string]any{"nick": "anon-" + u.ID}
		})
	})
	ctx := context.Background()
	x := instant.User{ID: "42", Info: map[string]any{"email": "x@y"}}
	y := instant.User{ID: "43", Info: map[string]any{"email": "z@w"}}
	xc, yc := ls.connect(t, &x), ls.connect(t, &y)

	_, yWatch := watchedSub(t, yc, "$chat:1")
	watchedSub(t, xc, "$chat:1")
	eventually(t, "y was told of x's join", func() bool { return yWatch.has(&yWatch.joined, x.ID) })
	yWatch.mu.Lock()
	pushed := append([]centrifuge.ClientInfo{}, yWatch.infos...)
	yWatch.mu.Unlock()
	_, got := presenceRoute(t, yc.b, "$chat:1")
	listed := membersOf(got["$chat:1"])
	var answer strings.Builder
	for _, ci := range pushed {
		fmt.Fprintf(&answer, "%s %s %s; ", ci.User, ci.ConnInfo, ci.ChanInfo)
	}
	answer.WriteString(strings.Join(listed, "; "))
	if strings.Contains(answer.String(), "email") || strings.Contains(answer.String(), "x@y") {
		t.Errorf("the members of $chat:1 see an email: %s", answer.String())
	}
	for _, ci := range pushed {
		if ci.User == x.ID && (string(ci.ChanInfo) != `{"nick":"anon-42"}` || len(ci.ConnInfo) != 0) {
			t.Errorf("x on $chat:1: chan_info %s, conn_info %s; want the rule's info and no connection info", ci.ChanInfo, ci.ConnInfo)
		}
	}
	if want := []string{`42 {"nick":"anon-42"}`, `43 {"nick":"anon-43"}`}; !slices.Equal(listed, want) {
		t.Errorf("the presence route on $chat:1: %v, want %v", listed, want)
	}
	members, err := ls.inst.Presence(ctx, "$chat:1")
	if err != nil || len(members) != 2 || string(members[0].Info) != `{"nick":"anon-42"}` || string(members[1].Info) != `{"nick":"anon-43"}` {
		t.Errorf("Instant.Presence($chat:1) = %+v, %v", members, err)
	}

	// $site_users has no rule of its own: members see User.Info.
	watchedSub(t, yc, "$site_users")
	watchedSub(t, xc, "$site_users")
	_, got = presenceRoute(t, yc.b, "$site_users")
	if listed, want := membersOf(got["$site_users"]), []string{`42 {"email":"x@y"}`, `43 {"email":"z@w"}`}; !slices.Equal(listed, want) {
		t.Errorf("the presence route on $site_users: %v, want %v (User.Info)", listed, want)
	}
	members, err = ls.inst.Presence(ctx, "$site_users")
	if err != nil || len(members) != 2 || string(members[0].Info) != `{"email":"x@y"}` {
		t.Errorf("Instant.Presence($site_users) = %+v, %v", members, err)
	}
}

// TestLiveProxiedPublicChannelsShowNoPresence: with ProxyURL, Centrifugo
// asks the subscribe proxy about public channels, and its answer keeps
// their readers out of presence, joins and leaves even where a public
// channel shares its namespace with private ones; the connect proxy, like
// a connection token, gives the connection no info.
func TestLiveProxiedPublicChannelsShowNoPresence(t *testing.T) {
	t.Parallel()
	p := &proxied{t: t}
	appSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.app.ServeHTTP(w, r) }))
	t.Cleanup(appSrv.Close)
	p.srv, p.inst, _ = startCentrifugo(t, nil, nil, instant.CentrifugoOptions{Presence: true, ProxyURL: appSrv.URL + "/instant"})
	p.app = newRouter(p.inst)
	ctx := context.Background()

	annB, bobB := newBrowser(t, p.app).as(&ann), newBrowser(t, p.app).as(&bob)
	annC := p.dial(annB.cookieHeader(), "")
	bobC := p.dial(bobB.cookieHeader(), "")
	if annC == nil || bobC == nil {
		t.Fatal("could not connect through the connect proxy")
	}
	j := &joins{}
	annSub, err := annC.NewSubscription("site_public", centrifuge.SubscriptionConfig{JoinLeave: true})
	if err != nil {
		t.Fatal(err)
	}
	annSub.OnJoin(func(e centrifuge.JoinEvent) { j.mu.Lock(); j.joined = append(j.joined, e.User); j.mu.Unlock() })
	if ok, code := awaitSubscribe(t, annSub); !ok {
		t.Fatalf("ann could not read site_public: %d", code)
	}
	if !p.subscribe(bobC, "site_public", "") {
		t.Fatal("bob could not read site_public")
	}
	quiet()
	if n := j.count(); n != 0 {
		t.Errorf("site_public pushed joins to ann: %v", j.joined)
	}
	if res, err := annSub.Presence(ctx); err == nil && len(res.Clients) != 0 {
		t.Errorf("ann listed the readers of site_public: %v", res.Clients)
	}
	if m, err := p.inst.Presence(ctx, "site_public"); !errors.Is(err, instant.ErrInvalidChannel) || len(m) != 0 {
		t.Errorf("Instant.Presence(site_public) = %v, %v; want nobody, ErrInvalidChannel", m, err)
	}

	// $site_users, with tokens: bob's join is pushed to ann with the
	// channel's info and none from the connection, and the presence route
	// lists both.
	subscribeWatched := func(c *centrifuge.Client, u *instant.User) *joins {
		t.Helper()
		tok, err := p.inst.SubscriptionToken(nil, u, "$site_users")
		if err != nil {
			t.Fatal(err)
		}
		sub, err := c.NewSubscription("$site_users", centrifuge.SubscriptionConfig{Token: tok.Token})
		if err != nil {
			t.Fatal(err)
		}
		w := &joins{}
		sub.OnJoin(func(e centrifuge.JoinEvent) {
			w.mu.Lock()
			w.joined, w.infos = append(w.joined, e.User), append(w.infos, e.ClientInfo)
			w.mu.Unlock()
		})
		if ok, code := awaitSubscribe(t, sub); !ok {
			t.Fatalf("%s could not read $site_users: %d", u.ID, code)
		}
		return w
	}
	annWatch := subscribeWatched(annC, &ann)
	subscribeWatched(bobC, &bob)
	eventually(t, "ann was told of bob's join on $site_users", func() bool { return annWatch.has(&annWatch.joined, bob.ID) })
	annWatch.mu.Lock()
	for _, ci := range annWatch.infos {
		if ci.User == bob.ID && (len(ci.ConnInfo) != 0 || string(ci.ChanInfo) != `{"name":"Bob"}`) {
			t.Errorf("bob's join on $site_users: conn_info %s, chan_info %s", ci.ConnInfo, ci.ChanInfo)
		}
	}
	annWatch.mu.Unlock()
	_, got := presenceRoute(t, bobB, "$site_users", "site_public")
	if listed, want := membersOf(got["$site_users"]), []string{`11 {"name":"Ann"}`, `12 {"name":"Bob"}`}; !slices.Equal(listed, want) {
		t.Errorf("the presence route on $site_users: %v, want %v", listed, want)
	}
	if got["site_public"]["status"] != float64(403) {
		t.Errorf("the presence route on site_public: %v, want 403", got["site_public"])
	}
}

// presenceRoute asks POST presence as b for channels: its status, and
// each channel's answer by name.
func presenceRoute(t *testing.T, b *browser, channels ...string) (int, map[string]map[string]any) {
	t.Helper()
	status, body := b.postJSON("/instant/presence", map[string]any{"channels": channels})
	out := map[string]map[string]any{}
	list, _ := body["channels"].([]any)
	for _, a := range list {
		m, _ := a.(map[string]any)
		name, _ := m["channel"].(string)
		out[name] = m
	}
	if status == http.StatusOK && len(out) != len(channels) {
		t.Errorf("presence of %v answered %v", channels, body)
	}
	return status, out
}

// membersOf lists an answer of the presence route as "user info" per
// client, sorted by user then info.
func membersOf(a map[string]any) []string {
	clients, _ := a["clients"].([]any)
	out := []string{}
	for _, c := range clients {
		m, _ := c.(map[string]any)
		info, _ := json.Marshal(m["info"])
		if m["info"] == nil {
			info = nil
		}
		if id, _ := m["client"].(string); id == "" {
			out = append(out, "no client id")
		}
		out = append(out, fmt.Sprintf("%v %s", m["user"], info))
	}
	slices.Sort(out)
	return out
}

// TestLivePublicReaderGetsNoPresence: site_public shares its options with
// $site_users (neither has a namespace), yet a logged-in reader who
// subscribes to it without a token and asks for joins and leaves is pushed
// none, and Centrifugo refuses its presence calls: no client may ask for
// presence by itself.
func TestLivePublicReaderGetsNoPresence(t *testing.T) {
	t.Parallel()
	ls := startPresence(t, nil, nil)
	annC, bobC := ls.connect(t, &ann), ls.connect(t, &bob)
	pub, watch := watchedSubWith(t, annC, "site_public", false, true)
	watchedSubWith(t, bobC, "site_public", false, true)
	// $site_users, in the same options: ann's token asks for pushes.
	_, usersWatch := watchedSubWith(t, annC, "$site_users", true, false)
	watchedSubWith(t, bobC, "$site_users", true, false)
	eventually(t, "ann was told of bob's join on $site_users", func() bool { return usersWatch.has(&usersWatch.joined, bob.ID) })
	quiet()
	if n := watch.count(); n != 0 {
		t.Errorf("site_public pushed %d joins or leaves to ann: %v", n, watch.joined)
	}
	if res, code := presenceCode(t, pub); code != 103 {
		t.Errorf("ann's presence call on site_public: %v (code %d), want permission denied (103)", res.Clients, code)
	}
	if res, err := pub.PresenceStats(context.Background()); err == nil {
		t.Errorf("ann's presence_stats call on site_public answered %+v", res)
	}
	if status, got := presenceRoute(t, annC.b, "site_public"); status != 200 || got["site_public"]["status"] != float64(403) || got["site_public"]["clients"] != nil {
		t.Errorf("the presence route on site_public: %d %v, want 403 for the channel", status, got)
	}
}

// TestLivePresenceRoute: subscribers of a private channel get its joins
// and leaves pushed (their tokens ask), may not query its presence from
// the client, and get it from the presence route, each member with the
// channel's info; the route answers only the private channels the user
// may read, and only to a logged-in user.
func TestLivePresenceRoute(t *testing.T) {
	t.Parallel()
	ls := startPresence(t, nil, func(inst *instant.Instant) {
		_ = inst.Authorize("$chat:*", func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
			if u == nil {
				return true, nil // anonymous visitors read it too
			}
			return true, map[string]any{"nick": "anon-" + u.ID}
		})
	})
	ctx := context.Background()
	annC, bobC, anonC := ls.connect(t, &ann), ls.connect(t, &bob), ls.connect(t, nil)

	users, usersWatch := watchedSubWith(t, annC, "$site_users", true, false)
	bobUsers, _ := watchedSubWith(t, bobC, "$site_users", true, false)
	watchedSubWith(t, annC, "$chat:1", true, false)
	watchedSubWith(t, bobC, "$chat:1", true, false)
	watchedSubWith(t, anonC, "$chat:1", true, false)
	eventually(t, "ann was told of bob's join on $site_users", func() bool { return usersWatch.has(&usersWatch.joined, bob.ID) })
	if _, code := presenceCode(t, users); code != 103 {
		t.Errorf("ann's own presence call on $site_users: code %d, want permission denied (103): the route answers it", code)
	}

	status, got := presenceRoute(t, annC.b, "$site_users", "$chat:1", "site_public", "$site_admin", "$site_user:"+bob.ID, "$site_user:"+ann.ID)
	if status != 200 {
		t.Fatalf("presence route: %d %v", status, got)
	}
	want := map[string][]string{
		"$site_users":          {`11 {"name":"Ann"}`, `12 {"name":"Bob"}`},
		"$chat:1":              {`11 {"nick":"anon-11"}`, `12 {"nick":"anon-12"}`}, // the anonymous reader is no member
		"$site_user:" + ann.ID: {},
	}
	for ch, w := range want {
		if m, list := membersOf(got[ch]), got[ch]["clients"]; !slices.Equal(m, w) || got[ch]["status"] != nil || list == nil {
			t.Errorf("%s: %v (%v), want %v", ch, m, got[ch], w)
		}
	}
	for _, ch := range []string{"site_public", "$site_admin", "$site_user:" + bob.ID} {
		if got[ch]["status"] != float64(403) || got[ch]["clients"] != nil {
			t.Errorf("%s: %v, want 403 and no clients", ch, got[ch])
		}
	}
	// An anonymous visitor, who reads $chat:1, is refused every channel.
	status, got = presenceRoute(t, anonC.b, "$chat:1", "site_public")
	if status != 200 || got["$chat:1"]["status"] != float64(403) || got["site_public"]["status"] != float64(403) {
		t.Errorf("anonymous: %d %v, want 403 for each channel", status, got)
	}

	// bob leaves $site_users: ann is pushed the leave, and the route and
	// Instant.Presence list ann alone.
	if err := bobUsers.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ann was told of bob's leave", func() bool { return usersWatch.has(&usersWatch.left, bob.ID) })
	if _, got := presenceRoute(t, annC.b, "$site_users"); !slices.Equal(membersOf(got["$site_users"]), []string{`11 {"name":"Ann"}`}) {
		t.Errorf("after bob left: %v", got["$site_users"])
	}
	members, err := ls.inst.Presence(ctx, "$site_users")
	if err != nil || len(members) != 1 || members[0].UserID != ann.ID || string(members[0].Info) != `{"name":"Ann"}` {
		t.Errorf("Instant.Presence($site_users) = %+v, %v", members, err)
	}
}

// TestLivePresenceRouteWhenPresenceIsOff: with presence off in the
// config, Centrifugo refuses the route's call: a 503 with a JSON error,
// logged once, never a 500.
func TestLivePresenceRouteWhenPresenceIsOff(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	ls := &liveSetup{}
	ls.srv, ls.inst, ls.cfg = startCentrifugo(t, func(c *instant.Config) { c.Logger = logger }, nil, instant.CentrifugoOptions{})
	ls.app = newRouter(ls.inst)
	b := newBrowser(t, ls.app).as(&ann)
	status, body := b.postJSON("/instant/presence", map[string]any{"channels": []string{"$site_users", "$site_user:" + ann.ID}})
	if msg, _ := body["error"].(string); status != http.StatusServiceUnavailable || !strings.HasPrefix(msg, "instant: ") || body["channels"] != nil {
		t.Errorf("presence off: %d %v, want 503 and an error", status, body)
	}
	if errs := logs.errors(); len(errs) != 1 {
		t.Errorf("logged %d errors, want 1: %v", len(errs), errs)
	}
}

// FuzzPresenceRoute sends arbitrary bodies to the presence route, as an
// anonymous visitor or as alice, against a stand-in for Centrifugo's API
// that lists one member on every channel: never a 5xx, always a JSON
// answer, and members only of private channels alice may read.
func FuzzPresenceRoute(f *testing.F) {
	for _, seed := range []string{
		`{"channels":["$site_users"]}`, `{"channels":["site_public","$site_admin","$orders:o1","$chat:x"]}`,
		`{"channels":[]}`, `{"channels":`, `["x"]`, `null`, ``, `{"channels":["$site_users","$site_users"]}`,
		`{"channels":["a b"]}`, "{\"channels\":[\"a\xffb\"]}", `{"channels":"$site_users"}`,
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dec := json.NewDecoder(r.Body)
		for dec.More() {
			var cmd map[string]any
			if dec.Decode(&cmd) != nil {
				break
			}
			fmt.Fprintln(w, `{"result":{"presence":{"c1":{"client":"c1","user":"9","chan_info":{"nick":"n"}}}}}`)
		}
	}))
	f.Cleanup(api.Close)
	cfg := testConfig()
	cfg.APIURL = api.URL + "/api"
	inst := newInstant(f, cfg)
	for pattern, fn := range map[string]instant.AuthorizeFunc{
		"$orders:{id}": func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
			return u != nil && p["id"] == "o"+u.ID, nil
		},
		"$chat:*": func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) { return true, nil },
	} {
		if err := inst.Authorize(pattern, fn); err != nil {
			f.Fatal(err)
		}
	}
	r := newRouter(inst)
	aliceCookie := loginCookie(f, alice)
	f.Fuzz(func(t *testing.T, body string, asAlice bool) {
		req := httptest.NewRequest("POST", "/instant/presence", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		var user *instant.User
		if asAlice {
			req.AddCookie(aliceCookie)
			user = &alice
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%q: status %d %s", body, w.Code, w.Body)
		}
		var out struct {
			Error    string
			Channels []struct {
				Channel string
				Status  int
				Clients []struct{ Client, User string }
			}
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%q: answer not JSON: %q", body, w.Body)
		}
		if w.Code != http.StatusOK {
			if out.Error == "" || out.Channels != nil {
				t.Fatalf("%q: refusal %d %q", body, w.Code, w.Body)
			}
			return
		}
		for _, a := range out.Channels {
			if a.Status == 0 && (user == nil || !privateChannel(a.Channel) || !inst.Allowed(nil, user, a.Channel) || len(a.Clients) != 1) {
				t.Fatalf("%q: %v answered the members of %q: %+v", body, user, a.Channel, a)
			}
			if a.Status != 0 && a.Clients != nil {
				t.Fatalf("%q: a refusal with members: %+v", body, a)
			}
		}
	})
}

// TestLivePresenceRouteIsBounded: the presence route's answer grew with
// the members without bound (a 224-byte request, 148 KB with 500
// members). It lists at most 100 subscriptions a channel, and at most
// 256 KiB of them in the whole answer; a channel cut short says so
// ("truncated": true) and how many there are ("total"), in the route's
// JSON shape otherwise unchanged. 105 real clients stand for the many
// members; 16 of them with 20 KiB of info each fill the byte bound.
func TestLivePresenceRouteIsBounded(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat("p", 20<<10)
	ls := startPresence(t, nil, func(inst *instant.Instant) {
		_ = inst.Authorize("$big:*", func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
			return u != nil, map[string]any{"id": u.ID, "pad": pad}
		})
	})
	const members, big = 105, 16
	var first *liveClient
	for k := range members {
		u := instant.User{ID: fmt.Sprintf("u%03d", k), Info: map[string]any{"name": fmt.Sprintf("User %d", k)}}
		lc := ls.connect(t, &u)
		if !lc.subscribe("$site_users", true, "") || k < big && !lc.subscribe("$big:1", true, "") {
			t.Fatalf("%s could not subscribe", u.ID)
		}
		if k == 0 {
			first = lc
			if !lc.subscribe(ls.inst.UserChannel(u.ID), true, "") {
				t.Fatal("u000 could not subscribe to its own channel")
			}
		}
	}
	status, body := first.b.post("/instant/presence", "application/json", []byte(`{"channels":["$site_users","$big:1","$site_user:u000"]}`))
	if status != http.StatusOK {
		t.Fatalf("presence route: %d %v", status, body)
	}
	size := len(mustJSON(body))
	list, _ := body["channels"].([]any)
	if len(list) != 3 {
		t.Fatalf("presence route answered %v", body)
	}
	answer := func(k int) (listed []string, total any, truncated any) {
		a, _ := list[k].(map[string]any)
		clients, _ := a["clients"].([]any)
		for _, c := range clients {
			m, _ := c.(map[string]any)
			u, _ := m["user"].(string)
			listed = append(listed, u)
		}
		return listed, a["total"], a["truncated"]
	}
	users, total, truncated := answer(0)
	var want []string
	for k := range 100 {
		want = append(want, fmt.Sprintf("u%03d", k))
	}
	if !slices.Equal(users, want) || total != float64(members) || truncated != true {
		t.Errorf("$site_users: %d listed (%v...), total %v, truncated %v; want the first 100 by user, total 105, truncated", len(users), users[:min(3, len(users))], total, truncated)
	}
	bigs, total, truncated := answer(1)
	if len(bigs) == 0 || len(bigs) >= big || total != float64(big) || truncated != true {
		t.Errorf("$big:1: %d listed, total %v, truncated %v; want fewer than %d (the byte bound), total %d, truncated", len(bigs), total, truncated, big, big)
	}
	if own, total, truncated := answer(2); !slices.Equal(own, []string{"u000"}) || total != float64(1) || truncated != nil {
		t.Errorf("a channel of one: %v, total %v, truncated %v; want u000, total 1 and no truncated", own, total, truncated)
	}
	if size > 256<<10+4<<10 {
		t.Errorf("the answer is %d bytes, more than the 256 KiB bound and some room for the channels", size)
	}
	t.Logf("answer: %d bytes; $big:1 lists %d of %d", size, len(bigs), big)
}
