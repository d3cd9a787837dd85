package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
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
	// maxLoginsPerUser bounds the logins the server keeps for one user:
	// the demo's passwords are public, so anyone may log in again and
	// again. Each user's oldest login makes room for their newest; no
	// login ever ends another user's.
	maxLoginsPerUser = 10
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
// the user and the time each expires. It keeps at most perUser logins of
// each user, so it holds at most perUser logins per account. It lives in
// memory: a restart of the demo logs everyone out. It is safe for
// concurrent use.
type loginRegistry struct {
	mu      sync.Mutex
	ttl     time.Duration
	perUser int
	now     func() time.Time
	live    map[string]login    // login ID → login
	byUser  map[string][]string // user ID → their login IDs, oldest first
}

// login is one login the registry keeps.
type login struct {
	user   string
	expiry time.Time
}

func newLoginRegistry(ttl time.Duration, perUser int) *loginRegistry {
	return &loginRegistry{
		ttl: ttl, perUser: perUser, now: time.Now,
		live: map[string]login{}, byUser: map[string][]string{},
	}
}

// start records a new login of the user userID and returns its ID. The
// user's expired logins are forgotten; when the user still has perUser
// logins, their oldest ends. Other users' logins are never touched.
func (r *loginRegistry) start(userID string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	id := hex.EncodeToString(b[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ids := r.byUser[userID]
	// Logins of one user expire in the order they started.
	for len(ids) > 0 && !now.Before(r.live[ids[0]].expiry) {
		delete(r.live, ids[0])
		ids = ids[1:]
	}
	for len(ids) >= r.perUser {
		delete(r.live, ids[0])
		ids = ids[1:]
	}
	r.live[id] = login{user: userID, expiry: now.Add(r.ttl)}
	r.byUser[userID] = append(ids, id)
	return id
}

// valid reports whether id is a login that has neither ended nor expired.
func (r *loginRegistry) valid(id string) bool {
	if id == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.live[id]
	if ok && !r.now().Before(l.expiry) {
		r.forget(id, l.user)
		return false
	}
	return ok
}

// end forgets the login id.
func (r *loginRegistry) end(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.live[id]; ok {
		r.forget(id, l.user)
	}
}

// forget removes the login id of user; r.mu is held.
func (r *loginRegistry) forget(id, user string) {
	delete(r.live, id)
	ids := slices.DeleteFunc(r.byUser[user], func(s string) bool { return s == id })
	if len(ids) == 0 {
		delete(r.byUser, user)
		return
	}
	r.byUser[user] = ids
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
// then records a new login of the user userID in it and returns its ID.
// instant.Login saves the session.
func (s *site) startLogin(c *gin.Context, userID string) string {
	sess := sessions.Default(c)
	if id, ok := sess.Get(loginIDKey).(string); ok {
		s.logins.end(id)
	}
	sess.Clear()
	id := s.logins.start(userID)
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
