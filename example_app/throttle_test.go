package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// throttledSite is a test site served on port 8080 whose login throttle
// reads the clock *now.
func throttledSite(t *testing.T, now *time.Time) *site {
	t.Helper()
	st := newTestSite(t, noCentrifugo, 8080)
	st.throttle.now = func() time.Time { return *now }
	return st
}

// loginFrom posts the login form to st as a same-origin browser whose
// address is remoteAddr ("192.0.2.1:5000").
func loginFrom(st *site, remoteAddr, username, password string) *httptest.ResponseRecorder {
	form := url.Values{"username": {username}, "password": {password}}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/login", strings.NewReader(form.Encode()))
	req.RemoteAddr = remoteAddr
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	st.Handler().ServeHTTP(w, req)
	return w
}

// TestLoginThrottlePerAccount: after maxFailuresPerAccount failures of an
// account name in a window, its next attempt is 429 with Retry-After,
// from any address and with any password, and no password is checked;
// another account from another address logs in; when the window has
// passed, the account logs in again.
func TestLoginThrottlePerAccount(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	st := throttledSite(t, &now)
	for i := range maxFailuresPerAccount {
		if w := loginFrom(st, "192.0.2.1:5000", "admin", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, w.Code)
		}
		now = now.Add(time.Second)
	}
	checked := st.users.compared.Load()
	if checked != maxFailuresPerAccount {
		t.Fatalf("%d passwords checked, want %d", checked, maxFailuresPerAccount)
	}
	for name, attempt := range map[string][2]string{
		"wrong password":         {"192.0.2.1:5000", "wrong"},
		"right password":         {"192.0.2.1:5000", "admin-demo"},
		"from another address":   {"198.51.100.9:6000", "admin-demo"},
		"from an ipv6 address":   {"[2001:db8::1]:6000", "wrong"},
		"from a mapped ipv4 one": {"[::ffff:192.0.2.1]:5000", "admin-demo"},
	} {
		w := loginFrom(st, attempt[0], "admin", attempt[1])
		// The window started at the first failure, 5 s ago.
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "55" {
			t.Errorf("%s: %d, Retry-After %q; want 429 after 55 s", name, w.Code, w.Header().Get("Retry-After"))
		}
		if !strings.Contains(w.Body.String(), "Too many login attempts. Try again in 55 seconds.") || w.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s: the 429 page does not say when to try again, or sets a cookie:\n%s", name, w.Body.String())
		}
	}
	if n := st.users.compared.Load(); n != checked {
		t.Errorf("%d passwords checked over the limit, want none", n-checked)
	}

	// Another account, from another address, is not held up.
	if w := loginFrom(st, "203.0.113.7:7000", "user", "user-demo"); w.Code != http.StatusSeeOther {
		t.Errorf("another account from another address: %d, want 303", w.Code)
	}
	// Names that are no account are throttled alike.
	for range maxFailuresPerAccount {
		loginFrom(st, "203.0.113.8:7000", "nobody", "x")
	}
	if w := loginFrom(st, "203.0.113.8:7000", "nobody", "x"); w.Code != http.StatusTooManyRequests {
		t.Errorf("an unknown name after %d failures: %d, want 429", maxFailuresPerAccount, w.Code)
	}

	now = now.Add(loginWindow - 6*time.Second) // 1 s before the window ends
	if w := loginFrom(st, "192.0.2.1:5000", "admin", "admin-demo"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Errorf("1 s before the window ends: %d, Retry-After %q; want 429 after 1 s", w.Code, w.Header().Get("Retry-After"))
	}
	now = now.Add(time.Second)
	if w := loginFrom(st, "192.0.2.1:5000", "admin", "admin-demo"); w.Code != http.StatusSeeOther {
		t.Errorf("after the window: %d, want 303", w.Code)
	}
}

// TestLoginThrottleSuccessesAreNoFailures: an account's successful
// logins do not count towards its failures.
func TestLoginThrottleSuccessesAreNoFailures(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	st := throttledSite(t, &now)
	for i := range 2 * maxFailuresPerAccount {
		addr := fmt.Sprintf("192.0.2.%d:5000", i+1)
		if w := loginFrom(st, addr, "staff", "staff-demo"); w.Code != http.StatusSeeOther {
			t.Fatalf("login %d: %d, want 303", i+1, w.Code)
		}
	}
	for range maxFailuresPerAccount - 1 {
		loginFrom(st, "198.51.100.1:5000", "staff", "wrong")
	}
	if w := loginFrom(st, "198.51.100.2:5000", "staff", "staff-demo"); w.Code != http.StatusSeeOther {
		t.Errorf("after %d logins and %d failures: %d, want 303", 2*maxFailuresPerAccount, maxFailuresPerAccount-1, w.Code)
	}
}

// TestLoginThrottlePerAddress: one client address may try
// maxAttemptsPerAddress logins in a window, whatever the names; then it
// gets 429 without a password check, whatever X-Forwarded-For says, and
// other addresses do not. An IPv6 client is its /64 network.
func TestLoginThrottlePerAddress(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	st := throttledSite(t, &now)
	for name, addrs := range map[string][2]string{
		"ipv4": {"203.0.113.9:4000", "203.0.113.10:4000"},
		"ipv6": {"[2001:db8:0:1::1]:4000", "[2001:db8:0:2::1]:4000"},
	} {
		for i := range maxAttemptsPerAddress {
			if w := loginFrom(st, addrs[0], fmt.Sprintf("%s-name-%d", name, i), "x"); w.Code != http.StatusUnauthorized {
				t.Fatalf("%s: attempt %d: %d, want 401", name, i+1, w.Code)
			}
		}
		checked := st.users.compared.Load()
		if w := loginFrom(st, addrs[0], "user", "user-demo"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "60" {
			t.Errorf("%s: attempt %d: %d, Retry-After %q; want 429 after 60 s", name, maxAttemptsPerAddress+1, w.Code, w.Header().Get("Retry-After"))
		}
		if st.users.compared.Load() != checked {
			t.Errorf("%s: a password was checked over the address's limit", name)
		}
		if w := loginFrom(st, addrs[1], "user", "user-demo"); w.Code != http.StatusSeeOther {
			t.Errorf("%s: another address: %d, want 303", name, w.Code)
		}
	}
	// The same /64, another host: the same client.
	if w := loginFrom(st, "[2001:db8:0:1::ffff]:4000", "user", "user-demo"); w.Code != http.StatusTooManyRequests {
		t.Errorf("another host of the same /64: %d, want 429", w.Code)
	}
	// X-Forwarded-For is anyone's to send: it changes nothing.
	form := url.Values{"username": {"user"}, "password": {"user-demo"}}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/login", strings.NewReader(form.Encode()))
	req.RemoteAddr = "203.0.113.9:4000"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "198.51.100.77")
	req.Header.Set("X-Real-IP", "198.51.100.78")
	w := httptest.NewRecorder()
	st.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusTooManyRequests {
		t.Errorf("with X-Forwarded-For: %d, want 429", w.Code)
	}
}

// TestLoginThrottleIsBounded: a flood of distinct names from distinct
// addresses keeps at most maxThrottleKeys of each, and the throttle still
// counts the newest ones.
func TestLoginThrottleIsBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	th := newLoginThrottle()
	th.now = func() time.Time { return now }
	for i := range 3 * maxThrottleKeys {
		if _, ok := th.begin(fmt.Sprintf("name-%d-%s", i, strings.Repeat("x", 1000)), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if a, b := th.accounts.size(), th.addresses.size(); a > maxThrottleKeys || b > maxThrottleKeys {
		t.Errorf("%d account names and %d addresses kept, want at most %d each", a, b, maxThrottleKeys)
	}
	for range maxFailuresPerAccount {
		th.begin("victim", "192.0.2.1")
	}
	if _, ok := th.begin("victim", "192.0.2.2"); ok {
		t.Error("a full table no longer counts failures")
	}
}

func TestWindowCounter(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	w := newWindowCounter(2, time.Minute, 3)
	w.add("a", t0)
	if w.wait("a", t0) != 0 {
		t.Error("a key below its limit waits")
	}
	w.add("a", t0.Add(10*time.Second))
	if got := w.wait("a", t0.Add(20*time.Second)); got != 40*time.Second {
		t.Errorf("a key at its limit waits %v, want 40s (its window started at the first event)", got)
	}
	w.undo("a", t0.Add(20*time.Second))
	if w.wait("a", t0.Add(20*time.Second)) != 0 {
		t.Error("undo did not take an event back")
	}
	w.add("a", t0.Add(20*time.Second))
	if w.wait("a", t0.Add(time.Minute)) != 0 || w.size() != 0 {
		t.Errorf("the window did not end after a minute (%d keys kept)", w.size())
	}

	// Full: ended windows go first, then the oldest.
	w.add("b", t0)
	w.add("b", t0)
	w.add("c", t0.Add(30*time.Second))
	w.add("c", t0.Add(30*time.Second))
	w.add("d", t0.Add(40*time.Second))
	w.add("e", t0.Add(70*time.Second)) // b's window has ended
	if w.size() != 3 || w.wait("c", t0.Add(70*time.Second)) == 0 {
		t.Errorf("%d keys; c waits %v: want b forgotten and c kept", w.size(), w.wait("c", t0.Add(70*time.Second)))
	}
	w.add("f", t0.Add(71*time.Second)) // full of live windows: c, the oldest, goes
	if w.size() != 3 || w.wait("c", t0.Add(71*time.Second)) != 0 {
		t.Errorf("%d keys, want 3 with c forgotten", w.size())
	}
}

func TestClientAddress(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5000":             "192.0.2.1",
		"[::ffff:192.0.2.1]:5000":    "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:443":         "fe80::/64",
		"[::1]:8080":                 "::/64",
		"not an address":             "not an address",
	} {
		if got := clientAddress(in); got != want {
			t.Errorf("clientAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
