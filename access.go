package instant

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

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
// `{"a":1},"sub":"4"` would otherwise rewrite the token's claims), or
// whose encoding is not valid UTF-8 or nests deeper than maxJSONDepth
// (Centrifugo would hand it to the channel's members, whose browsers drop
// their connection on a frame that is not UTF-8): no token is signed. The
// info answered is nil when the rule gave none (an untyped nil: the token
// carries User.Info), an empty json.RawMessage when it gave info that
// encodes as null (a typed nil: the token carries no info), or else the
// encoded JSON, a json.RawMessage.
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
		return nil, nil // no info given: User.Info
	}
	raw, jerr := json.Marshal(info) // validates and compacts a json.RawMessage too
	if jerr != nil {
		i.logger.Error("instant: Authorize rule answered info that is not JSON", "pattern", r.pattern, "error", jerr.Error())
		return nil, errRuleFailed
	}
	if jerr := checkJSON(raw); jerr != nil {
		i.logger.Error("instant: Authorize rule answered info that Centrifugo's clients cannot take", "pattern", r.pattern, "error", "info "+jerr.Error())
		return nil, errRuleFailed
	}
	if string(raw) == "null" {
		// A nil map, slice or pointer, or JSON null: no info for this
		// channel, never User.Info in its place.
		return json.RawMessage{}, nil
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

// ConnectionToken signs a Centrifugo connection token for user (nil for an
// anonymous connection, with an empty "sub"), valid for ConnectionTokenTTL:
// what the connection_token route answers. It carries the user's ID and no
// info: User.Info goes into the subscription tokens of private channels,
// so that each channel's members see what that channel's rule allows. It
// refuses an anonymous user when Config.DisallowAnonymous is set
// (ErrLoginRequired) and a user that Login would refuse (ErrInvalidUser).
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
// ErrLoginRequired or ErrNotAllowed when it refuses, or another error when
// a custom rule failed (panicked, or answered info that is not JSON). c is
// handed to custom rules; it may be nil when no rule needs it. Use it to
// put a token into a page you render. The token of a private channel
// carries the presence info its members see of user: the rule's info when
// the rule gives one, else User.Info. The token of a public channel
// carries none and keeps its subscriber out of presence, joins and leaves.
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

// ruleContext is the *gin.Context rules get from Reauthorize: no session
// and no client request, a GET / whose context is ctx (c.Done, c.Value and
// c.Request.Context() all see it), a response that goes nowhere, and u as
// the request's user (CurrentUser(c), and the user argument).
func (i *Instant) ruleContext(ctx context.Context, u *User) *gin.Context {
	c := gin.CreateTestContextOnly(discardWriter{}, ruleEngine)
	st := &reqState{inst: i, origin: c, loaded: true, done: true, user: u}
	req, _ := http.NewRequestWithContext(context.WithValue(ctx, stateKey{}, st), http.MethodGet, "/", nil)
	c.Request = req
	c.Set(contextKey, i)
	c.Set(stateKey{}, st)
	return c
}

// ruleEngine only makes the contexts of ruleContext, with ContextWithFallback
// so that they answer as their request's context. Built as a literal, not
// by gin.New, which prints a warning in debug mode.
var ruleEngine = &gin.Engine{ContextWithFallback: true}

// discardWriter is the response of a rule called by Reauthorize.
type discardWriter struct{}

func (discardWriter) Header() http.Header { return http.Header{} }

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func (discardWriter) WriteHeader(int) {}
