package instant

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// mayConnect refuses an anonymous user when DisallowAnonymous is set.
func (i *Instant) mayConnect(user *User) error {
	if user == nil && i.cfg.DisallowAnonymous {
		return ErrLoginRequired
	}
	return nil
}

// decide is the one decision whether user (nil for anonymous) may read
// channel; every route, proxy, Allowed and SubscriptionToken asks it and
// checks nothing around it. It answers the rule's presence info (see
// runRule) or an error: ErrInvalidChannel (wrapped), ErrLoginRequired,
// ErrNotAllowed, or errRuleFailed.
func (i *Instant) decide(c *gin.Context, user *User, channel string) (info any, err error) {
	if err := validChannel(channel); err != nil {
		return nil, err
	}
	if user == nil && i.cfg.DisallowAnonymous {
		return nil, ErrLoginRequired
	}
	allowed := false
	if g, known := i.channels.byName[channel]; known {
		switch g.level {
		case LevelPublic:
			allowed = true
		case LevelUsers:
			allowed = user != nil
		case LevelGroups:
			for _, grp := range g.groups {
				allowed = allowed || user != nil && slices.Contains(user.Groups, grp)
			}
		case LevelStaff:
			allowed = user != nil && (user.Staff || user.Superuser)
		case LevelSuperuser:
			allowed = user != nil && user.Superuser
		}
	} else if strings.HasPrefix(channel, i.channels.userPrefix) {
		// The name is compared whole, never parsed.
		allowed = user != nil && i.UserChannel(user.ID) == channel
	} else if !strings.HasPrefix(channel, privatePrefix) {
		allowed = true
	} else {
		for _, r := range *i.rules.Load() {
			if params, ok := r.match(channel); ok {
				return i.runRule(&r, c, user, params)
			}
		}
	}
	if !allowed {
		return nil, ErrNotAllowed // deny by default
	}
	return nil, nil
}

// runRule calls a rule with the caller's own copy of the user. A panic, or
// info that is not one JSON value of valid UTF-8 nested at most
// maxJSONDepth deep (it would rewrite the token's claims, or break the
// members' connections), is logged and answered errRuleFailed. The info
// answered is nil when the rule gave none (the token carries User.Info),
// an empty json.RawMessage when it encodes as null (no info), or else the
// encoded json.RawMessage.
func (i *Instant) runRule(r *rule, c *gin.Context, user *User, params map[string]string) (info any, err error) {
	defer func() {
		if p := recover(); p != nil {
			i.logger.Error("instant: Authorize rule panicked", "pattern", r.pattern, "panic", fmt.Sprint(p))
			info, err = nil, errRuleFailed
		}
	}()
	allow, info := r.fn(c, user.clone(), params)
	if !allow {
		return nil, ErrNotAllowed
	}
	if info == nil {
		return nil, nil
	}
	raw, err := json.Marshal(info) // validates and compacts a json.RawMessage too
	if err == nil {
		err = checkJSON(raw)
	}
	if err != nil {
		i.logger.Error("instant: Authorize rule answered info that is not JSON Centrifugo's clients take", "pattern", r.pattern, "error", err.Error())
		return nil, errRuleFailed
	}
	if string(raw) == "null" {
		return json.RawMessage{}, nil
	}
	return json.RawMessage(raw), nil
}

// Allowed reports whether user (nil for anonymous) may read channel, by the
// routes' decision. c goes to custom rules and may be nil when none needs
// it. A rule that panics counts as a refusal.
func (i *Instant) Allowed(c *gin.Context, user *User, channel string) bool {
	if i == nil {
		return false
	}
	_, err := i.decide(c, user, channel)
	return err == nil
}

// ConnectionToken signs a connection token for user (nil: anonymous, empty
// "sub"), valid for ConnectionTokenTTL, with no info. It refuses what the
// connection_token route refuses (ErrLoginRequired) and a user Login
// refuses (ErrInvalidUser).
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
// channel, valid for SubscriptionTokenTTL, after the subscription_token
// route's decision: errors wrap ErrInvalidChannel, ErrLoginRequired,
// ErrNotAllowed or ErrInvalidUser, or report a failed rule. c goes to
// custom rules and may be nil. A private channel's token carries the rule's
// info, else User.Info; a public channel's carries none.
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

// ruleContext is the *gin.Context rules get from Reauthorize: a GET /
// with no session, whose context is ctx, a response that goes nowhere, and
// u as the request's user.
func (i *Instant) ruleContext(ctx context.Context, u *User) *gin.Context {
	c := gin.CreateTestContextOnly(discardWriter{}, ruleEngine)
	st := &reqState{inst: i, origin: c, loaded: true, done: true, user: u}
	c.Request, _ = http.NewRequestWithContext(context.WithValue(ctx, stateKey{}, st), http.MethodGet, "/", nil)
	c.Set(contextKey, i)
	c.Set(stateKey{}, st)
	return c
}

// ruleEngine makes ruleContext's contexts answer as their request's
// context. A literal: gin.New warns in debug mode.
var ruleEngine = &gin.Engine{ContextWithFallback: true}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
