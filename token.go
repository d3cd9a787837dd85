package instant

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

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
	Presence           *boolValue `json:"presence,omitempty"`
	JoinLeave          *boolValue `json:"join_leave,omitempty"`
	ForcePushJoinLeave *boolValue `json:"force_push_join_leave,omitempty"`
}

type boolValue struct {
	Value bool `json:"value"`
}

// privateOverride goes into the subscription token of every private
// channel: its subscribers receive joins and leaves when the namespace
// emits them (CentrifugoOptions.Presence).
var privateOverride = &override{ForcePushJoinLeave: &boolValue{Value: true}}

// publicOverride goes into a subscription token for a public channel
// (which needs none, but the routes sign one when asked): the subscriber
// is left out of presence and sends and receives no joins or leaves,
// whatever the namespace says. CentrifugoConfig's subscribe proxy answer
// carries the same for public channels.
var publicOverride = &override{
	Presence:           &boolValue{Value: false},
	JoinLeave:          &boolValue{Value: false},
	ForcePushJoinLeave: &boolValue{Value: false},
}

// The overrides as appendClaims writes them.
const (
	privateOverrideJSON = `,"override":{"force_push_join_leave":{"value":true}}`
	publicOverrideJSON  = `,"override":{"presence":{"value":false},"join_leave":{"value":false},"force_push_join_leave":{"value":false}}`
)

// overrideFor is the override of a token for channel: none for a
// connection token (no channel).
func overrideFor(channel string) *override {
	switch {
	case channel == "":
		return nil
	case isPrivate(channel):
		return privateOverride
	default:
		return publicOverride
	}
}

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
// token itself, and signs with an HMAC-SHA256 keyed once and reused
// (Instant.macs) rather than keyed anew for each token: the same bytes
// jwt.NewWithClaims(...).SignedString would give (token_internal_test.go
// checks), for less work on the token routes' hot path (see
// BenchmarkSubscriptionToken and BenchmarkAuthBatch).
func (i *Instant) sign(sub, channel string, info any, ttl time.Duration, now time.Time) (Token, error) {
	exp := now.Add(ttl).Truncate(time.Second)
	payload, err := appendClaims(make([]byte, 0, 160), sub, channel, info, now.Unix(), exp.Unix())
	if err != nil {
		return Token{}, err
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(hs256Header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(32))
	buf = append(buf, hs256Header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	var sum [sha256.Size]byte
	mac := i.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(buf)
	sig := mac.Sum(sum[:0])
	i.macs.Put(mac)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return Token{Token: string(buf), ExpiresAt: exp}, nil
}

// newMACPool returns a pool of HMAC-SHA256 states keyed with secret. Keying
// hashes the key's two pads; a pooled state is only reset, which restores
// the keyed state without hashing the key again.
func newMACPool(secret []byte) *sync.Pool {
	key := bytes.Clone(secret)
	return &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
}

// appendClaims appends the claims as JSON, the bytes json.Marshal of a
// claims value gives (bar the escaping of "<", ">" and "&", left as they
// are), written by hand: the token routes sign up to a hundred tokens a
// request, and reflection was a third of the cost of each.
func appendClaims(buf []byte, sub, channel string, info any, iat, exp int64) ([]byte, error) {
	if !utf8.ValidString(sub) || !utf8.ValidString(channel) {
		return json.Marshal(claims{Sub: sub, Channel: channel, Info: info, IssuedAt: iat, ExpiresAt: exp, Override: overrideFor(channel)})
	}
	buf = append(buf, `{"sub":`...)
	buf = appendJSONString(buf, sub)
	if channel != "" {
		buf = append(buf, `,"channel":`...)
		buf = appendJSONString(buf, channel)
	}
	switch v := info.(type) {
	case nil:
	case json.RawMessage:
		// Only a rule's info comes as a json.RawMessage, which runRule has
		// checked and compacted: one JSON value, spliced as it is.
		if len(v) > 0 {
			buf = append(append(buf, `,"info":`...), v...)
		}
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if err := checkJSON(raw); err != nil {
			return nil, fmt.Errorf("instant: the token's info %w", err)
		}
		if string(raw) != "null" {
			buf = append(append(buf, `,"info":`...), raw...)
		}
	}
	buf = append(buf, `,"iat":`...)
	buf = strconv.AppendInt(buf, iat, 10)
	buf = append(buf, `,"exp":`...)
	buf = strconv.AppendInt(buf, exp, 10)
	switch overrideFor(channel) {
	case privateOverride:
		buf = append(buf, privateOverrideJSON...)
	case publicOverride:
		buf = append(buf, publicOverrideJSON...)
	}
	return append(buf, '}'), nil
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for k := 0; k < len(s); {
		b := s[k]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				k++
				continue
			}
			buf = append(buf, s[start:k]...)
			switch b {
			case '"', '\\':
				buf = append(buf, '\\', b)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			k++
			start = k
			continue
		}
		r, size := utf8.DecodeRuneInString(s[k:])
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:k]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
			start = k + size
		}
		k += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// signConnection signs without deciding: callers have decided. The
// token carries no info: Centrifugo would hand a connection's info to
// every channel it joins (conn_info), while what members of a channel see
// is that channel's own (see signSubscription).
func (i *Instant) signConnection(user *User) (Token, error) {
	return i.sign(subject(user), "", nil, i.cfg.ConnectionTokenTTL, time.Now())
}

// signSubscription signs without deciding: callers have decided. info is
// a rule's presence info.
func (i *Instant) signSubscription(user *User, channel string, info any) (Token, error) {
	return i.sign(subject(user), channel, channelInfo(user, channel, info), i.cfg.SubscriptionTokenTTL, time.Now())
}

// subject is the tokens' "sub": the user's ID, empty for anonymous.
func subject(u *User) string {
	if u == nil {
		return ""
	}
	return u.ID
}

// channelInfo is what the other members of channel see of user: a rule's
// info when it gave one (an empty json.RawMessage: the rule said "no
// info", see runRule), else User.Info; nothing on a public channel,
// which keeps no presence.
func channelInfo(u *User, channel string, ruleInfo any) any {
	switch {
	case !isPrivate(channel):
		return nil
	case ruleInfo != nil:
		if raw, ok := ruleInfo.(json.RawMessage); ok && len(raw) == 0 {
			return nil
		}
		return ruleInfo
	case u != nil && len(u.Info) > 0:
		return u.Info
	}
	return nil
}
