package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/internal/seam"
)

// TestPresenceJoinLeave: on a private channel members see each other
// join and leave, each with the info of their token for the channel (the
// rule's), and the presence route and Instant.Presence list them, on both
// servers (Centrifugo with CentrifugoOptions.Presence).
func TestPresenceJoinLeave(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		presenceJoinLeave(t, newSite(t, siteOptions{}))
	})
}

func presenceJoinLeave(t *testing.T, st *site) {
	ab := st.browser(t, "1")
	alice := st.connect(t, ab)
	as, _ := alice.subscribe("$room:1", alice.withToken("$room:1"))
	gina := st.connect(t, st.browser(t, "2"))
	gs, _ := gina.subscribe("$room:1", gina.withToken("$room:1"))
	if as == nil || gs == nil {
		t.Fatal("refused")
	}
	var join centrifuge.ClientInfo
	eventually(t, 5*time.Second, "alice sees gina join", func() bool {
		as.mu.Lock()
		defer as.mu.Unlock()
		for _, j := range as.joins {
			if j.User == "2" {
				join = j
				return true
			}
		}
		return false
	})
	if string(join.ChanInfo) != `{"nick":"gina"}` {
		t.Errorf("gina's join: info %s, want her rule info", join.ChanInfo)
	}

	members, err := st.inst.Presence(context.Background(), "$room:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || members[0].UserID != "1" || members[1].UserID != "2" ||
		string(members[0].Info) != `{"nick":"alice"}` || members[1].Clients != 1 {
		t.Errorf("Presence: %+v", members)
	}
	status, out, err := ab.post("/instant/presence", map[string]any{"channels": []string{"$room:1"}})
	if err != nil || status != http.StatusOK {
		t.Fatalf("presence route: %d %v", status, err)
	}
	raw, _ := json.Marshal(out)
	var answer struct {
		Channels []struct {
			Clients []struct {
				User string          `json:"user"`
				Info json.RawMessage `json:"info"`
			} `json:"clients"`
		} `json:"channels"`
	}
	_ = json.Unmarshal(raw, &answer)
	if len(answer.Channels) != 1 || len(answer.Channels[0].Clients) != 2 || string(answer.Channels[0].Clients[1].Info) != `{"nick":"gina"}` {
		t.Errorf("presence route: %s", raw)
	}

	if err := gs.s.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "alice sees gina leave", func() bool {
		as.mu.Lock()
		defer as.mu.Unlock()
		for _, l := range as.leaves {
			if l.User == "2" {
				return true
			}
		}
		return false
	})
	gina.mu.Lock()
	defer gina.mu.Unlock()
	if len(gina.disconnects) != 0 {
		t.Errorf("gina's connection closed: %v", gina.disconnects)
	}
}

// TestPresenceOff: with presence off (the embedded server's
// Options.NoPresence; Centrifugo's config without
// CentrifugoOptions.Presence), Instant.Presence is a PublishError of code
// 108 (not available), the presence route answers 503, and the
// subscribers of a private channel see no joins; a channel the Instant
// does not declare is an error, presence on or off.
func TestPresenceOff(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		st := newSite(t, siteOptions{noPresence: true})
		if _, err := st.inst.Presence(context.Background(), "$nowhere:1"); err == nil {
			t.Errorf("presence of an unknown channel: no error")
		}
		ab := st.browser(t, "1")
		alice := st.connect(t, ab)
		as, _ := alice.subscribe("$room:1", alice.withToken("$room:1"))
		gina := st.connect(t, st.browser(t, "2"))
		gs, _ := gina.subscribe("$room:1", gina.withToken("$room:1"))
		if as == nil || gs == nil {
			t.Fatal("refused")
		}
		var pe *instant.PublishError
		if _, err := st.inst.Presence(context.Background(), "$room:1"); !errors.As(err, &pe) || pe.Code != 108 {
			t.Errorf("Presence with presence off: %v, want a PublishError of code 108 (not available)", err)
		}
		if status, out, err := ab.post("/instant/presence", map[string]any{"channels": []string{"$room:1"}}); err != nil || status != http.StatusServiceUnavailable {
			t.Errorf("presence route with presence off: %d %v %v, want 503", status, out, err)
		}
		// A publication after gina's subscription reached alice: a join
		// would have been sent before it.
		st.broadcast(t, eventTo("$room:1", "mark"))
		as.waitMessage(t, "mark")
		as.mu.Lock()
		defer as.mu.Unlock()
		if len(as.joins) != 0 {
			t.Errorf("alice saw joins with presence off: %+v", as.joins)
		}
	})
}

// TestPublicChannelsShowNoPresence: the readers of a public channel see
// no joins of each other, even when their client asks for them (a
// public subscription has no token that agreed to be listed), while
// presence is on for private channels.
func TestPublicChannelsShowNoPresence(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		st := newSite(t, siteOptions{})
		var subs []*sub
		for _, id := range []string{"1", "2", ""} {
			cl := st.connect(t, st.browser(t, id))
			sb, code := cl.subscribe("site_public", centrifuge.SubscriptionConfig{JoinLeave: true})
			if sb == nil {
				t.Fatalf("user %q refused site_public: %d", id, code)
			}
			subs = append(subs, sb)
		}
		st.broadcast(t, eventTo("site_public", "mark"))
		for _, sb := range subs {
			sb.waitMessage(t, "mark")
			sb.mu.Lock()
			joins := len(sb.joins)
			sb.mu.Unlock()
			if joins != 0 {
				t.Errorf("a reader of site_public saw %d joins", joins)
			}
		}
	})
}

// TestPresenceNotKept: the embedded server keeps no presence on a public
// channel (seam.ErrNotAvailable, as Centrifugo's 108).
func TestPresenceNotKept(t *testing.T) {
	t.Parallel()
	st := newSite(t, embedded.Options{}, nil)
	if _, err := st.srv.Presence(context.Background(), []string{"site_public"}); !errors.Is(err, seam.ErrNotAvailable) {
		t.Errorf("presence of a public channel: %v, want not available", err)
	}
}
