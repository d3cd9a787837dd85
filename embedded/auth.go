package embedded

// Authentication and channel access: the tokens an Instant's routes sign
// (HS256 with its TokenSecret; see the core's token.go), checked where
// Centrifugo v6.9.1 checks them and refused with the codes it uses, so
// that clients (client.js, centrifuge-js, centrifuge-go) react alike.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/centrifugal/centrifuge"
	"github.com/gin-instant/instant/internal/seam"
	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims are the claims of connection and subscription tokens.
type tokenClaims struct {
	jwt.RegisteredClaims
	Channel string          `json:"channel,omitempty"`
	Info    json.RawMessage `json:"info,omitempty"`
}

// The two ways a token fails, told apart as Centrifugo tells them apart:
// an expired one is asked for again (109), an invalid one is not.
var (
	errTokenExpired = errors.New("token expired")
	errTokenInvalid = errors.New("invalid token")
)

// hmacMethods are the algorithms Centrifugo takes with an HMAC secret.
var hmacMethods = []string{"HS256", "HS384", "HS512"}

// verify checks token's signature with secret, then its time claims.
func verify(secret []byte, token string) (tokenClaims, error) {
	var c tokenClaims
	_, err := jwt.NewParser(jwt.WithValidMethods(hmacMethods)).ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		return secret, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired) || errors.Is(err, jwt.ErrTokenNotValidYet):
		// jwt/v5 checks the time claims only after the signature.
		return c, errTokenExpired
	default:
		return c, errTokenInvalid
	}
	if string(c.Info) == "null" {
		c.Info = nil
	}
	return c, nil
}

// expireAt is the token's exp in Unix seconds, 0 when it has none.
func (c tokenClaims) expireAt() int64 {
	if c.ExpiresAt == nil {
		return 0
	}
	return c.ExpiresAt.Unix()
}

// onConnecting checks the connection token. An empty one leaves the
// connection without credentials, which centrifuge closes with 3501 (bad
// request), as Centrifugo does without a token.
func (s *Server) onConnecting(_ context.Context, e centrifuge.ConnectEvent) (reply centrifuge.ConnectReply, err error) {
	defer s.guard("connecting", &err)
	p := s.policy.Load()
	if p == nil {
		return centrifuge.ConnectReply{}, centrifuge.DisconnectServerError // not bound yet
	}
	if e.Token == "" {
		return centrifuge.ConnectReply{}, nil
	}
	c, err := verify(p.TokenSecret, e.Token)
	switch {
	case errors.Is(err, errTokenExpired):
		return centrifuge.ConnectReply{}, centrifuge.ErrorTokenExpired
	case err != nil || c.Channel != "":
		return centrifuge.ConnectReply{}, centrifuge.DisconnectInvalidToken
	case c.Subject == "" && p.DisallowAnonymous:
		return centrifuge.ConnectReply{}, centrifuge.DisconnectPermissionDenied
	}
	return centrifuge.ConnectReply{
		Credentials:       &centrifuge.Credentials{UserID: c.Subject, ExpireAt: c.expireAt(), Info: c.Info},
		ClientSideRefresh: true,
	}, nil
}

// onConnect gives a connection its handlers. Clients may refresh tokens
// and subscribe; they may not publish, or ask for presence or history
// (no handler: centrifuge answers 108, not available), as in the config
// CentrifugoConfig writes.
func (s *Server) onConnect(client *centrifuge.Client) {
	p := s.policy.Load()
	if p == nil {
		client.Disconnect(centrifuge.DisconnectServerError)
		return
	}
	client.OnRefresh(func(e centrifuge.RefreshEvent, cb centrifuge.RefreshCallback) {
		var err error
		defer func() {
			if err != nil {
				cb(centrifuge.RefreshReply{}, err)
			}
		}()
		defer s.guard("refresh", &err)
		cb(s.refresh(p, client, e.Token))
	})
	client.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
		var err error
		defer func() {
			if err != nil {
				cb(centrifuge.SubscribeReply{}, err)
			}
		}()
		defer s.guard("subscribe", &err)
		cb(s.subscribe(p, client.UserID(), e))
	})
	client.OnSubRefresh(func(e centrifuge.SubRefreshEvent, cb centrifuge.SubRefreshCallback) {
		var err error
		defer func() {
			if err != nil {
				cb(centrifuge.SubRefreshReply{}, err)
			}
		}()
		defer s.guard("subscription refresh", &err)
		cb(s.subRefresh(p, client.UserID(), e))
	})
}

// refresh checks a refreshed connection token: it must be the same
// user's.
func (s *Server) refresh(p *seam.Policy, client *centrifuge.Client, token string) (centrifuge.RefreshReply, error) {
	c, err := verify(p.TokenSecret, token)
	switch {
	case errors.Is(err, errTokenExpired):
		return centrifuge.RefreshReply{Expired: true}, nil
	case err != nil || c.Channel != "" || c.Subject != client.UserID():
		return centrifuge.RefreshReply{}, centrifuge.DisconnectInvalidToken
	}
	return centrifuge.RefreshReply{ExpireAt: c.expireAt(), Info: c.Info}, nil
}

// subscribe decides a subscription as Centrifugo v6.9.1 does with the
// config CentrifugoConfig writes: a channel the Instant does not declare
// is 102 (unknown channel); a private one needs a token (103 without);
// a token whose signature fails is 103 and an expired one 109; a token
// for another channel, or for another user, closes the connection with
// 3500 (invalid token). A public channel needs no token (anonymous
// connections too, unless DisallowAnonymous); one given is checked alike.
func (s *Server) subscribe(p *seam.Policy, user string, e centrifuge.SubscribeEvent) (centrifuge.SubscribeReply, error) {
	ch, known := p.Channel(e.Channel)
	switch {
	case !known:
		return centrifuge.SubscribeReply{}, centrifuge.ErrorUnknownChannel
	case e.Type != centrifuge.SubscriptionTypeStream:
		return centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied
	case ch.Private && e.Token == "":
		return centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied
	case e.Token == "" && user == "" && p.DisallowAnonymous:
		return centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied
	}
	opts := s.channelOptions(ch)
	if e.Token != "" {
		c, err := s.subscriptionToken(p, user, e.Channel, e.Token)
		switch {
		case errors.Is(err, errTokenExpired):
			return centrifuge.SubscribeReply{}, centrifuge.ErrorTokenExpired
		case errors.Is(err, errTokenInvalid):
			return centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied
		case err != nil:
			return centrifuge.SubscribeReply{}, err
		}
		opts.ExpireAt, opts.ChannelInfo = c.expireAt(), c.Info
	}
	return centrifuge.SubscribeReply{Options: opts, ClientSideRefresh: true}, nil
}

// subscriptionToken verifies a subscription token for user and channel:
// errTokenExpired, errTokenInvalid (its signature or claims), or the
// refusal to send (102 for a token naming an unknown channel, 3500 for a
// token of another channel or user).
func (s *Server) subscriptionToken(p *seam.Policy, user, channel, token string) (tokenClaims, error) {
	c, err := verify(p.TokenSecret, token)
	switch {
	case err != nil:
		return c, err
	case c.Channel == "":
		return c, errTokenInvalid
	}
	if _, known := p.Channel(c.Channel); !known {
		return c, centrifuge.ErrorUnknownChannel
	}
	if c.Channel != channel || c.Subject != user {
		return c, centrifuge.DisconnectInvalidToken
	}
	return c, nil
}

// subRefresh checks a refreshed subscription token: an expired one ends
// the subscription, any other fault closes the connection (3500).
func (s *Server) subRefresh(p *seam.Policy, user string, e centrifuge.SubRefreshEvent) (centrifuge.SubRefreshReply, error) {
	c, err := s.subscriptionToken(p, user, e.Channel, e.Token)
	switch {
	case errors.Is(err, errTokenExpired):
		return centrifuge.SubRefreshReply{Expired: true}, nil
	case errors.Is(err, errTokenInvalid):
		return centrifuge.SubRefreshReply{}, centrifuge.DisconnectInvalidToken
	case err != nil:
		return centrifuge.SubRefreshReply{}, err
	}
	return centrifuge.SubRefreshReply{ExpireAt: c.expireAt(), Info: c.Info}, nil
}

// channelOptions are a channel's subscription options: every channel
// lets a subscriber filter by tags ("to others"); a private one keeps
// presence with joins and leaves (unless NoPresence) and history with
// recovery (unless there is none); a public one neither.
func (s *Server) channelOptions(ch seam.Channel) centrifuge.SubscribeOptions {
	opts := centrifuge.SubscribeOptions{AllowTagsFilter: true}
	if !ch.Private {
		return opts
	}
	if !s.opts.NoPresence {
		opts.EmitPresence, opts.EmitJoinLeave, opts.PushJoinLeave = true, true, true
	}
	if s.opts.HistorySize > 0 {
		opts.EnableRecovery = true
	}
	return opts
}

// guard turns a panic in a handler into an internal error and a log
// line: nothing a client sends may take the process down.
func (s *Server) guard(what string, err *error) {
	if r := recover(); r != nil {
		s.logger.Error("embedded: a "+what+" handler panicked", slog.Any("panic", r))
		*err = centrifuge.ErrorInternal
	}
}
