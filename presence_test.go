package instant_test

// Presence and personal channels against a real Centrifugo v6.9.1 with the
// config CentrifugoConfig writes, and centrifuge-go clients.

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
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
	joined, left []string // user IDs, in order
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
	cfg := centrifuge.SubscriptionConfig{}
	if instant.IsPrivate(channel) {
		cfg.GetToken = func(centrifuge.SubscriptionTokenEvent) (string, error) {
			return lc.token("/instant/subscription_token", map[string]any{"channel": channel})
		}
	}
	sub, err := lc.c.NewSubscription(channel, cfg)
	if err != nil {
		t.Fatal(err)
	}
	j := &joins{}
	sub.OnJoin(func(e centrifuge.JoinEvent) { j.mu.Lock(); j.joined = append(j.joined, e.User); j.mu.Unlock() })
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
	stats, err := ls.inst.PresenceStats(ctx, room)
	if err != nil || stats != (instant.PresenceStats{Clients: 4, Users: 3}) {
		t.Errorf("PresenceStats: %+v %v, want 4 clients of 3 users", stats, err)
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

func hasChannel(body map[string]any, name, level string) bool {
	chans, _ := body["channels"].([]any)
	for _, c := range chans {
		if m, _ := c.(map[string]any); m["name"] == name && m["level"] == level {
			return true
		}
	}
	return false
}
