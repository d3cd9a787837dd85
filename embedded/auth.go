package embedded

// Tokens checked where Centrifugo checks them, refused with its codes.

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/centrifugal/centrifuge"
	"github.com/gin-instant/instant/internal/seam"
	"github.com/golang-jwt/jwt/v5"
)

type tokenClaims struct {
	jwt.RegisteredClaims
	Channel string          `json:"channel,omitempty"`
	Info    json.RawMessage `json:"info,omitempty"`
}

var tokenParser = jwt.NewParser(jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}))

// verify checks token's signature, then its time claims: expired is ErrorTokenExpired
// (109, asked for again), else invalid; exp is in Unix seconds (0: none).
func verify(secret []byte, token string, invalid error) (c tokenClaims, exp int64, err error) {
	_, err = tokenParser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired) || errors.Is(err, jwt.ErrTokenNotValidYet):
		return c, 0, centrifuge.ErrorTokenExpired // checked only after the signature
	case err != nil:
		return c, 0, invalid
	}
	if string(c.Info) == "null" {
		c.Info = nil
	}
	if c.ExpiresAt != nil {
		exp = c.ExpiresAt.Unix()
	}
	return c, exp, nil
}

// onConnecting checks the connection token; without one, centrifuge closes with 3501.
func (s *Server) onConnecting(_ context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
	return safe(s, "connecting", func() (centrifuge.ConnectReply, error) {
		p := s.policy.Load()
		if p == nil {
			return centrifuge.ConnectReply{}, centrifuge.DisconnectServerError // not bound yet
		}
		if e.Token == "" {
			return centrifuge.ConnectReply{}, nil
		}
		c, exp, err := verify(p.TokenSecret, e.Token, centrifuge.DisconnectInvalidToken)
		switch {
		case err == nil && c.Channel != "":
			err = centrifuge.DisconnectInvalidToken
		case err == nil && c.Subject == "" && p.DisallowAnonymous:
			err = centrifuge.DisconnectPermissionDenied
		}
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: c.Subject, ExpireAt: exp, Info: c.Info}, ClientSideRefresh: true}, err
	})
}

// onConnect lets clients refresh and subscribe, not publish or read presence or history
// (108); an expired refresh ends what it was for, any other fault closes (3500).
func (s *Server) onConnect(client *centrifuge.Client) {
	p := s.policy.Load() // bound: onConnecting let it in
	user := client.UserID()
	client.OnRefresh(func(e centrifuge.RefreshEvent, cb centrifuge.RefreshCallback) {
		cb(safe(s, "refresh", func() (centrifuge.RefreshReply, error) {
			c, exp, err := tokenFor(p, user, "", e.Token, centrifuge.DisconnectInvalidToken)
			if err == centrifuge.ErrorTokenExpired {
				return centrifuge.RefreshReply{Expired: true}, nil
			}
			return centrifuge.RefreshReply{ExpireAt: exp, Info: c.Info}, err
		}))
	})
	client.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
		cb(safe(s, "subscribe", func() (centrifuge.SubscribeReply, error) { return s.subscribe(p, user, e) }))
	})
	client.OnSubRefresh(func(e centrifuge.SubRefreshEvent, cb centrifuge.SubRefreshCallback) {
		cb(safe(s, "subscription refresh", func() (centrifuge.SubRefreshReply, error) {
			c, exp, err := tokenFor(p, user, e.Channel, e.Token, centrifuge.DisconnectInvalidToken)
			if err == centrifuge.ErrorTokenExpired {
				return centrifuge.SubRefreshReply{Expired: true}, nil
			}
			return centrifuge.SubRefreshReply{ExpireAt: exp, Info: c.Info}, err
		}))
	})
}

// subscribe refuses an undeclared channel (102), a private one without a token or a
// bad one (103), an expired token (109) and one for another channel or user (3500).
func (s *Server) subscribe(p *seam.Policy, user string, e centrifuge.SubscribeEvent) (centrifuge.SubscribeReply, error) {
	ch, known := p.Channel(e.Channel)
	switch {
	case !known:
		return centrifuge.SubscribeReply{}, centrifuge.ErrorUnknownChannel
	case e.Type != centrifuge.SubscriptionTypeStream,
		ch.Private && e.Token == "",
		e.Token == "" && user == "" && p.DisallowAnonymous:
		return centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied
	}
	opts := centrifuge.SubscribeOptions{AllowTagsFilter: true}
	if ch.Private {
		presence := !s.opts.NoPresence
		opts.EmitPresence, opts.EmitJoinLeave, opts.PushJoinLeave = presence, presence, presence
		opts.EnableRecovery = s.opts.HistorySize > 0
	}
	if e.Token != "" {
		c, exp, err := tokenFor(p, user, e.Channel, e.Token, centrifuge.ErrorPermissionDenied)
		if err != nil {
			return centrifuge.SubscribeReply{}, err
		}
		opts.ExpireAt, opts.ChannelInfo = exp, c.Info
	}
	return centrifuge.SubscribeReply{Options: opts, ClientSideRefresh: true}, nil
}

// tokenFor verifies a token for user and channel ("": a connection token): invalid
// when it is not one of that kind, else the refusal to send (102, 3500).
func tokenFor(p *seam.Policy, user, channel, token string, invalid error) (tokenClaims, int64, error) {
	c, exp, err := verify(p.TokenSecret, token, invalid)
	known := func() bool { _, ok := p.Channel(c.Channel); return ok } // looked up only for a subscription token
	switch {
	case err != nil:
	case (c.Channel == "") != (channel == ""):
		err = invalid
	case channel != "" && !known():
		err = centrifuge.ErrorUnknownChannel
	case c.Channel != channel || c.Subject != user:
		err = centrifuge.DisconnectInvalidToken
	}
	return c, exp, err
}

// safe makes a panic in f an internal error and a log line.
func safe[R any](s *Server, what string, f func() (R, error)) (r R, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.opts.Logger.Error("embedded: a "+what+" handler panicked", "panic", v)
			err = centrifuge.ErrorInternal
		}
	}()
	return f()
}
