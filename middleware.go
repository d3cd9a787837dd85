package instant

import (
	"context"
	"net/http"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
)

// contextKey is the plain gin key under which Session stores the *Instant,
// so that c.MustGet("instant").(*instant.Instant) works. Default(c) is its
// typed form.
const contextKey = "instant"

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

// Session is the package-level middleware: inst.Session() of the package
// default Instant, which the first call of Session or Register builds from
// the environment (ConfigFromEnv) and every later call shares. Call it at
// startup: when the environment does not configure the default (no
// CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY, say), it panics, as
// regexp.MustCompile does, with a message naming the missing variables and
// New's errors, so that the app stops there instead of answering 500 to
// every request. An app that builds its Config in code uses New and the
// methods Session and Register instead.
func Session() gin.HandlerFunc { return packageDefault().Session() }

func (i *Instant) session(c *gin.Context) {
	if _, ok := c.Get(sessions.DefaultKey); !ok {
		failServer(c, i, ErrNoSession)
		return
	}
	st := i.begin(c)
	defer st.finish()
	c.Next()
}

// Default returns the Instant that Session recorded for the request of
// ctx, or nil outside Session. ctx is the handler's *gin.Context (what
// c.MustGet("instant") holds, typed), its Copy, or the request's context
// (c.Request.Context(), or one built on it). Methods of a nil *Instant
// return ErrNotInstalled rather than panic.
func Default(ctx context.Context) *Instant {
	if c, ok := ctx.(*gin.Context); ok {
		if c == nil {
			return nil
		}
		v, _ := c.Get(contextKey)
		i, _ := v.(*Instant)
		return i
	}
	if ctx == nil {
		return nil
	}
	if st, _ := stateOfContext(ctx); st != nil {
		return st.inst
	}
	return nil
}

// CurrentUser returns the logged-in user of the request of ctx, or nil:
// for an anonymous visitor, outside Session, or when LoadUser failed (the
// routes and RequireUser then answer 500). The User is the caller's own
// deep copy.
//
// In a handler, pass its *gin.Context, from the handler's goroutine, as
// everything on c: once the handler returns, gin hands that *gin.Context
// to a later request, and CurrentUser(c) answers for that one. From code that holds only a context, or runs on
// another goroutine, pass c.Request.Context() or c.Copy(): once the
// request has its user, that is safe from any goroutine, during the
// request and after it; callers asking at once wait for one load, and
// once the request is over a caller gets the user only if the request had
// asked for it.
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
//	go func() { audit(ctx, instant.CurrentUser(ctx)) }()
//
// A context built on the handler's *gin.Context (context.WithoutCancel(c),
// say) answers nil, during the handler and after: gin hands that same
// *gin.Context to a later request, and with engine.ContextWithFallback
// its values are those of whatever request it serves now. (Touching a
// *gin.Context after its handler returned is a data race in gin itself,
// whatever is asked of it: hand goroutines c.Copy().)
func CurrentUser(ctx context.Context) *User {
	var st *reqState
	var reentrant bool
	if c, ok := ctx.(*gin.Context); ok {
		// The handler's *gin.Context, or a Copy of it.
		if c == nil {
			return nil
		}
		st, reentrant = stateOfGin(c)
	} else if ctx == nil {
		return nil
	} else if c, ok := ctx.Value(gin.ContextKey).(*gin.Context); ok {
		// A context built on a *gin.Context is looked at as that
		// *gin.Context (gin answers gin.ContextKey without reading the
		// context's fields), never through its request: with
		// engine.ContextWithFallback, those are the values of whatever
		// request it serves now, after the handler maybe the next one.
		if st, reentrant = stateOfGin(c); st != nil && st.isRequestContext(c) {
			return nil
		}
	} else {
		st, reentrant = stateOfContext(ctx)
	}
	if st == nil {
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
