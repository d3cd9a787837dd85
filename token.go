package instant

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
)

// claims are the JWT claims of Centrifugo's connection tokens (no Channel)
// and subscription tokens. Sub is always written, empty for anonymous.
type claims struct {
	Sub       string    `json:"sub"`
	Channel   string    `json:"channel,omitempty"`
	Info      any       `json:"info,omitempty"`
	IssuedAt  int64     `json:"iat"`
	ExpiresAt int64     `json:"exp"`
	Override  *override `json:"override,omitempty"`
}

// override is Centrifugo's per-subscription change of the namespace's
// options, in a subscription token.
type override struct {
	ForcePushJoinLeave *boolValue `json:"force_push_join_leave,omitempty"`
}

type boolValue struct {
	Value bool `json:"value"`
}

// privateOverride goes into the subscription token of every private
// channel: its subscribers receive joins and leaves when the namespace
// emits them (CentrifugoOptions.Presence), while public channels, which
// anyone reads without a token, never push them.
var privateOverride = &override{ForcePushJoinLeave: &boolValue{Value: true}}

// The jwt.Claims methods, so that tokens parse back with jwt/v5.
func (c claims) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.ExpiresAt, 0)), nil
}
func (c claims) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.IssuedAt, 0)), nil
}
func (c claims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }
func (c claims) GetIssuer() (string, error)              { return "", nil }
func (c claims) GetSubject() (string, error)             { return c.Sub, nil }
func (c claims) GetAudience() (jwt.ClaimStrings, error)  { return nil, nil }

// Token is a signed Centrifugo token and the moment it expires.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"-"`
}

// hs256Header is the first segment of every token: base64url of
// {"alg":"HS256","typ":"JWT"}, encoded once.
var hs256Header = func() string {
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	return base64.RawURLEncoding.EncodeToString(h)
}()

// sign makes an HS256 token for sub (and channel, for a subscription token).
// The header is constant and the claims struct is flat, so it assembles the
// token itself and asks jwt/v5 only for the HS256 signature: the same bytes
// jwt.NewWithClaims(...).SignedString would give, for less work on the
// token routes' hot path (see BenchmarkSubscriptionToken).
func (i *Instant) sign(sub, channel string, info any, ttl time.Duration, now time.Time) (Token, error) {
	exp := now.Add(ttl).Truncate(time.Second)
	cl := claims{Sub: sub, Channel: channel, Info: info, IssuedAt: now.Unix(), ExpiresAt: exp.Unix()}
	if IsPrivate(channel) {
		cl.Override = privateOverride
	}
	payload, err := json.Marshal(cl)
	if err != nil {
		return Token{}, err
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(hs256Header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(32))
	buf = append(buf, hs256Header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := jwt.SigningMethodHS256.Sign(string(buf), i.secret)
	if err != nil {
		return Token{}, err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return Token{Token: string(buf), ExpiresAt: exp}, nil
}

// ConnectionToken signs a Centrifugo connection token for user (nil for an
// anonymous connection, with an empty "sub"), valid for ConnectionTokenTTL:
// what the connection_token route answers. It refuses an anonymous user
// when Config.DisallowAnonymous is set (ErrLoginRequired) and a user that
// Login would refuse (ErrInvalidUser).
func (i *Instant) ConnectionToken(user *User) (Token, error) {
	if i == nil {
		return Token{}, ErrNotInstalled
	}
	if user != nil {
		if err := user.validate(); err != nil {
			return Token{}, err
		}
	}
	if err := i.mayConnect(user); err != nil {
		return Token{}, err
	}
	return i.signConnection(user)
}

// SubscriptionToken signs a token for user (nil for anonymous) to read
// channel, valid for SubscriptionTokenTTL, after the same decision as the
// subscription_token route: an error wrapping ErrInvalidChannel,
// ErrLoginRequired, ErrNotAllowed or ErrRuleFailed when it refuses. c is
// handed to custom rules; it may be nil when no rule needs it. Use it to
// put a token into a page you render.
func (i *Instant) SubscriptionToken(c *gin.Context, user *User, channel string) (Token, error) {
	if i == nil {
		return Token{}, ErrNotInstalled
	}
	if user != nil {
		if err := user.validate(); err != nil {
			return Token{}, err
		}
	}
	info, err := i.decide(c, user, channel)
	if err != nil {
		return Token{}, err
	}
	return i.signSubscription(user, channel, info)
}

// signConnection signs without deciding: callers have decided.
func (i *Instant) signConnection(user *User) (Token, error) {
	sub, info := userClaims(user)
	return i.sign(sub, "", info, i.cfg.ConnectionTokenTTL, time.Now())
}

// signSubscription signs without deciding: callers have decided. info is
// a rule's presence info; without one, the user's Info is used.
func (i *Instant) signSubscription(user *User, channel string, info any) (Token, error) {
	sub, userInfo := userClaims(user)
	if info == nil {
		info = userInfo
	}
	return i.sign(sub, channel, info, i.cfg.SubscriptionTokenTTL, time.Now())
}

func userClaims(u *User) (sub string, info any) {
	if u == nil {
		return "", nil
	}
	if len(u.Info) > 0 {
		info = u.Info
	}
	return u.ID, info
}
