package embedded_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
)

// reauthorizeEnds demotes sam in us and calls Reauthorize on st: sam's
// subscription sb ends within a second; bystander's, kept, still
// receives.
func reauthorizeEnds(t *testing.T, st *site, us *users, sb, bystander *sub) {
	t.Helper()
	sam, _ := us.get("3")
	sam.Staff = false
	us.set(sam)
	start := time.Now()
	if err := st.inst.Reauthorize(context.Background(), sam); err != nil {
		t.Fatalf("Reauthorize: %v", err)
	}
	eventually(t, time.Second-time.Since(start), "sam's $site_staff ended", sb.isUnsubscribed)
	t.Logf("sam's subscription ended %v after Reauthorize was called", time.Since(start))
	st.broadcast(t, eventTo("$site_staff", "still here"))
	bystander.waitMessage(t, "still here")
	if bystander.isUnsubscribed() {
		t.Fatal("the bystander was unsubscribed too")
	}
}

// TestReauthorize: with LoadUser, a demoted user's staff subscription
// ends within a second of Reauthorize, and the route no longer signs it;
// a bystander is untouched.
func TestReauthorize(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		us := newUsers()
		reauthorize(t, newSite(t, siteOptions{users: us}), us)
	})
}

func reauthorize(t *testing.T, st *site, us *users) {
	sb := st.browser(t, "3")
	sam := st.connect(t, sb)
	samSub, _ := sam.subscribe("$site_staff", sam.withToken("$site_staff"))
	root := st.connect(t, st.browser(t, "4"))
	rootSub, _ := root.subscribe("$site_staff", root.withToken("$site_staff"))
	if samSub == nil || rootSub == nil {
		t.Fatal("refused")
	}
	reauthorizeEnds(t, st, us, samSub, rootSub)
	if status, _, _ := sb.post("/instant/subscription_token", map[string]any{"channel": "$site_staff"}); status != http.StatusForbidden {
		t.Fatalf("the route after the demotion: %d, want 403", status)
	}
}

// TestDisconnect: Instant.Disconnect closes the user's connections with
// 4001 (a code clients reconnect after), and they come back; another
// user's stays.
func TestDisconnect(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		disconnect(t, newSite(t, siteOptions{}))
	})
}

func disconnect(t *testing.T, st *site) {
	b := st.browser(t, "1")
	tabs := []*client{st.connect(t, b), st.connect(t, b)}
	other := st.connect(t, st.browser(t, "2"))
	if err := st.inst.Disconnect(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	for _, tab := range tabs {
		select {
		case code := <-tab.disconnected:
			if code != 4001 {
				t.Errorf("closed with %d, want 4001", code)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a connection of the user was not closed")
		}
		tab.waitConnects(2)
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if len(other.disconnects) != 0 || other.connects != 1 {
		t.Errorf("the other user's connection: closed %v, connected %d times", other.disconnects, other.connects)
	}
}

// TestServerServesOneInstant: a Server binds one Instant; a second New
// with it is a config error.
func TestServerServesOneInstant(t *testing.T) {
	t.Parallel()
	st := newSite(t, embedded.Options{}, nil)
	if _, err := instant.New(instant.Config{TokenSecret: testSecret, Server: st.srv}); err == nil {
		t.Fatal("a second Instant on the same Server: no error")
	}
}
