package instant

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

func (i *Instant) mayConnect(user *User) error {
	if user == nil && i.cfg.DisallowAnonymous {
		return ErrLoginRequired
	}
	return nil
}

// decide is the one decision whether user (nil: anonymous) may read
// channel: the rule's info, or ErrInvalidChannel (wrapped),
// ErrLoginRequired, ErrNotAllowed, errRuleFailed.
func (i *Instant) decide(c *gin.Context, user *User, channel string) (info any, err error) {
	if err := validChannel(channel); err != nil {
		return nil, err
	}
	if user == nil && i.cfg.DisallowAnonymous {
		return nil, ErrLoginRequired
	}
	allowed := false
	if g, known := i.channels.byName[channel]; known { // g.groups only for LevelGroups
		allowed = g.level == LevelPublic || slices.ContainsFunc(g.groups, user.InGroup) || user != nil &&
			(g.level == LevelUsers || g.level == LevelStaff && user.IsStaff() || g.level == LevelSuperuser && user.Superuser)
	} else if strings.HasPrefix(channel, i.channels.userPrefix) { // compared whole, never parsed
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

// runRule calls a rule with its own copy of the user: info nil for none,
// empty for null, else its JSON; a panic or bad info is errRuleFailed.
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
// routes' decision; c goes to custom rules (may be nil), a panic refuses.
func (i *Instant) Allowed(c *gin.Context, user *User, channel string) bool {
	if i == nil {
		return false
	}
	_, err := i.decide(c, user, channel)
	return err == nil
}

// ConnectionToken signs a connection token for user (nil: anonymous),
// valid for ConnectionTokenTTL, or ErrLoginRequired or ErrInvalidUser.
func (i *Instant) ConnectionToken(user *User) (Token, error) {
	if i == nil {
		return Token{}, ErrNotInstalled
	}
	if err := cmp.Or(user.validate(), i.mayConnect(user)); err != nil {
		return Token{}, err
	}
	return i.signConnection(user)
}

// SubscriptionToken signs a token for user (nil for anonymous) to read
// channel, valid for SubscriptionTokenTTL, after the routes' decision
// (errors wrap ErrInvalidChannel, ErrLoginRequired, ErrNotAllowed,
// ErrInvalidUser, or a rule failed). c goes to custom rules (may be nil).
func (i *Instant) SubscriptionToken(c *gin.Context, user *User, channel string) (Token, error) {
	if i == nil {
		return Token{}, ErrNotInstalled
	}
	if err := user.validate(); err != nil {
		return Token{}, err
	}
	info, err := i.decide(c, user, channel)
	if err != nil {
		return Token{}, err
	}
	return i.signSubscription(user, channel, info)
}

// ruleContext is the *gin.Context rules get from Reauthorize: a GET /,
// no session, context ctx, response discarded, u its user.
func (i *Instant) ruleContext(ctx context.Context, u *User) *gin.Context {
	c := gin.CreateTestContextOnly(discardWriter{}, ruleEngine)
	st := &reqState{inst: i, c: c, loaded: true, done: true, user: u}
	c.Request, _ = http.NewRequestWithContext(context.WithValue(ctx, stateKey{}, st), http.MethodGet, "/", nil)
	c.Set(contextKey, i)
	c.Set(stateKey{}, st)
	return c
}

// ruleEngine: c answers as its request's context; gin.New warns in debug.
var ruleEngine = &gin.Engine{ContextWithFallback: true}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
