package embedded_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-instant/instant"
	"github.com/golang-jwt/jwt/v5"
)

// forge signs claims with secret, as the routes never would.
func forge(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokensByRoleAndRule: both servers take the tokens the routes sign
// and refuse the others with the same codes (Centrifugo v6.9.1's): 103
// for a private channel without a token or with a bad signature, 102 for
// an unknown namespace, and the connection closed with 3500 for a token
// of another channel or another user.
func TestTokensByRoleAndRule(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		tokensByRoleAndRule(t, newSite(t, siteOptions{}))
	})
}

func tokensByRoleAndRule(t *testing.T, st *site) {
	exp := time.Now().Add(time.Minute).Unix()

	t.Run("staff channel for staff", func(t *testing.T) {
		cl := st.connect(t, st.browser(t, "3"))
		if sb, code := cl.subscribe("$site_staff", cl.withToken("$site_staff")); sb == nil {
			t.Fatalf("staff refused $site_staff: %d", code)
		}
	})
	t.Run("staff channel refused to a user by the route", func(t *testing.T) {
		status, _, err := st.browser(t, "1").post("/instant/subscription_token", map[string]any{"channel": "$site_staff"})
		if err != nil || status != http.StatusForbidden {
			t.Fatalf("token route for alice on $site_staff: %d %v, want 403", status, err)
		}
	})
	t.Run("rule channel", func(t *testing.T) {
		cl := st.connect(t, st.browser(t, "1"))
		if sb, code := cl.subscribe("$room:7", cl.withToken("$room:7")); sb == nil {
			t.Fatalf("$room:7 refused: %d", code)
		}
	})
	t.Run("no token on a private channel", func(t *testing.T) {
		cl := st.connect(t, st.browser(t, "1"))
		if sb, code := cl.subscribe("$site_users", centrifuge.SubscriptionConfig{}); sb != nil || code != 103 {
			t.Fatalf("no token: code %d, want 103", code)
		}
	})
	t.Run("unknown namespace", func(t *testing.T) {
		cl := st.connect(t, st.browser(t, "1"))
		if sb, code := cl.subscribe("$nowhere:1", centrifuge.SubscriptionConfig{Token: forge(t, testSecret, jwt.MapClaims{"sub": "1", "channel": "$nowhere:1", "exp": exp})}); sb != nil || code != 102 {
			t.Fatalf("unknown namespace: code %d, want 102", code)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		cl := st.connect(t, st.browser(t, "1"))
		tok := forge(t, "another-secret-0123456789abcdef0123", jwt.MapClaims{"sub": "1", "channel": "$site_users", "exp": exp})
		if sb, code := cl.subscribe("$site_users", centrifuge.SubscriptionConfig{Token: tok}); sb != nil || code != 103 {
			t.Fatalf("bad signature: code %d, want 103", code)
		}
	})
	t.Run("token for another channel", func(t *testing.T) {
		b := st.browser(t, "1")
		cl := st.connect(t, b)
		tok, err := b.token("/instant/subscription_token", map[string]any{"channel": "$site_users"})
		if err != nil {
			t.Fatal(err)
		}
		if sb, code := cl.subscribe("$room:1", centrifuge.SubscriptionConfig{Token: tok}); sb != nil || code != 3500 {
			t.Fatalf("a token for another channel: code %d, want the connection closed with 3500", code)
		}
	})
	t.Run("token for another user", func(t *testing.T) {
		cl := st.connect(t, st.browser(t, "1"))
		tok := forge(t, testSecret, jwt.MapClaims{"sub": "2", "channel": "$site_users", "exp": exp})
		if sb, code := cl.subscribe("$site_users", centrifuge.SubscriptionConfig{Token: tok}); sb != nil || code != 3500 {
			t.Fatalf("a token for another user: code %d, want the connection closed with 3500", code)
		}
	})
	t.Run("anonymous reads the public channel", func(t *testing.T) {
		b := st.browser(t, "")
		cl := st.connect(t, b)
		sb, code := cl.subscribe("site_public", centrifuge.SubscriptionConfig{})
		if sb == nil {
			t.Fatalf("anonymous refused site_public: %d", code)
		}
		st.broadcast(t, eventTo("site_public", "hello everyone"))
		sb.waitMessage(t, "hello everyone")
		if status, _, _ := b.post("/instant/subscription_token", map[string]any{"channel": "$site_users"}); status != http.StatusForbidden {
			t.Fatalf("token route for anonymous on $site_users: %d, want 403", status)
		}
		if sb, code := cl.subscribe("$site_users", centrifuge.SubscriptionConfig{}); sb != nil || code != 103 {
			t.Fatalf("anonymous on $site_users without a token: code %d, want 103", code)
		}
	})
	t.Run("expired connection token asked again", func(t *testing.T) {
		b := st.browser(t, "1")
		cl := st.dial(t, b)
		cl.waitConnects(1)
		cl.mu.Lock()
		asked := cl.tokenAsks
		cl.mu.Unlock()
		// A fresh client given an expired token first: 109, then the
		// route's token.
		cl2 := st.dialWithToken(t, b, forge(t, testSecret, jwt.MapClaims{"sub": "1", "exp": time.Now().Add(-time.Minute).Unix()}))
		cl2.waitConnects(1)
		cl2.mu.Lock()
		defer cl2.mu.Unlock()
		if asked != 1 || cl2.tokenAsks != 1 {
			t.Fatalf("token asks: %d and %d, want 1 each (the expired token replaced once)", asked, cl2.tokenAsks)
		}
	})
}

// TestAnonymousRefused: under DisallowAnonymous, the routes sign no
// anonymous token, and a client given one anyway is closed with 3507
// (permission denied) by both servers (Centrifugo through the
// client.disallow_anonymous_connection_tokens that CentrifugoConfig
// writes).
func TestAnonymousRefused(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		st := newSite(t, siteOptions{config: configDisallowAnonymous()})
		b := st.browser(t, "")
		if status, _, _ := b.post("/instant/connection_token", map[string]any{}); status != http.StatusForbidden && status != http.StatusUnauthorized {
			t.Fatalf("connection token route for anonymous: %d, want a refusal", status)
		}
		cl := st.dialWithToken(t, b, forge(t, testSecret, jwt.MapClaims{"sub": "", "exp": time.Now().Add(time.Minute).Unix()}))
		const want = 3507
		select {
		case code := <-cl.disconnected:
			if code != want {
				t.Fatalf("anonymous under DisallowAnonymous: closed with %d, want %d", code, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the anonymous connection was not closed")
		}
	})
}

// TestTokenRefresh: with one-second tokens, a client stays connected and
// subscribed by refreshing both tokens through the routes (OnRefresh and
// OnSubRefresh take the new ones), and a subscription given an expired
// token (109) asks the route for a new one and subscribes.
func TestTokenRefresh(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		tokenRefresh(t, newSite(t, siteOptions{config: instant.Config{ConnectionTokenTTL: time.Second, SubscriptionTokenTTL: time.Second}}))
	})
}

func tokenRefresh(t *testing.T, st *site) {
	b := st.browser(t, "1")
	cl := st.connect(t, b)
	var mu sync.Mutex
	asks := 0
	cfg := centrifuge.SubscriptionConfig{
		Token: forge(t, testSecret, jwt.MapClaims{"sub": "1", "channel": "$site_users", "exp": time.Now().Add(-time.Minute).Unix()}),
		GetToken: func(centrifuge.SubscriptionTokenEvent) (string, error) {
			mu.Lock()
			asks++
			mu.Unlock()
			if cl.closing.Load() {
				return "", errors.New("the test is over")
			}
			return b.token("/instant/subscription_token", map[string]any{"channel": "$site_users"})
		},
	}
	sb, code := cl.subscribe("$site_users", cfg)
	if sb == nil {
		t.Fatalf("refused: %d", code)
	}
	time.Sleep(3 * time.Second)
	st.broadcast(t, eventTo("$site_users", "after the tokens expired"))
	sb.waitMessage(t, "after the tokens expired")
	mu.Lock()
	defer mu.Unlock()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if asks < 3 || cl.tokenAsks < 3 || cl.connects != 1 || sb.isUnsubscribed() {
		t.Fatalf("subscription token asks %d, connection token asks %d, connects %d, unsubscribed %v: want refreshes (3 or more each) on one connection and subscription",
			asks, cl.tokenAsks, cl.connects, sb.isUnsubscribed())
	}
}

// TestPersonalChannels: a user reads their own personal channel
// (Instant.UserChannel), with the token the route signs, and receives the
// events sent to them (Event.Users) and no one else's; the route signs no
// token for another user's channel, and neither no token nor the user's
// own token lets them in there.
func TestPersonalChannels(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		st := newSite(t, siteOptions{})
		mine, theirs := st.inst.UserChannel("1"), st.inst.UserChannel("2")
		if mine == "" || theirs == "" || mine == theirs {
			t.Fatalf("UserChannel: %q and %q", mine, theirs)
		}
		ab := st.browser(t, "1")
		alice := st.connect(t, ab)
		own, code := alice.subscribe(mine, alice.withToken(mine))
		if own == nil {
			t.Fatalf("alice refused her own channel %s: %d", mine, code)
		}
		gina := st.connect(t, st.browser(t, "2"))
		ginas, code := gina.subscribe(theirs, gina.withToken(theirs))
		if ginas == nil {
			t.Fatalf("gina refused her own channel %s: %d", theirs, code)
		}

		if status, _, err := ab.post("/instant/subscription_token", map[string]any{"channel": theirs}); err != nil || status != http.StatusForbidden {
			t.Fatalf("token route for alice on gina's channel: %d %v, want 403", status, err)
		}
		if sb, code := alice.subscribe(theirs, centrifuge.SubscriptionConfig{}); sb != nil || code != 103 {
			t.Fatalf("alice on gina's channel without a token: code %d, want 103", code)
		}

		if err := st.inst.Broadcast(context.Background(), instant.Event{Users: []string{"2"}, Message: "for gina"}); err != nil {
			t.Fatal(err)
		}
		if err := st.inst.Broadcast(context.Background(), instant.Event{Users: []string{"1"}, Message: "for alice"}); err != nil {
			t.Fatal(err)
		}
		own.waitMessage(t, "for alice")
		ginas.waitMessage(t, "for gina")
		if got := own.messages(); !slices.Equal(got, []string{"for alice"}) {
			t.Errorf("alice received %q, want her own event only", got)
		}
		if got := ginas.messages(); !slices.Equal(got, []string{"for gina"}) {
			t.Errorf("gina received %q, want her own event only", got)
		}

		// Last, as it closes alice's connection: her token for her own
		// channel, offered for gina's.
		tok, err := ab.token("/instant/subscription_token", map[string]any{"channel": mine})
		if err != nil {
			t.Fatal(err)
		}
		if sb, code := alice.subscribe(theirs, centrifuge.SubscriptionConfig{Token: tok}); sb != nil || code != 3500 {
			t.Fatalf("alice on gina's channel with her own channel's token: code %d, want the connection closed with 3500", code)
		}
	})
}
