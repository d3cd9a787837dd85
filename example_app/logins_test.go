package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// endAll ends every login, as if each had expired.
func (r *loginRegistry) endAll() {
	r.mu.Lock()
	clear(r.live)
	clear(r.byUser)
	r.mu.Unlock()
}

// sessionCookie is the session cookie that r sets, or nil.
func sessionCookie(r response) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionName {
			return c
		}
	}
	return nil
}

// replay sends a request carrying only the given session cookie value, as
// someone who copied it would.
func replay(t *testing.T, b *browser, method, path, value string) response {
	t.Helper()
	return b.do(method, path, nil, map[string]string{"Cookie": sessionName + "=" + value, "Sec-Fetch-Site": "same-origin"})
}

// replayedUser is the username that a copy of the cookie logs in as, or
// "" when it logs in no one.
func replayedUser(t *testing.T, b *browser, value string) string {
	t.Helper()
	r := replay(t, b, http.MethodGet, "/instant/channels", value)
	var got struct {
		User *struct {
			Username string `json:"username"`
		} `json:"user"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /instant/channels: %d %s", r.status, r.body)
	}
	if got.User == nil {
		return ""
	}
	return got.User.Username
}

// TestLogoutEndsTheSession: after a logout, the cookie is expired, the
// session emptied, and a copy of the cookie taken before the logout
// (replayed) no longer logs anyone in.
func TestLogoutEndsTheSession(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	r := b.postForm("/login", url.Values{"username": {"staff"}, "password": {"staff-demo"}})
	login := sessionCookie(r)
	if r.status != http.StatusSeeOther || login == nil || login.Value == "" {
		t.Fatalf("login: %d, cookie %v", r.status, login)
	}
	if login.MaxAge != int((12 * time.Hour).Seconds()) {
		t.Errorf("session cookie Max-Age %d, want 12 hours", login.MaxAge)
	}
	stranger := newBrowser(t, srv) // a client without cookies of its own
	if replayedUser(t, stranger, login.Value) != "staff" {
		t.Fatal("the cookie does not log in before the logout")
	}

	r = b.postForm("/logout", nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("POST /logout: %d", r.status)
	}
	out := sessionCookie(r)
	if out == nil || out.MaxAge >= 0 || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout does not expire the cookie: %q", r.header.Get("Set-Cookie"))
	}
	if user, _ := b.channels(); user != nil {
		t.Errorf("after logout the browser is %v", user)
	}

	// The cookie taken before the logout, replayed.
	if u := replayedUser(t, stranger, login.Value); u != "" {
		t.Errorf("the old cookie still logs in after logout: %v", u)
	}
	if r := replay(t, stranger, http.MethodGet, "/broadcast", login.Value); r.status != http.StatusSeeOther {
		t.Errorf("GET /broadcast with the old cookie: %d, want 303 to the login page", r.status)
	}
	r = stranger.do(http.MethodPost, "/broadcast", strings.NewReader("message=x&target=site_public"), map[string]string{
		"Cookie": sessionName + "=" + login.Value, "Sec-Fetch-Site": "same-origin",
		"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
	})
	if r.status != http.StatusUnauthorized {
		t.Errorf("POST /broadcast with the old cookie: %d, want 401", r.status)
	}
	r = stranger.do(http.MethodPost, "/instant/subscription_token", strings.NewReader(`{"channel":"$site_staff"}`), map[string]string{
		"Cookie": sessionName + "=" + login.Value, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json",
	})
	if r.status == http.StatusOK {
		t.Errorf("the old cookie still gets a $site_staff token: %s", r.body)
	}
}

// TestLoginAgainEndsThePreviousLogin: logging in as someone else in the
// same browser ends the first login; its cookie no longer works.
func TestLoginAgainEndsThePreviousLogin(t *testing.T) {
	st, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	first := sessionCookie(b.postForm("/login", url.Values{"username": {"admin"}, "password": {"admin-demo"}}))
	second := sessionCookie(b.postForm("/login", url.Values{"username": {"user"}, "password": {"user-demo"}}))
	if first == nil || second == nil {
		t.Fatal("a login set no cookie")
	}
	stranger := newBrowser(t, srv)
	if u := replayedUser(t, stranger, first.Value); u != "" {
		t.Errorf("the first login's cookie still logs in: %v", u)
	}
	if u := replayedUser(t, stranger, second.Value); u != "user" {
		t.Errorf("the second login's cookie logs in as %v, want user", u)
	}
	if n := st.logins.count(); n != 1 {
		t.Errorf("%d logins kept, want 1", n)
	}
}

// TestSessionsEndWithTheServer: a new server (a restart, same cookie
// keys) does not take the logins of the old one.
func TestSessionsEndWithTheServer(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	c := sessionCookie(newBrowser(t, srv).postForm("/login", url.Values{"username": {"admin"}, "password": {"admin-demo"}}))
	_, srv2 := startSite(t, noCentrifugo)
	if u := replayedUser(t, newBrowser(t, srv2), c.Value); u != "" {
		t.Errorf("a restarted site took the old login: %v", u)
	}
}

// TestOneUsersLoginsEndNoOtherUsers: logging in again and again (the
// demo's passwords are public) ends only the oldest logins of the same
// user, never another user's. Before the registry was bounded per user,
// 10,000 logins of one account logged the admin out.
func TestOneUsersLoginsEndNoOtherUsers(t *testing.T) {
	st, srv := startSite(t, noCentrifugo)
	admin := sessionCookie(newBrowser(t, srv).postForm("/login", url.Values{"username": {"admin"}, "password": {"admin-demo"}}))
	var users []*http.Cookie
	for range maxLoginsPerUser + 1 {
		c := sessionCookie(newBrowser(t, srv).postForm("/login", url.Values{"username": {"user"}, "password": {"user-demo"}}))
		if c == nil {
			t.Fatal("a login set no cookie")
		}
		users = append(users, c)
	}
	stranger := newBrowser(t, srv)
	if u := replayedUser(t, stranger, admin.Value); u != "admin" {
		t.Errorf("after %d logins of user, the admin's login is %q", len(users), u)
	}
	if u := replayedUser(t, stranger, users[0].Value); u != "" {
		t.Errorf("user's oldest login still logs in as %q after %d newer ones", u, maxLoginsPerUser)
	}
	if u := replayedUser(t, stranger, users[1].Value); u != "user" {
		t.Errorf("user's second login logs in as %q, want user", u)
	}

	// 10,000 more logins of user, as the login handler records them.
	user := demoAccounts()[0].User.ID
	for range 10000 {
		st.logins.start(user)
	}
	if u := replayedUser(t, stranger, admin.Value); u != "admin" {
		t.Errorf("after 10,000 logins of user, the admin's login is %q", u)
	}
	if n := st.logins.count(); n != maxLoginsPerUser+1 {
		t.Errorf("%d logins kept, want %d of user and the admin's", n, maxLoginsPerUser+1)
	}
}

func TestLoginRegistry(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r := newLoginRegistry(time.Hour, 3)
	r.now = func() time.Time { return now }
	u, v := "u", "v"
	valid := func(id string) bool { return r.user(id) != "" }

	a := r.start(u)
	if len(a) != 32 || !valid(a) || valid("") || valid("nope") {
		t.Fatalf("a fresh login %q is not valid, or an unknown one is", a)
	}
	if got := r.user(a); got != "u" {
		t.Fatalf("the login's user is %q", got)
	}
	r.end(a)
	if valid(a) {
		t.Error("an ended login is still valid")
	}
	r.end(a) // ending twice is harmless

	b := r.start(u)
	now = now.Add(59 * time.Minute)
	if !valid(b) {
		t.Error("a login is no longer valid before its hour is up")
	}
	now = now.Add(time.Minute)
	if valid(b) {
		t.Error("a login is still valid after its hour")
	}
	if r.count() != 0 {
		t.Errorf("%d logins kept after the only one expired, want 0", r.count())
	}

	// A user with perUser logins: their oldest goes first, and only theirs.
	other := r.start(v)
	var ids []string
	for range 4 {
		ids = append(ids, r.start(u))
		now = now.Add(time.Second)
	}
	var kept []bool
	for _, id := range ids {
		kept = append(kept, valid(id))
	}
	if !slices.Equal(kept, []bool{false, true, true, true}) || !valid(other) || r.count() != 4 {
		t.Errorf("u's logins valid %v, v's %v, %d kept; want u's oldest dropped, v's kept, 4 in all", kept, valid(other), r.count())
	}
	// Ending a login in the middle frees its place.
	r.end(ids[2])
	r.start(u)
	if !valid(ids[1]) || !valid(ids[3]) {
		t.Error("a new login ended another although an ended one had made room")
	}
	// A user's expired logins are dropped when they log in again.
	now = now.Add(2 * time.Hour)
	r.start(u)
	if r.count() != 2 { // the new one, and v's expired one until it is looked at
		t.Errorf("%d logins kept after u's others expired, want 2", r.count())
	}
	if valid(other) || r.count() != 1 {
		t.Errorf("v's expired login is valid or kept (%d kept)", r.count())
	}
}
