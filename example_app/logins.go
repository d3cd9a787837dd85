package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// The session cookie is signed and encrypted, but it holds the session
// itself: a copy of it taken before a logout would still log in. So each
// login gets a random ID, kept in the session and in loginRegistry on the
// server; a logout forgets the ID, and a session whose ID the server does
// not know is anonymous.
const (
	// sessionMaxAge is the life of the session cookie and of a login.
	sessionMaxAge = 12 * time.Hour
	// loginIDKey is the session value that holds the login's ID.
	loginIDKey = "demo.login"
	// maxLogins bounds the logins the server keeps: the demo's passwords
	// are public, so anyone may log in again and again.
	maxLogins = 10000
)

// sessionOptions are the session cookie's options; maxAge -1 expires it.
func sessionOptions(maxAge int) sessions.Options {
	return sessions.Options{
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// loginRegistry holds the IDs of the logins that have not ended, with
// the time each expires. It lives in memory: a restart of the demo logs
// everyone out. It is safe for concurrent use.
type loginRegistry struct {
	mu   sync.Mutex
	ttl  time.Duration
	max  int
	now  func() time.Time
	live map[string]time.Time // login ID → expiry
}

func newLoginRegistry(ttl time.Duration, max int) *loginRegistry {
	return &loginRegistry{ttl: ttl, max: max, now: time.Now, live: map[string]time.Time{}}
}

// start records a new login and returns its ID. When the registry is
// full, the login closest to its expiry is dropped first.
func (r *loginRegistry) start() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	id := hex.EncodeToString(b[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for k, exp := range r.live {
		if !now.Before(exp) {
			delete(r.live, k)
		}
	}
	for len(r.live) >= r.max {
		oldest, first := "", time.Time{}
		for k, exp := range r.live {
			if oldest == "" || exp.Before(first) {
				oldest, first = k, exp
			}
		}
		delete(r.live, oldest)
	}
	r.live[id] = now.Add(r.ttl)
	return id
}

// valid reports whether id is a login that has neither ended nor expired.
func (r *loginRegistry) valid(id string) bool {
	if id == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	exp, ok := r.live[id]
	if ok && !r.now().Before(exp) {
		delete(r.live, id)
		return false
	}
	return ok
}

// end forgets the login id.
func (r *loginRegistry) end(id string) {
	r.mu.Lock()
	delete(r.live, id)
	r.mu.Unlock()
}

// count is the number of logins kept, expired ones included.
func (r *loginRegistry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}

// checkLogin runs between sessions.Sessions and instant's Session: a
// session that holds a user but no login the server knows (logged out,
// expired, or from before a restart) is emptied for this request, so
// that the request is anonymous, on the site's pages and on instant's
// token routes alike.
func (s *site) checkLogin(c *gin.Context) {
	sess := sessions.Default(c)
	if sess.Get(instant.SessionKey) != nil || sess.Get(loginIDKey) != nil {
		if id, _ := sess.Get(loginIDKey).(string); !s.logins.valid(id) {
			sess.Clear()
		}
	}
	c.Next()
}

// startLogin empties the session (ending the login it held, if any),
// then records a new login in it and returns its ID. instant.Login saves
// the session.
func (s *site) startLogin(c *gin.Context) string {
	sess := sessions.Default(c)
	if id, ok := sess.Get(loginIDKey).(string); ok {
		s.logins.end(id)
	}
	sess.Clear()
	id := s.logins.start()
	sess.Set(loginIDKey, id)
	return id
}

// endLogin ends the session's login, empties the session and sets its
// cookie to expire with this response; instant.Logout saves it.
func (s *site) endLogin(c *gin.Context) {
	sess := sessions.Default(c)
	if id, ok := sess.Get(loginIDKey).(string); ok {
		s.logins.end(id)
	}
	sess.Clear()
	sess.Options(sessionOptions(-1))
}
