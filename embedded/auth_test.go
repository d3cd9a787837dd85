package embedded_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
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

// TestTokensByRoleAndRule: the embedded server takes the tokens the routes
// sign and refuses the others with Centrifugo v6.9.1's codes: 103 for a
// private channel without a token or with a bad signature, 102 for an
// unknown namespace, and the connection closed with 3500 for a token of
// another channel or another user.
func TestTokensByRoleAndRule(t *testing.T) {
	st := newSite(t, embedded.Options{}, nil)
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

// TestAnonymousRefused: under DisallowAnonymous, an anonymous connection
// token (which the routes would not sign) closes the connection (3507).
func TestAnonymousRefused(t *testing.T) {
	srv, err := embedded.New(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	st := siteOn(t, srv, configDisallowAnonymous(), nil)
	cl := st.dialWithToken(t, st.browser(t, ""), forge(t, testSecret, jwt.MapClaims{"sub": "", "exp": time.Now().Add(time.Minute).Unix()}))
	select {
	case code := <-cl.disconnected:
		if code != 3507 {
			t.Fatalf("anonymous under DisallowAnonymous: closed with %d, want 3507", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the anonymous connection was not closed")
	}
}

// TestTokenRefresh: with one-second tokens, a client stays connected and
// subscribed by refreshing both tokens through the routes (OnRefresh and
// OnSubRefresh take the new ones), and a subscription given an expired
// token (109) asks the route for a new one and subscribes.
func TestTokenRefresh(t *testing.T) {
	srv, err := embedded.New(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	st := siteOn(t, srv, instant.Config{ConnectionTokenTTL: time.Second, SubscriptionTokenTTL: time.Second}, nil)
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
