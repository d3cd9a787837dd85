package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gin-instant/instant"
	"golang.org/x/crypto/bcrypt"
)

// The demo's groups: the members of each read its channel. The admin page
// moves users between them.
const (
	editorsGroup     = "editors"
	editorsChannel   = "$site_editors"
	reviewersGroup   = "reviewers"
	reviewersChannel = "$site_reviewers"
)

// demoGroups are the groups, in the order the admin page offers them.
var demoGroups = []string{editorsGroup, reviewersGroup}

// account is a demo login: a password and the instant.User it logs in as.
type account struct {
	Password string
	User     instant.User
}

// Role is the account's role in words, for the login page and the banner.
func (a account) Role() string { return roleOf(a.User) }

// roleOf describes what u is: superuser, staff, a group's member or a
// plain user.
func roleOf(u instant.User) string {
	switch {
	case u.Superuser:
		return "superuser"
	case u.Staff && len(u.Groups) > 0:
		return "staff, member of the " + strings.Join(u.Groups, ", ") + " group"
	case u.Staff:
		return "staff"
	case len(u.Groups) > 0:
		return "member of the " + strings.Join(u.Groups, ", ") + " group"
	default:
		return "plain user"
	}
}

// demoAccounts shows every role of the plugin. The passwords are printed
// at startup and shown on the login page: this is a demo on 127.0.0.1.
func demoAccounts() []account {
	return []account{
		{Password: "user-demo", User: instant.User{ID: "1", Username: "user", Info: map[string]any{"name": "Una User"}}},
		{Password: "editor-demo", User: instant.User{ID: "2", Username: "editor", Groups: []string{editorsGroup}, Info: map[string]any{"name": "Ed Editor"}}},
		{Password: "staff-demo", User: instant.User{ID: "3", Username: "staff", Staff: true, Info: map[string]any{"name": "Stef Staff"}}},
		{Password: "admin-demo", User: instant.User{ID: "4", Username: "admin", Staff: true, Superuser: true, Info: map[string]any{"name": "Ada Admin"}}},
	}
}

// errBadLogin is the one answer to a wrong username or a wrong password,
// so that a visitor cannot tell which accounts exist.
var errBadLogin = errors.New("wrong username or password")

// Errors of the store's changes (the admin page shows them).
var (
	errNoSuchUser     = errors.New("there is no such user")
	errNoSuchGroup    = errors.New("there is no such group")
	errSuperuserStaff = errors.New("a superuser is always staff")
)

// userStore is the site's users: it checks logins against bcrypt hashes
// of the passwords, and holds each user's roles, which the admin page
// changes (setStaff, setGroup). It also lists the demo accounts,
// passwords included, because the demo shows them on its login page; a
// real site would keep only the hashes. It is safe for concurrent use.
type userStore struct {
	mu     sync.RWMutex           // guards the users in byName
	byName map[string]*storedUser // the hashes never change
	names  []string               // the usernames in the accounts' order
	pass   map[string]string      // username → clear password, for the login page
	byID   map[string]*storedUser // the same users by ID
	dummy  []byte                 // a hash compared against for unknown users
	// compared counts the passwords checked with bcrypt (the tests read it).
	compared atomic.Int64
}

type storedUser struct {
	hash []byte
	user instant.User // guarded by userStore.mu
}

// newUserStore hashes each account's password with bcrypt at cost (use
// bcrypt.DefaultCost; tests use bcrypt.MinCost).
func newUserStore(accounts []account, cost int) (*userStore, error) {
	s := &userStore{byName: map[string]*storedUser{}, pass: map[string]string{}, byID: map[string]*storedUser{}}
	for _, a := range accounts {
		_, dupName := s.byName[a.User.Username]
		_, dupID := s.byID[a.User.ID]
		if dupName || dupID || a.User.Username == "" || a.User.ID == "" {
			return nil, fmt.Errorf("account %q: empty or duplicate username or ID", a.User.Username)
		}
		h, err := bcrypt.GenerateFromPassword([]byte(a.Password), cost)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", a.User.Username, err)
		}
		su := &storedUser{hash: h, user: copyUser(a.User)}
		s.byName[a.User.Username], s.byID[a.User.ID] = su, su
		s.names = append(s.names, a.User.Username)
		s.pass[a.User.Username] = a.Password
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("no such user"), cost)
	if err != nil {
		return nil, err
	}
	s.dummy = dummy
	return s, nil
}

// authenticate returns the user whose username and password these are, or
// errBadLogin. It takes about as long for an unknown username as for a
// wrong password.
func (s *userStore) authenticate(username, password string) (instant.User, error) {
	s.compared.Add(1)
	su, ok := s.byName[username]
	hash := s.dummy
	if ok {
		hash = su.hash
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !ok || err != nil {
		return instant.User{}, errBadLogin
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return copyUser(su.user), nil
}

// userByID returns the user with this ID as they are now, or false.
func (s *userStore) userByID(id string) (instant.User, bool) {
	su, ok := s.byID[id]
	if !ok {
		return instant.User{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return copyUser(su.user), true
}

// accounts lists the demo accounts in their order, as they are now, with
// clear passwords, for the login page, the admin page and the banner.
func (s *userStore) accounts() []account {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]account, 0, len(s.names))
	for _, name := range s.names {
		out = append(out, account{Password: s.pass[name], User: copyUser(s.byName[name].user)})
	}
	return out
}

// setStaff makes the user named username staff or not, and returns them
// as they are now. A superuser stays staff (errSuperuserStaff).
func (s *userStore) setStaff(username string, staff bool) (instant.User, error) {
	return s.change(username, func(u *instant.User) error {
		if u.Superuser {
			return errSuperuserStaff
		}
		u.Staff = staff
		return nil
	})
}

// setGroup moves the user named username into group, one of demoGroups,
// out of any other; "" leaves them in none. It returns them as they are
// now.
func (s *userStore) setGroup(username, group string) (instant.User, error) {
	if group != "" && !slices.Contains(demoGroups, group) {
		return instant.User{}, errNoSuchGroup
	}
	return s.change(username, func(u *instant.User) error {
		u.Groups = nil
		if group != "" {
			u.Groups = []string{group}
		}
		return nil
	})
}

// change applies f to the user named username, unless f fails, and
// returns a copy of them as they are now.
func (s *userStore) change(username string, f func(*instant.User) error) (instant.User, error) {
	su, ok := s.byName[username]
	if !ok {
		return instant.User{}, errNoSuchUser
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := copyUser(su.user)
	if err := f(&u); err != nil {
		return instant.User{}, err
	}
	su.user = u
	return copyUser(u), nil
}

// copyUser copies u's groups, so that a copy may be changed freely. (Info
// is never changed.)
func copyUser(u instant.User) instant.User {
	u.Groups = slices.Clone(u.Groups)
	return u
}

// defaultBcryptCost hashes the demo passwords at startup. A variable
// only so that the tests of run, which hash them five times under the race
// detector, may lower it.
var defaultBcryptCost = bcrypt.DefaultCost
