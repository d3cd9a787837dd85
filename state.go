package instant

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
)

// stateKey keys the per-request state: in the gin context (c.Set) and, with
// one context.WithValue, in the request's context.Context.
type stateKey struct{}

// loadingKey marks the *gin.Context and context handed to LoadUser, so
// that LoadUser asking for the current user gets nil instead of waiting
// for itself.
type loadingKey struct{}

// reqState is what Session records about one request: the Instant and, on
// first use, the user. The user is loaded at most once; callers from other
// goroutines wait for a load in flight, and the end of the request waits
// for it too, so that nothing reads the *gin.Context that gin hands to the
// next request.
type reqState struct {
	inst *Instant

	// origin is the request's *gin.Context, kept to be compared with, never
	// read: gin hands it to later requests.
	origin *gin.Context

	mu      sync.Mutex
	c       *gin.Context  // origin while the request runs; nil once it is over
	done    bool          // the request is over
	loaded  bool          // user and err are final
	loading chan struct{} // while LoadUser runs; closed when it returns
	user    *User         // shared (with the user cache): hand out clones only
	err     error         // wraps ErrLoadUser
}

// begin records i and a new request state on c and on c.Request's context.
func (i *Instant) begin(c *gin.Context) *reqState {
	st := &reqState{inst: i, origin: c, c: c}
	c.Set(contextKey, i)
	c.Set(stateKey{}, st)
	if c.Request != nil {
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), stateKey{}, st))
	}
	return st
}

// finish ends the request: it waits for a LoadUser in flight, then forgets
// the *gin.Context, which gin reuses. A user not asked for by now stays
// unknown (nil) for whoever asks later.
func (st *reqState) finish() {
	st.mu.Lock()
	st.done = true
	wait := st.loading
	st.mu.Unlock()
	if wait != nil {
		<-wait
	}
	st.mu.Lock()
	st.c = nil
	st.mu.Unlock()
}

// stateOfGin returns the state Session recorded on c (nil outside Session)
// and whether c is the one handed to LoadUser.
func stateOfGin(c *gin.Context) (st *reqState, reentrant bool) {
	v, ok := c.Get(stateKey{})
	if !ok {
		return nil, false
	}
	st, _ = v.(*reqState)
	if st != nil {
		if l, ok := c.Get(loadingKey{}); ok && l == st {
			reentrant = true
		}
	}
	return st, reentrant
}

// stateOfContext is stateOfGin for a context.Context.
func stateOfContext(ctx context.Context) (st *reqState, reentrant bool) {
	st, _ = ctx.Value(stateKey{}).(*reqState)
	if st != nil {
		reentrant = ctx.Value(loadingKey{}) == st
	}
	return st, reentrant
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
		abortJSON(c, http.StatusInternalServerError, errLoadUser.Error())
		return nil, false
	case u == nil && loginRequired:
		abortJSON(c, http.StatusUnauthorized, ErrLoginRequired.Error())
		return nil, false
	}
	return u, true
}

// load returns the request's user (nil for anonymous), loading it on first
// use. The result is shared: hand out clones. reentrant is true for
// LoadUser asking about its own request, which gets nil rather than wait
// for itself.
func (st *reqState) load(reentrant bool) (*User, error) {
	st.mu.Lock()
	for !st.loaded {
		if st.loading != nil {
			if reentrant {
				st.mu.Unlock()
				return nil, nil
			}
			wait := st.loading
			st.mu.Unlock()
			<-wait
			st.mu.Lock()
			continue
		}
		if st.done || st.c == nil {
			st.mu.Unlock()
			return nil, nil // never asked during the request: unknown
		}
		if st.inst.cfg.LoadUser == nil {
			st.user, st.loaded = st.inst.sessionUser(st.c), true
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
	u, err := st.user, st.err
	st.mu.Unlock()
	return u, err
}

// set records the user that Login or Logout just wrote.
func (st *reqState) set(u *User) {
	st.mu.Lock()
	st.loaded, st.user, st.err = true, u, nil
	st.mu.Unlock()
}

// sessionUser decodes the user Login wrote into c's session.
func (i *Instant) sessionUser(c *gin.Context) *User {
	s, ok := sessionOf(c)
	if !ok {
		return nil
	}
	v := s.Get(sessionKey)
	raw, _ := v.(string)
	u := i.users.decode(raw)
	if u == nil && v != nil {
		i.logger.Debug("instant: session user does not decode; treated as anonymous")
	}
	return u
}

// loadUser calls Config.LoadUser with a copy of c marked as LoadUser's own
// (so that it may ask for the current user and get nil). Its error, a
// panic in it, or an invalid user becomes an error wrapping errLoadUser,
// logged once, here. The user is normalized: LoadUser may keep and change
// what it returned.
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
	u, err = i.cfg.LoadUser(lc)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errLoadUser, err)
	case u == nil:
		return nil, nil
	}
	if err := u.validate(); err != nil {
		return nil, fmt.Errorf("%w: LoadUser returned an invalid user: %w", errLoadUser, err)
	}
	if u, err = u.normalized(); err != nil {
		return nil, fmt.Errorf("%w: LoadUser returned an invalid user: %w", errLoadUser, err)
	}
	return u, nil
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
