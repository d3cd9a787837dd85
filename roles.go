package instant

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"
)

// grant says who may read one configured channel.
type grant struct {
	level  Level
	groups []string // for LevelGroups
}

func (g *grant) allows(u *User) bool {
	switch g.level {
	case LevelPublic:
		return true
	case LevelUsers:
		return u != nil
	case LevelGroups:
		for _, grp := range g.groups {
			if u.InGroup(grp) {
				return true
			}
		}
		return false
	case LevelStaff:
		return u.IsStaff()
	case LevelSuperuser:
		return u != nil && u.Superuser
	}
	return false
}

// mayConnect is the decision for a connection: anyone, unless anonymous
// visitors are refused (ErrLoginRequired).
func (i *Instant) mayConnect(user *User) error {
	if user == nil && i.cfg.DisallowAnonymous {
		return ErrLoginRequired
	}
	return nil
}

// decide is the one place that says whether user (nil for anonymous) may
// read channel; the token routes, the batch route, the proxies, Allowed
// and SubscriptionToken all ask it and check nothing around it. It
// answers the presence info for the token, or an error: ErrInvalidChannel
// (wrapped, with the reason) for a name that is not a channel,
// ErrLoginRequired for an anonymous visitor when they are refused,
// ErrNotAllowed when the user may not read it, and errRuleFailed when a
// custom rule panicked.
func (i *Instant) decide(c *gin.Context, user *User, channel string) (info any, err error) {
	if err := validChannel(channel); err != nil {
		return nil, err
	}
	if err := i.mayConnect(user); err != nil {
		return nil, err
	}
	if i.isAccessChannel(channel) {
		return nil, ErrNotAllowed // Reauthorize's records: the server's only (reauth.go)
	}
	if g, known := i.channels.byName[channel]; known {
		if g.allows(user) {
			return nil, nil
		}
		return nil, ErrNotAllowed
	}
	if strings.HasPrefix(channel, i.channels.userPrefix) {
		// A personal channel is the user's whose UserChannel it is, and
		// nobody else's: the name is compared whole, never parsed.
		if user != nil && i.UserChannel(user.ID) == channel {
			return nil, nil
		}
		return nil, ErrNotAllowed
	}
	if !isPrivate(channel) {
		return nil, nil
	}
	for _, r := range *i.rules.Load() {
		if params, ok := r.match(channel); ok {
			return i.runRule(&r, c, user, params)
		}
	}
	return nil, ErrNotAllowed // deny by default
}

// runRule calls a rule's function with the caller's own copy of the user.
// A panic in it is logged and answered with errRuleFailed, and so is info
// that does not encode as one JSON value (a json.RawMessage such as
// `{"a":1},"sub":"4"` would otherwise rewrite the token's claims). The
// info answered is encoded JSON (a json.RawMessage), or nil.
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
	raw, jerr := json.Marshal(info) // validates and compacts a json.RawMessage too
	if jerr != nil {
		i.logger.Error("instant: Authorize rule answered info that is not JSON", "pattern", r.pattern, "error", jerr.Error())
		return nil, errRuleFailed
	}
	if string(raw) == "null" {
		return nil, nil
	}
	return json.RawMessage(raw), nil
}

// Allowed reports whether user (nil for anonymous) may read channel, by the
// same decision the routes use. c is handed to custom rules; it may be nil
// when no rule needs it. A rule that panics counts as a refusal here.
func (i *Instant) Allowed(c *gin.Context, user *User, channel string) bool {
	if i == nil {
		return false
	}
	_, err := i.decide(c, user, channel)
	return err == nil
}
