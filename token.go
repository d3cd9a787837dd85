package instant

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are the JWT claims of Centrifugo's connection tokens (no Channel)
// and subscription tokens, in this order. Sub is always written.
type claims struct {
	Sub       string          `json:"sub"`
	Channel   string          `json:"channel,omitempty"`
	Info      json.RawMessage `json:"info,omitempty"`
	IssuedAt  int64           `json:"iat"`
	ExpiresAt int64           `json:"exp"`
	Override  *override       `json:"override,omitempty"`
}

func (c claims) GetExpirationTime() (*jwt.NumericDate, error) { return numericDate(c.ExpiresAt), nil }
func (c claims) GetIssuedAt() (*jwt.NumericDate, error)       { return numericDate(c.IssuedAt), nil }
func (c claims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c claims) GetIssuer() (string, error)                   { return "", nil }
func (c claims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c claims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }
func numericDate(unix int64) *jwt.NumericDate                 { return jwt.NewNumericDate(time.Unix(unix, 0)) }

// override is Centrifugo's per-subscription change of the namespace's
// options, in a subscription token or a subscribe proxy's answer.
type override struct {
	Presence           *boolValue `json:"presence,omitempty"`
	JoinLeave          *boolValue `json:"join_leave,omitempty"`
	ForcePushJoinLeave *boolValue `json:"force_push_join_leave,omitempty"`
}

type boolValue struct {
	Value bool `json:"value"`
}

var (
	// Private subscribers get joins and leaves when the namespace emits them;
	// public ones stay out of presence, joins and leaves, whatever it says.
	privateOverride = &override{ForcePushJoinLeave: &boolValue{Value: true}}
	publicOverride  = &override{Presence: &boolValue{}, JoinLeave: &boolValue{}, ForcePushJoinLeave: &boolValue{}}
)

// overrideFor is a subscription token's override for channel: sign's, and
// the subscribe proxy's answer.
func overrideFor(channel string) *override {
	if isPrivate(channel) {
		return privateOverride
	}
	return publicOverride
}

// userInfo is u's Info as a private channel's token carries it: nil for
// none.
func userInfo(u *User) (json.RawMessage, error) {
	if u == nil || len(u.Info) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(u.Info)
	if err != nil {
		return nil, fmt.Errorf("instant: the token's info does not encode as JSON: %w", err)
	}
	if err := checkJSON(raw); err != nil {
		return nil, fmt.Errorf("instant: the token's info %w", err)
	}
	return raw, nil
}

// Token is a signed Centrifugo token and the moment it expires.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"-"`
}

// sign signs, without deciding, an HS256 connection token for u (nil for
// anonymous) when channel is "", else a subscription token. A connection
// token and a public channel's carry no info; a private channel's carries
// the rule's info (decide's json.RawMessage) when it gave one, else User.Info.
func (i *Instant) sign(u *User, channel string, info any, now time.Time) (Token, error) {
	cl := claims{Channel: channel, IssuedAt: now.Unix()}
	if u != nil {
		cl.Sub = u.ID
	}
	ttl := i.cfg.SubscriptionTokenTTL
	if channel == "" {
		ttl = i.cfg.ConnectionTokenTTL
	} else {
		cl.Override = overrideFor(channel)
	}
	if cl.Override == privateOverride {
		cl.Info, _ = info.(json.RawMessage)
		if info == nil {
			raw, err := userInfo(u)
			if err != nil {
				return Token{}, err
			}
			cl.Info = raw
		}
	}
	exp := now.Add(ttl).Truncate(time.Second)
	cl.ExpiresAt = exp.Unix()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, cl).SignedString(i.tokenKey)
	if err != nil {
		return Token{}, err
	}
	return Token{Token: tok, ExpiresAt: exp}, nil
}
