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

// The site keeps its logins itself, as a server-side session store would:
// the session cookie (signed and encrypted) holds only a random login ID,
// and loginRegistry maps it to the user's ID. instant finds the user
// through Config.LoadUser (loadUser below), which reads them from the user
// store at each request: a change of their roles (the admin page) holds
// from the next request on. A logout forgets the login ID, so a copy of
// the cookie taken before logs in no one; so does a restart.
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

// loginRegistry holds the logins that have not ended: for each ID, the
// user's ID and the time it expires. It keeps at most perUser logins of each
// user. It lives in memory: a restart of the demo logs everyone out. It is
// safe for concurrent use.
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
	user   string // the user's ID
	expiry time.Time
}

func newLoginRegistry(ttl time.Duration, perUser int) *loginRegistry {
	return &loginRegistry{
		ttl: ttl, perUser: perUser, now: time.Now,
		live: map[string]login{}, byUser: map[string][]string{},
	}
}

// start records a new login of the user whose ID is user and returns its
// ID. The user's expired
// logins are forgotten; when the user still has perUser logins, their
// oldest ends. Other users' logins are never touched.
func (r *loginRegistry) start(user string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	id := hex.EncodeToString(b[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ids := r.byUser[user]
	// Logins of one user expire in the order they started.
	for len(ids) > 0 && !now.Before(r.live[ids[0]].expiry) {
		delete(r.live, ids[0])
		ids = ids[1:]
	}
	for len(ids) >= r.perUser {
		delete(r.live, ids[0])
		ids = ids[1:]
	}
	r.live[id] = login{user: user, expiry: now.Add(r.ttl)}
	r.byUser[user] = append(ids, id)
	return id
}

// user returns the ID of the user of the login id, or "" when id is no
// login that has neither ended nor expired.
func (r *loginRegistry) user(id string) string {
	if id == "" {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.live[id]
	if !ok {
		return ""
	}
	if !r.now().Before(l.expiry) {
		r.forget(id, l.user)
		return ""
	}
	return l.user
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

// loadUser is the site's instant.Config.LoadUser: the user of the login
// whose ID the session holds, as the user store holds them now, or nil
// (anonymous) when it holds none, or one that ended or expired.
func (s *site) loadUser(c *gin.Context) (*instant.User, error) {
	id, _ := sessions.Default(c).Get(loginIDKey).(string)
	u, ok := s.users.userByID(s.logins.user(id))
	if !ok {
		return nil, nil
	}
	return &u, nil
}

// startLogin ends the login the session held, if any, records a new login
// of u, and saves the session holding only its ID.
func (s *site) startLogin(c *gin.Context, u instant.User) error {
	sess := sessions.Default(c)
	if id, ok := sess.Get(loginIDKey).(string); ok {
		s.logins.end(id)
	}
	sess.Clear()
	id := s.logins.start(u.ID)
	sess.Set(loginIDKey, id)
	if err := sess.Save(); err != nil {
		s.logins.end(id)
		return err
	}
	return nil
}

// endLogin ends the session's login, empties the session and saves it
// with a cookie that expires with this response.
func (s *site) endLogin(c *gin.Context) error {
	sess := sessions.Default(c)
	if id, ok := sess.Get(loginIDKey).(string); ok {
		s.logins.end(id)
	}
	sess.Clear()
	sess.Options(sessionOptions(-1))
	return sess.Save()
}
