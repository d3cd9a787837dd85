package instant

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
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
	} else if user == nil && i.cfg.DisallowAnonymous { // mayConnect's, inline: the hot path
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
			i.cfg.Logger.Error("instant: Authorize rule panicked", "pattern", r.pattern, "panic", fmt.Sprint(p))
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
	if err = cmp.Or(err, checkJSON(raw)); err != nil {
		i.cfg.Logger.Error("instant: Authorize rule answered info that is not JSON Centrifugo's clients take", "pattern", r.pattern, "error", err.Error())
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
	return i.sign(user, "", nil, i.clock.now())
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
	return i.sign(user, channel, info, i.clock.now())
}

// ruleContext is the *gin.Context rules get from Reauthorize: GET /, ctx, u.
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

// AuthorizeFunc decides whether user (nil: anonymous) may read the channel
// that matched, with its params. info is the token's: nil for User.Info, JSON
// null for none, else one JSON value (UTF-8, 64 deep at most; else a 500, as a
// panic). It runs concurrently and must not keep c; Reauthorize's c is a
// GET / without session, with its ctx and user (CurrentUser).
type AuthorizeFunc func(c *gin.Context, user *User, params map[string]string) (allow bool, info any)

// rule is one custom rule added by Authorize.
type rule struct {
	pattern   string
	re        *regexp.Regexp // its groups are the parameters,
	params    []string       // named so ("*" for the star)
	namespace string         // of every channel it matches; "" for none
	fn        AuthorizeFunc
}

// Authorize adds a rule: fn decides the "$" channels, not a role's, that
// match pattern (first matching rule; none denies). {name} matches 1+ bytes
// but ":#,/" and ends the pattern or precedes one of them; a final * the rest
// (params["*"]). The namespace is literal, not UserChannel's (else
// ErrInvalidPattern). Add rules before CentrifugoConfig; safe while serving.
func (i *Instant) Authorize(pattern string, fn AuthorizeFunc) error {
	if i == nil {
		return ErrNotInstalled
	}
	r, err := i.newRule(pattern, fn)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidPattern, pattern, err)
	}
	for {
		old := i.rules.Load()
		rules := append(slices.Clip(*old), r)
		if i.rules.CompareAndSwap(old, &rules) {
			return nil
		}
	}
}

const paramStop = ":#,/"

// newRule compiles a pattern; none that splits a name two ways or whose
// namespace a config cannot declare.
func (i *Instant) newRule(p string, fn AuthorizeFunc) (rule, error) {
	r, err := rule{pattern: p, fn: fn}, checkName(p, "pattern")
	switch head, _, colon := strings.Cut(strings.TrimPrefix(p, privatePrefix), ":"); {
	case fn == nil:
		return r, errors.New("nil AuthorizeFunc")
	case !isPrivate(p):
		return r, errors.New(`a rule must cover "$" channels; Centrifugo lets anyone read the others without a token`)
	case err != nil:
		return r, err
	case strings.Contains(head, "*"):
		return r, errors.New(`a '*' before the first ':' matches namespaces no config declares: end the namespace with ':' first, as in "$chat:*"`)
	case colon && strings.ContainsAny(head, "{}"):
		return r, fmt.Errorf("the namespace %q (before the first ':') must be literal: Centrifugo declares namespaces by name", head)
	case colon && head != "" && (len(head) < 2 || !namespaceChars(head)):
		return r, fmt.Errorf("namespace %q %s", head, namespaceRule)
	case colon && head == i.channels.userNamespace:
		return r, fmt.Errorf("the namespace %q holds the users' own channels (UserChannel), which no rule decides", head)
	case colon:
		r.namespace = head
	}
	expr := "^"
	for rest := p; rest != ""; {
		switch rest[0] {
		case '*':
			if len(rest) != 1 {
				return r, fmt.Errorf("'*' may only end a pattern")
			}
			expr, rest, r.params = expr+"(.*)", "", append(r.params, "*")
		case '{':
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return r, fmt.Errorf("unclosed '{'")
			}
			name := rest[1:end]
			switch rest = rest[end+1:]; {
			case name == "" || strings.ContainsAny(name, "{*:#,/"):
				return r, fmt.Errorf("bad parameter name %q", name)
			case slices.Contains(r.params, name):
				return r, fmt.Errorf("parameter %q used twice", name)
			case rest != "" && !strings.ContainsRune(paramStop, rune(rest[0])):
				return r, fmt.Errorf("parameter %q must end the pattern or be followed by one of %q", name, paramStop)
			}
			expr, r.params = expr+"([^"+paramStop+"]+)", append(r.params, name)
		case '}':
			return r, fmt.Errorf("unopened '}'")
		default:
			end := strings.IndexAny(rest, "{}*")
			if end < 0 {
				end = len(rest)
			}
			expr, rest = expr+regexp.QuoteMeta(rest[:end]), rest[end:]
		}
	}
	r.re = regexp.MustCompile(expr + "$")
	return r, nil
}

func (r *rule) match(channel string) (map[string]string, bool) {
	m := r.re.FindStringSubmatch(channel)
	if m == nil || len(r.params) == 0 {
		return nil, m != nil
	}
	params := make(map[string]string, len(r.params))
	for k, name := range r.params {
		params[name] = m[k+1]
	}
	return params, true
}
