package main

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestLoginPageListsEveryDemoAccount(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	r := newBrowser(t, srv).get("/login")
	if r.status != http.StatusOK {
		t.Fatalf("GET /login: %d", r.status)
	}
	for _, a := range demoAccounts() {
		for _, want := range []string{a.User.Username, a.Password, a.Role()} {
			if !strings.Contains(r.body, want) {
				t.Errorf("login page does not show %q", want)
			}
		}
	}
	// Every role is there: a plain user, a group member, staff, superuser.
	var plain, group, staff, super bool
	for _, a := range demoAccounts() {
		u := a.User
		plain = plain || (!u.Staff && !u.Superuser && len(u.Groups) == 0)
		group = group || slices.Contains(u.Groups, editorsGroup)
		staff = staff || (u.Staff && !u.Superuser)
		super = super || u.Superuser
	}
	if !plain || !group || !staff || !super {
		t.Errorf("demo accounts miss a role: plain %v, group %v, staff %v, superuser %v", plain, group, staff, super)
	}
}

func TestLogin(t *testing.T) {
	cases := []struct {
		name, username, password string
		status                   int
		wantError                string
	}{
		{"ok", "user", "user-demo", http.StatusSeeOther, ""},
		{"bad password", "user", "wrong", http.StatusUnauthorized, "Wrong username or password."},
		{"unknown user", "nobody", "user-demo", http.StatusUnauthorized, "Wrong username or password."},
		{"password of another account", "admin", "user-demo", http.StatusUnauthorized, "Wrong username or password."},
		{"empty password", "user", "", http.StatusBadRequest, "Enter a username and a password."},
		{"empty form", "", "", http.StatusBadRequest, "Enter a username and a password."},
	}
	_, srv := startSite(t, noCentrifugo)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, srv)
			r := b.postForm("/login", url.Values{"username": {tc.username}, "password": {tc.password}})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body:\n%s", r.status, tc.status, r.body)
			}
			user, channels := b.channels()
			if tc.wantError == "" {
				if loc := r.header.Get("Location"); loc != "/" {
					t.Errorf("Location %q, want /", loc)
				}
				if user == nil || user["username"] != tc.username {
					t.Errorf("session user %v, want %s", user, tc.username)
				}
				if !slices.Contains(channels, "$site_users") {
					t.Errorf("channels %v, want $site_users among them", channels)
				}
				return
			}
			if r.header.Get("Set-Cookie") != "" {
				t.Errorf("a failed login set a cookie: %s", r.header.Get("Set-Cookie"))
			}
			if !strings.Contains(r.body, tc.wantError) || !strings.Contains(r.body, `id="login-form"`) {
				t.Errorf("the form is not shown again with %q:\n%s", tc.wantError, r.body)
			}
			if user != nil {
				t.Errorf("session user %v after a failed login", user)
			}
			if !slices.Equal(channels, []string{"site_public"}) {
				t.Errorf("channels %v after a failed login, want only site_public", channels)
			}
		})
	}
}

func TestLoginRedirectsToLocalNextOnly(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	for next, want := range map[string]string{
		"/broadcast":             "/broadcast",
		"//evil.example/":        "/",
		"https://evil.example/":  "/",
		"/\\evil.example":        "/",
		"":                       "/",
		"/broadcast?sent=1#here": "/broadcast?sent=1#here",
		// Browsers drop tabs and line breaks from a URL: "//evil.example".
		"/\t/evil.example":   "/",
		"/\n/evil.example":   "/",
		"/\r\n/evil.example": "/",
		"\t//evil.example":   "/",
		"/\x00/evil.example": "/",
		"/\x7f/evil.example": "/",
		"/%2F/evil.example":  "/",
	} {
		b := newBrowser(t, srv)
		r := b.postForm("/login", url.Values{"username": {"admin"}, "password": {"admin-demo"}, "next": {next}})
		if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
			t.Errorf("next %q: %d to %q, want 303 to %q", next, r.status, r.header.Get("Location"), want)
		}
	}
	// The login page does not carry a bad target into its form either.
	r := newBrowser(t, srv).get("/login?next=" + url.QueryEscape("/\t/evil.example"))
	if r.status != http.StatusOK || !strings.Contains(r.body, `name="next" value="/"`) {
		t.Errorf("GET /login with a tab in next: %d, the form's next is not \"/\":\n%s", r.status, r.body)
	}
}

func TestLoginRefusesCrossOriginPosts(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	for name, header := range map[string][]string{
		"sec-fetch-site": {"Sec-Fetch-Site", "cross-site"},
		"origin":         {"Origin", "https://evil.example"},
	} {
		r := b.do(http.MethodPost, "/login", strings.NewReader("username=admin&password=admin-demo"), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded",
			header[0]:      header[1],
		})
		if r.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, r.status)
		}
		if user, _ := b.channels(); user != nil {
			t.Errorf("%s: a cross-origin login logged in as %v", name, user)
		}
	}
}

func TestLogout(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	b.login("staff", "staff-demo")
	if user, _ := b.channels(); user == nil {
		t.Fatal("not logged in")
	}
	if r := b.get("/logout"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /logout: %d, want 405", r.status)
	}
	// Centrifugo is not running: the logout still works.
	r := b.postForm("/logout", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("POST /logout: %d to %q, want 303 to /", r.status, r.header.Get("Location"))
	}
	user, channels := b.channels()
	if user != nil || !slices.Equal(channels, []string{"site_public"}) {
		t.Errorf("after logout: user %v, channels %v", user, channels)
	}
	if r := b.get("/broadcast"); r.status != http.StatusSeeOther {
		t.Errorf("GET /broadcast after logout: %d, want 303 to the login page", r.status)
	}
}

func TestHomeListsChannelsByRole(t *testing.T) {
	all := []string{"site_public", "$site_users", "$site_editors", "$site_reviewers", "$site_staff", "$site_admin"}
	cases := []struct {
		username string
		want     []string
	}{
		{"", []string{"site_public"}},
		{"user", []string{"site_public", "$site_users", "$site_user:1"}},
		{"editor", []string{"site_public", "$site_users", "$site_editors", "$site_user:2"}},
		{"staff", []string{"site_public", "$site_users", "$site_staff", "$site_user:3"}},
		{"admin", []string{"site_public", "$site_users", "$site_staff", "$site_admin", "$site_user:4"}},
	}
	_, srv := startSite(t, noCentrifugo)
	for _, tc := range cases {
		t.Run(cmp.Or(tc.username, "anonymous"), func(t *testing.T) {
			b := browserAs(t, srv, tc.username)
			if _, got := b.channels(); !slices.Equal(got, tc.want) {
				t.Errorf("GET /instant/channels: %v, want %v", got, tc.want)
			}
			r := b.get("/")
			if r.status != http.StatusOK {
				t.Fatalf("GET /: %d", r.status)
			}
			for _, want := range []string{`id="state"`, `id="events"`, `id="channels"`, `src="/static/centrifuge.js"`, `type="module" src="/static/app.js"`} {
				if !strings.Contains(r.body, want) {
					t.Errorf("home page lacks %s", want)
				}
			}
			denied := r.body[strings.Index(r.body, `id="denied"`):]
			denied = denied[:strings.Index(denied, "</ul>")]
			for _, ch := range all {
				listed := strings.Contains(denied, `data-channel="`+ch+`"`)
				if listed == slices.Contains(tc.want, ch) {
					t.Errorf("channel %s listed as not granted: %v, but granted: %v", ch, listed, !listed)
				}
			}
		})
	}
}

func TestStaticFiles(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	for path, want := range map[string]string{
		"/static/centrifuge.js": "centrifuge.js stand-in",
		"/static/app.js":        "from '/instant/client.js'",
		"/static/style.css":     ".event",
	} {
		r := b.get(path)
		if r.status != http.StatusOK || !strings.Contains(r.body, want) {
			t.Errorf("GET %s: %d, body has %q: %v", path, r.status, want, strings.Contains(r.body, want))
		}
		if r.header.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", path)
		}
	}
	if r := b.get("/static/nope.js"); r.status != http.StatusNotFound {
		t.Errorf("GET /static/nope.js: %d, want 404", r.status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	st, srv := startSite(t, noCentrifugo)
	r := newBrowser(t, srv).get("/")
	csp := r.header.Get("Content-Security-Policy")
	ws := websocketOrigin(st.inst)
	if !strings.HasPrefix(ws, "ws://127.0.0.1:") || !strings.Contains(csp, "connect-src 'self' "+ws) || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q does not allow the websocket origin %q and only the site's scripts", csp, ws)
	}
	if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("missing security headers: %v", r.header)
	}
}

func TestSessionCookieIsHTTPOnlyAndLax(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	r := newBrowser(t, srv).postForm("/login", url.Values{"username": {"user"}, "password": {"user-demo"}})
	c := r.header.Get("Set-Cookie")
	if !strings.HasPrefix(c, sessionName+"=") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Lax") {
		t.Errorf("session cookie %q", c)
	}
}

func TestUnknownPageIs404(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	r := newBrowser(t, srv).get("/nope")
	if r.status != http.StatusNotFound || !strings.Contains(r.body, "There is no page at this address.") {
		t.Errorf("GET /nope: %d\n%s", r.status, r.body)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/":                      "/",
		"/a/b?c=d":               "/a/b?c=d",
		"/broadcast?sent=1#here": "/broadcast?sent=1#here",
		"/%09/x":                 "/%09/x", // an escaped tab stays in the path
		"//x":                    "/",
		"x":                      "/",
		"/\\x":                   "/",
		"/a\\b":                  "/",
		"/a\r\nb":                "/",
		"http://x/":              "/",
		"javascript":             "/",
		"javascript:alert(1)":    "/",
		// Browsers drop tabs and line breaks: each of these would be
		// //evil.example.
		"/\t/evil.example":   "/",
		"/\n/evil.example":   "/",
		"/\r/evil.example":   "/",
		"/\t\t/evil.example": "/",
		"\t//evil.example":   "/",
		// Other control characters and DEL.
		"/\x00/evil.example": "/",
		"/\x0b/evil.example": "/",
		"/\x1f/evil.example": "/",
		"/\x7f/evil.example": "/",
		"/a\tb":              "/",
		// A slash escaped in the first segment.
		"/%2F/evil.example": "/",
		"/%2f/evil.example": "/",
		" /x":               "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
