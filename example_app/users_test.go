package main

import (
	"errors"
	"slices"
	"sync"
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

// TestUserStoreChanges: the store's changes are seen by the next read, the
// users it returns are copies, and reads and changes may run at once.
func TestUserStoreChanges(t *testing.T) {
	s, err := newUserStore(demoAccounts(), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.setGroup("user", reviewersGroup)
	if err != nil || !slices.Equal(u.Groups, []string{reviewersGroup}) {
		t.Fatalf("setGroup: %+v, %v", u, err)
	}
	u.Groups[0] = "admins"
	if now, _ := s.userByID("1"); !slices.Equal(now.Groups, []string{reviewersGroup}) {
		t.Errorf("the store holds %v, want [reviewers] whatever its copies become", now.Groups)
	}
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = s.setStaff("user", k%2 == 0)
				_, _ = s.setGroup("user", demoGroups[k%2])
				if u, ok := s.userByID("1"); !ok || len(u.Groups) != 1 {
					t.Errorf("a read during changes gave %+v", u)
				}
				_ = s.accounts()
			}
		})
	}
	wg.Wait()
}
