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
	_, srv := startSite(t, closedAPIURL(t))
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
	st, srv := startSite(t, closedAPIURL(t))
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
	_, srv := startSite(t, closedAPIURL(t))
	c := sessionCookie(newBrowser(t, srv).postForm("/login", url.Values{"username": {"admin"}, "password": {"admin-demo"}}))
	_, srv2 := startSite(t, closedAPIURL(t))
	if u := replayedUser(t, newBrowser(t, srv2), c.Value); u != "" {
		t.Errorf("a restarted site took the old login: %v", u)
	}
}

func TestLoginRegistry(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r := newLoginRegistry(time.Hour, 3)
	r.now = func() time.Time { return now }

	a := r.start()
	if len(a) != 32 || !r.valid(a) || r.valid("") || r.valid("nope") {
		t.Fatalf("a fresh login %q is not valid, or an unknown one is", a)
	}
	r.end(a)
	if r.valid(a) {
		t.Error("an ended login is still valid")
	}

	b := r.start()
	now = now.Add(59 * time.Minute)
	if !r.valid(b) {
		t.Error("a login is no longer valid before its hour is up")
	}
	now = now.Add(time.Minute)
	if r.valid(b) {
		t.Error("a login is still valid after its hour")
	}

	// Full: the login closest to its expiry goes first.
	var ids []string
	for range 4 {
		ids = append(ids, r.start())
		now = now.Add(time.Second)
	}
	var valid []bool
	for _, id := range ids {
		valid = append(valid, r.valid(id))
	}
	if !slices.Equal(valid, []bool{false, true, true, true}) || r.count() != 3 {
		t.Errorf("valid %v, %d kept; want the oldest dropped and 3 kept", valid, r.count())
	}
	// Expired logins are dropped when a new one starts.
	now = now.Add(2 * time.Hour)
	r.start()
	if r.count() != 1 {
		t.Errorf("%d logins kept after the others expired, want 1", r.count())
	}
}
