package instant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
)

// ContextKey is the plain gin key under which Session stores the *Instant,
// so that c.MustGet("instant").(*instant.Instant) works. Prefer Default(c).
const ContextKey = "instant"

// SessionKey is the session value in which Login keeps the user, as JSON.
const SessionKey = "instant.user"

// stateKey keys the per-request state, in the gin context and in the
// request's context.Context.
type stateKey struct{}

// reqState is what Session records about one request. The user is decoded
// on first use, at most once. It is also the request's context.Context:
// the parent context with one more value, the state itself under
// stateKey, which saves the allocation of a separate context.WithValue.
type reqState struct {
	context.Context
	inst *Instant // nil when no Instant could be found

	mu     sync.Mutex   // the user may be asked for from other goroutines
	c      *gin.Context // nil once the request is over
	loaded bool
	user   *User // shared with the user cache: never handed out, see clone
	err    error // from LoadUser
}

// Session returns the middleware that records the Instant and, on first
// use, the session user for the rest of the request. It needs
// sessions.Sessions (gin-contrib/sessions) before it: without it, the
// request gets a 500 and one log line saying so. It only annotates; the
// routes and RequireUser decide.
func (i *Instant) Session() gin.HandlerFunc {
	if i == nil {
		return func(c *gin.Context) { failServer(c, nil, ErrNotInstalled) }
	}
	return func(c *gin.Context) { i.session(c) }
}

// Session is the package-level middleware, bound to the Instant that
// Configure (or the environment) provides, looked up at each request.
func Session() gin.HandlerFunc {
	return func(c *gin.Context) {
		inst, err := packageDefault()
		if err != nil {
			failServer(c, nil, err)
			return
		}
		inst.session(c)
	}
}

func (i *Instant) session(c *gin.Context) {
	if _, ok := c.Get(sessions.DefaultKey); !ok {
		failServer(c, i, ErrNoSession)
		return
	}
	st := i.install(c)
	defer st.finish()
	c.Next()
}

// finish ends the request: gin reuses c, so a context.Context kept past the
// request must not reach it. A user not asked for by now stays unknown (nil).
func (st *reqState) finish() {
	st.mu.Lock()
	st.c, st.loaded = nil, true
	st.mu.Unlock()
}

// install records the Instant on c (and on c.Request's context) and returns
// the request state.
func (i *Instant) install(c *gin.Context) *reqState {
	st := &reqState{inst: i, c: c}
	c.Set(ContextKey, i)
	c.Set(stateKey{}, st)
	if c.Request != nil {
		st.Context = c.Request.Context()
		c.Request = c.Request.WithContext(st)
	}
	return st
}

// Value answers stateKey with st and every other key from the parent.
func (st *reqState) Value(key any) any {
	if _, ok := key.(stateKey); ok {
		return st
	}
	return st.Context.Value(key)
}

// stateOf returns c's request state, creating one bound to i (or the
// package default) when Session did not run.
func stateOf(c *gin.Context, i *Instant) *reqState {
	if v, ok := c.Get(stateKey{}); ok {
		if st, ok := v.(*reqState); ok && (i == nil || st.inst == i) {
			return st
		}
	}
	if i == nil {
		i, _ = packageDefault()
	}
	if i == nil {
		st := &reqState{c: c}
		c.Set(stateKey{}, st)
		return st
	}
	return i.install(c)
}

// load decodes the user once.
func (st *reqState) load() (*User, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.loaded {
		return st.user, st.err
	}
	st.loaded = true
	if st.inst != nil && st.inst.cfg.LoadUser != nil && st.c != nil {
		// LoadUser is the app's code: call it unlocked, so that it may ask
		// for the current user itself (it then sees none yet).
		c := st.c
		st.mu.Unlock()
		u, err := st.inst.cfg.LoadUser(c)
		st.mu.Lock()
		if err != nil {
			u = nil
			st.inst.logger.Error("instant: LoadUser failed", "error", err)
		}
		st.user, st.err = u, err
		return st.user, st.err
	}
	s, ok := sessionOf(st.c)
	if !ok {
		return nil, nil
	}
	v := s.Get(SessionKey)
	raw, _ := v.(string)
	if st.inst != nil {
		st.user = st.inst.users.decode(raw)
	} else {
		st.user = decodeUser(raw)
	}
	if st.user == nil && v != nil && st.inst != nil {
		st.inst.logger.Debug("instant: session user does not decode; treated as anonymous")
	}
	return st.user, nil
}

func decodeUser(raw string) *User {
	if raw == "" {
		return nil
	}
	u := new(User)
	if json.Unmarshal([]byte(raw), u) != nil || u.validate() != nil {
		return nil
	}
	return u
}

// userCacheSize bounds userCache; past it the cache starts over.
const userCacheSize = 4096

// userCache maps a session value, as Login wrote it, to the decoded user,
// so that a returning visitor's user is decoded once, not on every
// request. The key is the exact value the session store authenticated,
// so an entry can only be reached with the same session content.
type userCache struct {
	mu sync.RWMutex
	m  map[string]*User
}

// decode returns the user raw holds (nil when it holds none), shared with
// the cache: the caller must not modify it nor hand it out.
func (uc *userCache) decode(raw string) *User {
	uc.mu.RLock()
	u, ok := uc.m[raw]
	uc.mu.RUnlock()
	if !ok {
		u = decodeUser(raw)
		uc.mu.Lock()
		if len(uc.m) >= userCacheSize || uc.m == nil {
			uc.m = make(map[string]*User, 64)
		}
		uc.m[raw] = u
		uc.mu.Unlock()
	}
	return u
}

// clone returns a copy of u that its receiver may change: Groups and the
// top level of Info are copied too.
func (u *User) clone() *User {
	if u == nil {
		return nil
	}
	cp := *u
	cp.Groups = slices.Clone(u.Groups)
	cp.Info = maps.Clone(u.Info)
	return &cp
}

func sessionOf(c *gin.Context) (sessions.Session, bool) {
	if c == nil {
		return nil, false
	}
	v, ok := c.Get(sessions.DefaultKey)
	if !ok {
		return nil, false
	}
	s, ok := v.(sessions.Session)
	return s, ok
}

// Default returns the Instant serving c: the one Session recorded, else the
// package default, else nil. Methods of a nil *Instant return
// ErrNotInstalled rather than panic.
func Default(c *gin.Context) *Instant {
	if c == nil {
		return nil
	}
	if v, ok := c.Get(ContextKey); ok {
		if i, ok := v.(*Instant); ok {
			return i
		}
	}
	i, _ := packageDefault()
	return i
}

// CurrentUser returns the logged-in user of c, or nil for an anonymous
// visitor (or when the user could not be loaded). The User is the
// caller's own copy (values nested inside Info excepted).
func CurrentUser(c *gin.Context) *User {
	if c == nil {
		return nil
	}
	u, _ := stateOf(c, nil).load()
	return u.clone()
}

// FromContext returns the Instant of the request whose context is ctx
// (a *gin.Context or c.Request.Context()), or nil.
func FromContext(ctx context.Context) *Instant {
	if st := stateFromContext(ctx); st != nil {
		return st.inst
	}
	return nil
}

// UserFromContext returns the logged-in user of the request whose context
// is ctx, or nil; a copy, as CurrentUser's. It is safe to call from other
// goroutines; after the request is over it returns the user only if the
// request had asked for it.
func UserFromContext(ctx context.Context) *User {
	if st := stateFromContext(ctx); st != nil {
		u, _ := st.load()
		return u.clone()
	}
	return nil
}

func stateFromContext(ctx context.Context) *reqState {
	if ctx == nil {
		return nil
	}
	if c, ok := ctx.(*gin.Context); ok {
		if v, ok := c.Get(stateKey{}); ok {
			st, _ := v.(*reqState)
			return st
		}
		if c.Request == nil {
			return nil
		}
		ctx = c.Request.Context()
	}
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// Login stores u in the session as the logged-in user and saves the
// session. It needs sessions.Sessions before it (ErrNoSession otherwise)
// and refuses a user without a valid ID or with a bad group name
// (ErrInvalidUser).
func Login(c *gin.Context, u User) error {
	if err := u.validate(); err != nil {
		return err
	}
	s, ok := sessionOf(c)
	if !ok {
		return ErrNoSession
	}
	raw, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	s.Set(SessionKey, string(raw))
	if err := s.Save(); err != nil {
		return fmt.Errorf("instant: save session: %w", err)
	}
	stateOf(c, nil).set(decodeUser(string(raw)))
	return nil
}

// Logout removes the user from the session and saves it. Other session
// values are kept.
func Logout(c *gin.Context) error {
	s, ok := sessionOf(c)
	if !ok {
		return ErrNoSession
	}
	s.Delete(SessionKey)
	if err := s.Save(); err != nil {
		return fmt.Errorf("instant: save session: %w", err)
	}
	stateOf(c, nil).set(nil)
	return nil
}

// set records the user Login or Logout just wrote.
func (st *reqState) set(u *User) {
	st.mu.Lock()
	st.loaded, st.user, st.err = true, u, nil
	st.mu.Unlock()
}

// RequireUser is a middleware that answers 401 to anonymous visitors.
func RequireUser() gin.HandlerFunc {
	return func(c *gin.Context) {
		if CurrentUser(c) == nil {
			abortJSON(c, http.StatusUnauthorized, "instant: login required")
			return
		}
		c.Next()
	}
}

// RequireStaff is a middleware that answers 401 to anonymous visitors and
// 403 to users who are neither staff nor superusers.
func RequireStaff() gin.HandlerFunc {
	return func(c *gin.Context) {
		u := CurrentUser(c)
		switch {
		case u == nil:
			abortJSON(c, http.StatusUnauthorized, "instant: login required")
		case !u.IsStaff():
			abortJSON(c, http.StatusForbidden, "instant: staff only")
		default:
			c.Next()
		}
	}
}

func abortJSON(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// failServer answers a server-side fault: a 500 and one log line. The
// answer names only the sentinel (what is missing); the log has the rest.
func failServer(c *gin.Context, i *Instant, err error) {
	logger := defaultLogger()
	if i != nil {
		logger = i.logger
	}
	path := ""
	if c.Request != nil && c.Request.URL != nil {
		path = c.Request.URL.Path
	}
	logger.Error(err.Error(), "path", path)
	msg := "instant: server error"
	for _, known := range []error{ErrNoSession, ErrNotInstalled, ErrNotConfigured} {
		if errors.Is(err, known) {
			msg = known.Error()
		}
	}
	abortJSON(c, http.StatusInternalServerError, msg)
}
