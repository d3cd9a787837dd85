package instant

import (
	"context"
	"net/http"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
)

// ContextKey is the plain gin key under which Session stores the *Instant,
// so that c.MustGet("instant").(*instant.Instant) works. Prefer Default(c).
const ContextKey = "instant"

// Session returns the middleware that records the Instant and, on first
// use, the session user for the rest of the request. It needs
// sessions.Sessions (gin-contrib/sessions) before it: without it, the
// request gets a 500 and one log line saying so. It only annotates; the
// routes and RequireUser decide.
func (i *Instant) Session() gin.HandlerFunc {
	if i == nil {
		return func(c *gin.Context) { failServer(c, nil, ErrNotInstalled) }
	}
	return i.session
}

// Session is the package-level middleware, bound to the package default
// Instant (see Configure), resolved at its first request and kept.
func Session() gin.HandlerFunc {
	var pkg packageInstant
	return func(c *gin.Context) {
		inst, err := pkg.get()
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
	st := i.begin(c)
	defer st.finish()
	c.Next()
}

// Default returns the Instant that Session recorded on c, or nil outside
// Session. Methods of a nil *Instant return ErrNotInstalled rather than
// panic.
func Default(c *gin.Context) *Instant {
	if c == nil {
		return nil
	}
	if v, ok := c.Get(ContextKey); ok {
		i, _ := v.(*Instant)
		return i
	}
	return nil
}

// CurrentUser returns the logged-in user of the request c is serving, or
// nil: for an anonymous visitor, outside Session, or when LoadUser failed
// (the routes and RequireUser then answer 500). The User is the caller's
// own deep copy. Call it from the handler's goroutine, as everything on c;
// from another goroutine, use UserFromContext with c.Request.Context() or
// c.Copy().
func CurrentUser(c *gin.Context) *User {
	if c == nil {
		return nil
	}
	st, reentrant := stateOfGin(c)
	if st == nil {
		return nil
	}
	u, _ := st.load(reentrant)
	return u.clone()
}

// FromContext returns the Instant of the request whose context is ctx
// (c.Request.Context(), a *gin.Context or its Copy), or nil.
func FromContext(ctx context.Context) *Instant {
	if ctx == nil {
		return nil
	}
	if c, ok := ctx.(*gin.Context); ok {
		return Default(c)
	}
	if st, _ := stateOfContext(ctx); st != nil {
		return st.inst
	}
	return nil
}

// UserFromContext returns the logged-in user of the request whose context
// is ctx, or nil; a deep copy, as CurrentUser's. Once the request has its
// user, it is safe to call from any goroutine, during the request and
// after it; callers asking at once wait for one load, and once the request
// is over a caller gets the user only if the request had asked for it.
//
// The first load reads the request's session (or hands LoadUser a
// c.Copy()), which gin and gin-contrib/sessions allow only on the
// handler's goroutine, beside the handler's own use of the session and
// the response. So before starting a goroutine that needs the user, ask
// for it on the handler's goroutine (CurrentUser(c), or RequireUser
// before the handler):
//
//	instant.CurrentUser(c) // loads the user, here
//	ctx := c.Request.Context()
//	go func() { audit(ctx, instant.UserFromContext(ctx)) }()
//
// Give it what may outlive the handler: c.Request.Context() or c.Copy().
// Given the *gin.Context of the handler itself, or a context built on it,
// it returns nil, during the handler and after: gin hands that same
// *gin.Context to a later request. In the handler, use CurrentUser(c).
// (Touching a *gin.Context after its handler returned is a data race in
// gin itself, whatever is asked of it: hand goroutines c.Copy().)
func UserFromContext(ctx context.Context) *User {
	if ctx == nil {
		return nil
	}
	var st *reqState
	var reentrant bool
	// A *gin.Context, or a context built on one, is looked at as that
	// *gin.Context (gin answers gin.ContextKey without reading the
	// context's fields), never through its request: with
	// engine.ContextWithFallback, those are the values of whatever request
	// it serves now, after the handler maybe the next one.
	if c, ok := ctx.Value(gin.ContextKey).(*gin.Context); ok {
		if st, reentrant = stateOfGin(c); st == nil || st.isRequestContext(c) {
			return nil
		}
	} else if st, reentrant = stateOfContext(ctx); st == nil {
		return nil
	}
	u, _ := st.load(reentrant)
	return u.clone()
}

// isRequestContext reports whether c is the *gin.Context of st's request
// (rather than a Copy of it).
func (st *reqState) isRequestContext(c *gin.Context) bool { return st.origin == c }

// RequireUser is a middleware that answers 401 to anonymous visitors (and
// 500 when LoadUser failed).
func RequireUser() gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := requestUser(c, true); ok {
			c.Next()
		}
	}
}

// RequireStaff is a middleware that answers 401 to anonymous visitors, 403
// to users who are neither staff nor superusers (and 500 when LoadUser
// failed).
func RequireStaff() gin.HandlerFunc {
	return func(c *gin.Context) {
		u, ok := requestUser(c, true)
		switch {
		case !ok:
		case !u.IsStaff():
			abortJSON(c, http.StatusForbidden, "instant: staff only")
		default:
			c.Next()
		}
	}
}

// requestUser returns c's user for a middleware or a route. On a failure
// it has answered (500 without Session or when LoadUser failed, 401 for
// an anonymous visitor when login is required) and returns ok false.
func requestUser(c *gin.Context, loginRequired bool) (u *User, ok bool) {
	st, reentrant := stateOfGin(c)
	if st == nil {
		failServer(c, nil, ErrNotInstalled)
		return nil, false
	}
	u, err := st.load(reentrant)
	switch {
	case err != nil:
		abortJSON(c, http.StatusInternalServerError, ErrLoadUser.Error())
		return nil, false
	case u == nil && loginRequired:
		abortJSON(c, http.StatusUnauthorized, ErrLoginRequired.Error())
		return nil, false
	}
	return u, true
}
