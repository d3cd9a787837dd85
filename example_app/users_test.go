package main

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestAuthenticate(t *testing.T) {
	s, err := newUserStore(demoAccounts(), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range demoAccounts() {
		u, err := s.authenticate(a.User.Username, a.Password)
		if err != nil {
			t.Errorf("%s: %v", a.User.Username, err)
			continue
		}
		if u.ID != a.User.ID || u.Staff != a.User.Staff || u.Superuser != a.User.Superuser || !slices.Equal(u.Groups, a.User.Groups) {
			t.Errorf("%s logs in as %+v, want %+v", a.User.Username, u, a.User)
		}
	}
	for _, tc := range []struct{ username, password string }{
		{"user", "wrong"},
		{"user", ""},
		{"nobody", "user-demo"},
		{"", ""},
		{"USER", "user-demo"},
		{"admin", "user-demo"},
	} {
		if _, err := s.authenticate(tc.username, tc.password); !errors.Is(err, errBadLogin) {
			t.Errorf("authenticate(%q, %q) = %v, want errBadLogin", tc.username, tc.password, err)
		}
	}
}

func TestUserStoreKeepsHashesNotPasswords(t *testing.T) {
	s, err := newUserStore(demoAccounts(), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for name, su := range s.byName {
		if bcrypt.CompareHashAndPassword(su.hash, []byte(password(t, name))) != nil {
			t.Errorf("%s: the stored value is not a bcrypt hash of the password", name)
		}
	}
}

func TestAuthenticateReturnsACopy(t *testing.T) {
	s, err := newUserStore(demoAccounts(), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := s.authenticate("editor", "editor-demo")
	u.Groups[0] = "admins"
	again, _ := s.authenticate("editor", "editor-demo")
	if again.Groups[0] != editorsGroup {
		t.Errorf("changing a returned user changed the store: %v", again.Groups)
	}
}

func TestNewUserStoreRefusesDuplicates(t *testing.T) {
	accounts := append(demoAccounts(), demoAccounts()[0])
	if _, err := newUserStore(accounts, bcrypt.MinCost); err == nil {
		t.Error("a duplicate username was accepted")
	}
}
