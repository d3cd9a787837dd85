package instant_test

import (
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/golang-jwt/jwt/v5"
)

// parseToken checks the signature with the shared secret and returns the claims.
func parseToken(t testing.TB, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		return []byte(testSecret), nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return claims
}

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
	if info, _ := c["info"].(map[string]any); info["name"] != "Alice" {
		t.Errorf("info = %v", c["info"])
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
	if d := exp.Sub(before); d <= 0 || d > instant.DefaultSubscriptionTokenTTL+time.Second {
		t.Errorf("exp %v after issue, want within %v", d, instant.DefaultSubscriptionTokenTTL)
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
