package instant

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
)

// contextKey is the plain gin key of the *Instant, promised to users
// (c.MustGet("instant")).
const contextKey = "instant"

// stateKey keys the *reqState, in the gin context and the request's
// context; loadingKey marks the contexts handed to LoadUser.
type (
	stateKey   struct{}
	loadingKey struct{}
)

// Session returns the middleware that records the Instant and, on first
// use, the session user. It needs sessions.Sessions before it (else a 500
// and a log line). It only annotates; the routes and RequireUser decide.
func (i *Instant) Session() gin.HandlerFunc {
	if i == nil {
		return func(c *gin.Context) { failServer(c, nil, ErrNotInstalled) }
	}
	return func(c *gin.Context) {
		if _, ok := c.Get(sessions.DefaultKey); !ok {
			failServer(c, i, ErrNoSession)
			return
		}
		defer i.begin(c).finish()
		c.Next()
	}
}

// Session is inst.Session() of the package default Instant, built once
// from ConfigFromEnv. Call it at startup: it panics, naming the variables
// to set, when the environment does not configure it.
func Session() gin.HandlerFunc { return packageDefault().Session() }

// Default returns the Instant that Session recorded for the request of ctx
// (its *gin.Context, a Copy, or the request's context), or nil. Methods of
// a nil *Instant return ErrNotInstalled.
func Default(ctx context.Context) *Instant {
	if st, _ := stateOf(ctx); st != nil {
		return st.inst
	}
	return nil
}

// CurrentUser returns the caller's own copy of the logged-in user of the
// request of ctx, or nil (anonymous, outside Session, or LoadUser failed).
// ctx is the handler's *gin.Context, on its goroutine, or, from another
// goroutine or after the handler, c.Request.Context() or c.Copy(): those
// answer only once the user was loaded on the handler's goroutine, which
// alone may read the session (ask there first). A context built on the
// *gin.Context itself answers nil, since gin reuses it.
func CurrentUser(ctx context.Context) *User {
	st, reentrant := stateOf(ctx)
	if st == nil {
		return nil
	}
	u, _ := st.load(reentrant)
	return u.clone()
}

// stateOf returns the request state of ctx (nil for none) and whether ctx
// is LoadUser's. A context built on a *gin.Context is read as it, never
// through its request (with ContextWithFallback, maybe the next one's),
// and answers nil when gin reuses it.
func stateOf(ctx context.Context) (st *reqState, reentrant bool) {
	switch c, isGin := ctx.(*gin.Context); {
	case isGin && c == nil, ctx == nil:
		return nil, false
	case isGin:
		return stateOfGin(c)
	}
	if c, ok := ctx.Value(gin.ContextKey).(*gin.Context); ok {
		if st, reentrant = stateOfGin(c); st != nil && st.origin == c {
			return nil, false
		}
		return st, reentrant
	}
	st, _ = ctx.Value(stateKey{}).(*reqState)
	return st, st != nil && ctx.Value(loadingKey{}) == st
}

// RequireUser is a middleware that answers 401 to anonymous visitors (500
// when LoadUser failed).
func RequireUser() gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := requestUser(c, true); ok {
			c.Next()
		}
	}
}

// RequireStaff is a middleware that answers 401 to anonymous visitors, 403
// to users neither staff nor superuser (500 when LoadUser failed).
func RequireStaff() gin.HandlerFunc {
	return func(c *gin.Context) {
		if u, ok := requestUser(c, true); !ok {
		} else if !u.IsStaff() {
			abortJSON(c, http.StatusForbidden, "instant: staff only")
		} else {
			c.Next()
		}
	}
}

// reqState is what Session records about one request: the Instant and the
// user, loaded at most once. A load in flight is waited for by the other
// askers and by the end of the request, after which gin reuses c.
type reqState struct {
	inst   *Instant
	origin *gin.Context // the request's, compared with, never read

	mu      sync.Mutex
	c       *gin.Context  // origin until the request is over, then nil
	done    bool          // the request is over
	loaded  bool          // user and err are final
	loading chan struct{} // closed when LoadUser returns
	user    *User         // hand out clones only
	err     error         // wraps errLoadUser
}

// begin records i and a new request state on c and on its request's context.
func (i *Instant) begin(c *gin.Context) *reqState {
	st := &reqState{inst: i, origin: c, c: c}
	c.Set(contextKey, i)
	c.Set(stateKey{}, st)
	if c.Request != nil {
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), stateKey{}, st))
	}
	return st
}

// finish waits for a LoadUser in flight and forgets c: a user not asked
// for by now stays unknown (nil).
func (st *reqState) finish() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.done = true
	for st.loading != nil {
		wait := st.loading
		st.mu.Unlock()
		<-wait
		st.mu.Lock()
	}
	st.c = nil
}

// stateOfGin returns the state Session recorded on c (nil outside Session)
// and whether c is the copy handed to LoadUser.
func stateOfGin(c *gin.Context) (st *reqState, reentrant bool) {
	v, _ := c.Get(stateKey{})
	if st, _ = v.(*reqState); st == nil {
		return nil, false
	}
	l, _ := c.Get(loadingKey{})
	return st, l == st
}

// requestUser returns c's user for a middleware or a route, or answers (500
// without Session or when LoadUser failed, 401 for anonymous when login is
// required) and returns ok false.
func requestUser(c *gin.Context, loginRequired bool) (u *User, ok bool) {
	st, reentrant := stateOfGin(c)
	if st == nil {
		failServer(c, nil, ErrNotInstalled)
		return nil, false
	}
	u, err := st.load(reentrant)
	switch {
	case err != nil:
		abortJSON(c, http.StatusInternalServerError, errLoadUser.Error())
		return nil, false
	case u == nil && loginRequired:
		abortJSON(c, http.StatusUnauthorized, ErrLoginRequired.Error())
		return nil, false
	}
	return u, true
}

// load returns the request's user (nil for anonymous; shared: hand out
// clones), loading it on first use from LoadUser or the session. reentrant
// (LoadUser asking) gets nil rather than wait for itself.
func (st *reqState) load(reentrant bool) (*User, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for !st.loaded {
		if st.loading != nil {
			if reentrant {
				return nil, nil
			}
			wait := st.loading
			st.mu.Unlock()
			<-wait
			st.mu.Lock()
			continue
		}
		if st.done || st.c == nil {
			return nil, nil // never asked during the request: unknown
		}
		if st.inst.cfg.LoadUser == nil {
			var v any
			if s, ok := st.c.Value(sessions.DefaultKey).(sessions.Session); ok {
				v = s.Get(sessionKey)
			}
			raw, _ := v.(string)
			if st.user = st.inst.users.decode(raw); st.user == nil && v != nil {
				st.inst.logger.Debug("instant: session user does not decode; treated as anonymous")
			}
			st.loaded = true
			break
		}
		st.loading = make(chan struct{})
		c := st.c
		st.mu.Unlock()
		u, err := st.inst.loadUser(c, st)
		st.mu.Lock()
		if !st.loaded { // Login or Logout may have set it meanwhile
			st.user, st.err, st.loaded = u, err, true
		}
		close(st.loading)
		st.loading = nil
	}
	return st.user, st.err
}

// set records the user that Login or Logout just wrote.
func (st *reqState) set(u *User) {
	st.mu.Lock()
	st.loaded, st.user, st.err = true, u, nil
	st.mu.Unlock()
}

// loadUser calls Config.LoadUser with a marked copy of c. An error, panic
// or invalid user becomes an error wrapping errLoadUser, logged here. The
// user is normalized (LoadUser may keep and change what it returned).
func (i *Instant) loadUser(c *gin.Context, st *reqState) (u *User, err error) {
	lc := c.Copy()
	lc.Set(loadingKey{}, st)
	if lc.Request != nil {
		lc.Request = lc.Request.WithContext(context.WithValue(lc.Request.Context(), loadingKey{}, st))
	}
	defer func() {
		if p := recover(); p != nil {
			u, err = nil, fmt.Errorf("%w: LoadUser panicked: %v", errLoadUser, p)
		}
		if err != nil {
			i.logger.Error(err.Error(), "path", requestPath(c))
		}
	}()
	if u, err = i.cfg.LoadUser(lc); err != nil {
		return nil, fmt.Errorf("%w: %w", errLoadUser, err)
	} else if u != nil {
		if u, err = u.normalized(); err != nil {
			return nil, fmt.Errorf("%w: LoadUser returned an invalid user: %w", errLoadUser, err)
		}
	}
	return u, nil
}

func sessionOf(c *gin.Context) (sessions.Session, bool) {
	if c == nil {
		return nil, false
	}
	v, _ := c.Get(sessions.DefaultKey)
	s, ok := v.(sessions.Session)
	return s, ok
}
