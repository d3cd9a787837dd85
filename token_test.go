package instant_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/golang-jwt/jwt/v5"
)

func TestConnectionTokenClaims(t *testing.T) {
	cfg := testConfig()
	cfg.ConnectionTokenTTL = 3 * time.Minute
	inst := newInstant(t, cfg)
	u := instant.User{ID: "42", Info: map[string]any{"name": "Alice"}}
	before := time.Now()
	tok, err := inst.ConnectionToken(&u)
	if err != nil {
		t.Fatal(err)
	}
	c := parseToken(t, tok.Token)
	if c["sub"] != "42" {
		t.Errorf("sub = %v", c["sub"])
	}
	if _, ok := c["channel"]; ok {
		t.Error("connection token has a channel claim")
	}
	if info, ok := c["info"]; ok {
		t.Errorf("the connection token carries info %v: Centrifugo would show it on every channel", info)
	}
	exp, _ := c.GetExpirationTime()
	if d := exp.Sub(before); d < 3*time.Minute-time.Second || d > 3*time.Minute+time.Second {
		t.Errorf("exp is %v after issue, want about 3m", d)
	}
	if !tok.ExpiresAt.Equal(exp.Time) {
		t.Errorf("ExpiresAt %v != exp %v", tok.ExpiresAt, exp.Time)
	}
}

func TestAnonymousConnectionTokenHasEmptySub(t *testing.T) {
	inst := newInstant(t, testConfig())
	tok, err := inst.ConnectionToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := parseToken(t, tok.Token)
	if sub, ok := c["sub"]; !ok || sub != "" {
		t.Errorf("sub = %v (present %v), want empty string", sub, ok)
	}
}

func TestSubscriptionTokenClaims(t *testing.T) {
	inst := newInstant(t, testConfig())
	before := time.Now()
	tok, err := inst.SubscriptionToken(nil, &alice, "$site_users")
	if err != nil {
		t.Fatal(err)
	}
	c := parseToken(t, tok.Token)
	if c["sub"] != alice.ID || c["channel"] != "$site_users" {
		t.Errorf("claims %v", c)
	}
	exp, _ := c.GetExpirationTime()
	if d := exp.Sub(before); d <= 0 || d > 5*time.Minute+time.Second {
		t.Errorf("exp %v after issue, want within %v", d, 5*time.Minute)
	}
}

func TestTokenSignedWithOtherSecretFails(t *testing.T) {
	cfg := testConfig()
	cfg.TokenSecret = "another-secret-0123456789abcdef0123"
	tok, err := newInstant(t, cfg).ConnectionToken(&alice)
	if err != nil {
		t.Fatal(err)
	}
	_, err = jwt.Parse(tok.Token, func(*jwt.Token) (any, error) { return []byte(testSecret), nil })
	if err == nil {
		t.Fatal("token verified with the wrong secret")
	}
}

// TestSubscriptionTokenInfo: the info a subscription token carries is what
// the other members of that channel see: a rule's info when it gives one,
// else User.Info; none, and no presence or joins, on a public channel.
func TestSubscriptionTokenInfo(t *testing.T) {
	inst := newInstant(t, testConfig())
	_ = inst.Authorize("$chat:*", func(*gin.Context, *instant.User, map[string]string) (bool, any) {
		return true, map[string]string{"nick": "anon-42"}
	})
	_ = inst.Authorize("$room:*", func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil })
	x := instant.User{ID: "42", Info: map[string]any{"email": "x@y"}}
	private := map[string]any{"force_push_join_leave": map[string]any{"value": true}}
	public := map[string]any{
		"presence":              map[string]any{"value": false},
		"join_leave":            map[string]any{"value": false},
		"force_push_join_leave": map[string]any{"value": false},
	}
	for _, tc := range []struct {
		name, channel string
		user          *instant.User
		info          string // JSON; "" for none
		override      map[string]any
	}{
		{"a rule's info", "$chat:1", &x, `{"nick":"anon-42"}`, private},
		{"a rule without info", "$room:1", &x, `{"email":"x@y"}`, private},
		{"a role channel", "$site_users", &x, `{"email":"x@y"}`, private},
		{"a user without info", "$site_users", &alice, "", private},
		{"a public channel", "site_public", &x, "", public},
		{"a public channel, anonymous", "site_public", nil, "", public},
	} {
		tok, err := inst.SubscriptionToken(nil, tc.user, tc.channel)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c := parseToken(t, tok.Token)
		info := ""
		if v, ok := c["info"]; ok {
			raw, _ := json.Marshal(v)
			info = string(raw)
		}
		if info != tc.info {
			t.Errorf("%s: info %s, want %q", tc.name, info, tc.info)
		}
		if got, _ := json.Marshal(c["override"]); string(got) != mustJSON(tc.override) {
			t.Errorf("%s: override %s, want %s", tc.name, got, mustJSON(tc.override))
		}
	}
}

// TestTokensAreSignedByTheInstantsClock: the tokens' iat and exp, the
// routes' expires_at and the refresh proxy's expire_at read the Instant's
// clock, so that a test of expiry moves a clock instead of waiting.
func TestTokensAreSignedByTheInstantsClock(t *testing.T) {
	inst := newInstant(t, testConfig())
	at := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	instant.SetClock(inst, func() time.Time { return at }, time.After)
	conn, sub := at.Add(10*time.Minute).Unix(), at.Add(5*time.Minute).Unix()
	claims := func(tok string) (iat, exp int64) {
		var c jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil || c.IssuedAt == nil || c.ExpiresAt == nil {
			t.Fatalf("token %q: %v", tok, err)
		}
		return c.IssuedAt.Unix(), c.ExpiresAt.Unix()
	}
	tok, err := inst.ConnectionToken(&alice)
	if iat, exp := claims(tok.Token); err != nil || iat != at.Unix() || exp != conn || tok.ExpiresAt.Unix() != conn {
		t.Errorf("ConnectionToken: iat %d, exp %d, ExpiresAt %v (%v); want %d and %d", iat, exp, tok.ExpiresAt, err, at.Unix(), conn)
	}
	b := newBrowser(t, newRouter(inst)).as(&alice)
	_, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "$site_users"})
	if token, _ := body["token"].(string); body["expires_at"] != float64(sub) {
		t.Errorf("subscription_token: %v, want expires_at %d", body, sub)
	} else if iat, exp := claims(token); iat != at.Unix() || exp != sub {
		t.Errorf("subscription_token: iat %d, exp %d", iat, exp)
	}
	_, body = b.postJSON("/instant/auth", map[string]any{"connection": true, "channels": []string{"$site_users"}})
	if c, _ := body["connection"].(map[string]any); c == nil || c["expires_at"] != float64(conn) {
		t.Errorf("auth: %v, want the connection's expires_at %d", body, conn)
	}
	if r, _ := askProxy(t, b, inst, "refresh", "1", "")["result"].(map[string]any); r == nil || r["expire_at"] != float64(conn) {
		t.Errorf("refresh proxy: %v, want expire_at %d", r, conn)
	}
}
