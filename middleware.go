package instant

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
)

// contextKey is promised to users (c.MustGet("instant")); loadingKey marks
// the contexts handed to LoadUser.
const contextKey = "instant"

type stateKey struct{}
type loadingKey struct{}

// Session returns the middleware that records the Instant and, on first
// use, the session user. It needs sessions.Sessions before it (else a 500
// and a log line). It only annotates; the routes and RequireUser decide.
func (i *Instant) Session() gin.HandlerFunc {
	if i == nil {
		return func(c *gin.Context) { failServer(c, nil, ErrNotInstalled) }
	}
	return func(c *gin.Context) { i.track(c, c.Next) }
}

// Session is inst.Session() of the package default Instant (ConfigFromEnv).
// Call it at startup: it panics, naming the variables to set, without one.
func Session() gin.HandlerFunc { return packageDefault().Session() }

// Default returns the Instant Session recorded for the request of ctx (its
// *gin.Context, a Copy, or the request's context; a context built on c
// itself answers nil, as CurrentUser), or nil, whose methods return
// ErrNotInstalled.
func Default(ctx context.Context) *Instant {
	if st, _, _ := stateOf(ctx, false); st != nil {
		return st.inst
	}
	return nil
}

// CurrentUser returns a copy of the request's logged-in user, or nil
// (anonymous, outside Session, LoadUser failed). ctx is the handler's
// *gin.Context; on other goroutines, c.Copy() or c.Request.Context(), which
// answer once the handler loaded the user; a context on c itself answers nil.
func CurrentUser(ctx context.Context) *User {
	_, u, _ := stateOf(ctx, true)
	return u.clone()
}

// RequireUser is a middleware that answers 401 to anonymous visitors (500
// when LoadUser failed).
func RequireUser() gin.HandlerFunc { return require(false) }

// RequireStaff is RequireUser that also answers 403 to users neither staff
// nor superuser.
func RequireStaff() gin.HandlerFunc { return require(true) }

func require(staff bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if u, ok := requestUser(c, true); ok && staff && !u.IsStaff() {
			abortJSON(c, http.StatusForbidden, "instant: staff only")
		} else if ok {
			c.Next()
		}
	}
}

// requestUser returns c's user, or answers (500 outside Session or when
// LoadUser failed, 401 for anonymous if loginRequired) and returns false.
func requestUser(c *gin.Context, loginRequired bool) (u *User, ok bool) {
	st, u, err := stateOf(c, true)
	switch {
	case st == nil:
		failServer(c, nil, ErrNotInstalled)
	case err != nil:
		abortJSON(c, http.StatusInternalServerError, errLoadUser.Error())
	case u == nil && loginRequired:
		abortJSON(c, http.StatusUnauthorized, ErrLoginRequired.Error())
	default:
		return u, true
	}
	return nil, false
}

// reqState is what Session records about one request: the Instant and the
// user, loaded at most once, before the request ends and gin reuses c.
type reqState struct {
	inst    *Instant
	c       *gin.Context // the request's, read only until done
	mu      sync.Mutex
	done    bool           // the request is over
	loaded  bool           // user and err are final
	loading bool           // LoadUser is running,
	wg      sync.WaitGroup // done when it returns
	user    *User          // shared: hand out clones only
	err     error          // wraps errLoadUser
}

// track records a new request state on c and its request, runs next, then
// waits for a LoadUser in flight. Without sessions.Sessions, a 500.
func (i *Instant) track(c *gin.Context, next func()) {
	if _, ok := c.Get(sessions.DefaultKey); !ok {
		failServer(c, i, ErrNoSession)
		return
	}
	st := &reqState{inst: i, c: c}
	c.Set(contextKey, i)
	c.Set(stateKey{}, st)
	if c.Request != nil {
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), stateKey{}, st))
	}
	defer func() {
		st.mu.Lock()
		st.done = true // no LoadUser starts now
		st.mu.Unlock()
		st.wg.Wait()
	}()
	next()
}

// stateOf returns ctx's request state (or nil) and, with load, its shared user,
// loaded once. A context on a *gin.Context is never read through its request
// (maybe the next one's); LoadUser's gets nil rather than wait for itself.
func stateOf(ctx context.Context, load bool) (st *reqState, u *User, err error) {
	c, isGin := ctx.(*gin.Context)
	if !isGin && ctx != nil {
		c, _ = ctx.Value(gin.ContextKey).(*gin.Context)
	}
	var mark any
	if c != nil {
		v, _ := c.Get(stateKey{})
		if st, _ = v.(*reqState); st != nil && !isGin && st.c == c {
			return nil, nil, nil
		}
		mark, _ = c.Get(loadingKey{})
	} else if !isGin && ctx != nil {
		st, _ = ctx.Value(stateKey{}).(*reqState)
		mark = ctx.Value(loadingKey{})
	}
	if st == nil || !load {
		return st, nil, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for !st.loaded {
		if st.loading {
			if mark == st {
				return st, nil, nil
			}
			st.mu.Unlock()
			st.wg.Wait()
			st.mu.Lock()
			continue
		}
		if st.done {
			return st, nil, nil // never asked during the request: unknown
		}
		if st.inst.cfg.LoadUser == nil {
			v := sessions.Default(st.c).Get(sessionKey) // track saw the session
			raw, _ := v.(string)
			if st.user = st.inst.users.decode(raw); st.user == nil && v != nil {
				st.inst.cfg.Logger.Debug("instant: session user does not decode; treated as anonymous")
			}
			st.loaded = true
			break
		}
		st.loading = true
		st.wg.Add(1)
		st.mu.Unlock()
		u, err := st.inst.loadUser(st)
		st.mu.Lock()
		if !st.loaded { // Login or Logout may have set it meanwhile
			st.user, st.err, st.loaded = u, err, true
		}
		st.loading = false
		st.wg.Done()
	}
	return st, st.user, st.err
}

// loadUser calls LoadUser with a marked copy of c and normalizes its user
// (LoadUser may keep it); an error, panic or invalid user is logged.
func (i *Instant) loadUser(st *reqState) (u *User, err error) {
	lc := st.c.Copy()
	lc.Set(loadingKey{}, st)
	if lc.Request != nil {
		lc.Request = lc.Request.WithContext(context.WithValue(lc.Request.Context(), loadingKey{}, st))
	}
	defer func() {
		if p := recover(); p != nil {
			u, err = nil, fmt.Errorf("%w: LoadUser panicked: %v", errLoadUser, p)
		}
		if err != nil {
			i.cfg.Logger.Error(err.Error(), "path", requestPath(lc))
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
