package main

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/gin-instant/instant"
	"golang.org/x/crypto/bcrypt"
)

// editorsGroup is the demo's one group, whose members read editorsChannel.
const (
	editorsGroup   = "editors"
	editorsChannel = "$site_editors"
)

// account is a demo login: a password and the instant.User it logs in as.
type account struct {
	Password string
	Role     string // shown on the login page
	User     instant.User
}

// demoAccounts shows every role of the plugin. The passwords are printed
// at startup and shown on the login page: this is a demo on 127.0.0.1.
func demoAccounts() []account {
	return []account{
		{Password: "user-demo", Role: "plain user", User: instant.User{ID: "1", Username: "user", Info: map[string]any{"name": "Una User"}}},
		{Password: "editor-demo", Role: "member of the editors group", User: instant.User{ID: "2", Username: "editor", Groups: []string{editorsGroup}, Info: map[string]any{"name": "Ed Editor"}}},
		{Password: "staff-demo", Role: "staff", User: instant.User{ID: "3", Username: "staff", Staff: true, Info: map[string]any{"name": "Stef Staff"}}},
		{Password: "admin-demo", Role: "superuser", User: instant.User{ID: "4", Username: "admin", Staff: true, Superuser: true, Info: map[string]any{"name": "Ada Admin"}}},
	}
}

// errBadLogin is the one answer to a wrong username or a wrong password,
// so that a visitor cannot tell which accounts exist.
var errBadLogin = errors.New("wrong username or password")

// userStore checks logins against bcrypt hashes of the passwords. It also
// lists the demo accounts, passwords included, because the demo shows them
// on its login page; a real site would keep only the hashes. Apart from
// its atomic counter, it is read-only after newUserStore, so safe for
// concurrent use.
type userStore struct {
	byName map[string]storedUser
	list   []account // for the login page and the banner: role and username
	dummy  []byte    // a hash compared against for unknown users
	// compared counts the passwords checked with bcrypt (the tests read it).
	compared atomic.Int64
}

type storedUser struct {
	hash []byte
	user instant.User
}

// newUserStore hashes each account's password with bcrypt at cost (use
// bcrypt.DefaultCost; tests use bcrypt.MinCost).
func newUserStore(accounts []account, cost int) (*userStore, error) {
	s := &userStore{byName: make(map[string]storedUser, len(accounts))}
	for _, a := range accounts {
		if _, dup := s.byName[a.User.Username]; dup || a.User.Username == "" {
			return nil, fmt.Errorf("account %q: empty or duplicate username", a.User.Username)
		}
		h, err := bcrypt.GenerateFromPassword([]byte(a.Password), cost)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", a.User.Username, err)
		}
		s.byName[a.User.Username] = storedUser{hash: h, user: a.User}
		s.list = append(s.list, a)
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
	hash := su.hash
	if !ok {
		hash = s.dummy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !ok || err != nil {
		return instant.User{}, errBadLogin
	}
	u := su.user
	u.Groups = append([]string(nil), su.user.Groups...)
	return u, nil
}

// accounts lists the demo accounts in their order, with clear passwords,
// for the login page and the startup banner.
func (s *userStore) accounts() []account { return s.list }

// defaultBcryptCost hashes the demo passwords at startup. A variable
// only so that the tests of run, which hash them five times under the race
// detector, may lower it.
var defaultBcryptCost = bcrypt.DefaultCost
