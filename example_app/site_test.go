package main

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestOnlyLoopbackHostsAreAnswered: a page on a name rebound to 127.0.0.1
// (DNS rebinding) sends that name in Host and must get 421, even for a
// POST whose Origin matches its Host.
func TestOnlyLoopbackHostsAreAnswered(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	b := newBrowser(t, srv)
	for host, answered := range map[string]bool{
		"127.0.0.1:" + port:    true,
		"localhost:" + port:    true,
		"LocalHost:" + port:    true,
		"[::1]:" + port:        true,
		"evil.example:" + port: false,
		"evil.example":         false,
		"127.0.0.1":            false,
		"127.0.0.1:1":          false,
		"localhost.:" + port:   false,
		"127.0.0.2:" + port:    false,
		"0.0.0.0:" + port:      false,
	} {
		for path, status := range map[string]int{"/": 200, "/login": 200, "/instant/channels": 200, "/static/app.js": 200, "/nope": 404} {
			want := status
			if !answered {
				want = http.StatusMisdirectedRequest
			}
			r := b.do(http.MethodGet, path, nil, map[string]string{"Host": host})
			if r.status != want {
				t.Errorf("Host %q, GET %s: %d, want %d", host, path, r.status, want)
			}
			if !answered {
				if r.header.Get("Set-Cookie") != "" || !strings.Contains(r.body, "http://127.0.0.1:"+port+"/") {
					t.Errorf("Host %q, GET %s: cookie %q, body %.200q", host, path, r.header.Get("Set-Cookie"), r.body)
				}
			}
		}
	}

	// The rebound page posts the login form to "its own" origin.
	evil := "evil.example:" + port
	r := b.do(http.MethodPost, "/login", strings.NewReader(url.Values{"username": {"admin"}, "password": {"admin-demo"}}.Encode()), map[string]string{
		"Host":           evil,
		"Origin":         "http://" + evil,
		"Sec-Fetch-Site": "same-origin",
		"Content-Type":   "application/x-www-form-urlencoded",
	})
	if r.status != http.StatusMisdirectedRequest || r.header.Get("Set-Cookie") != "" {
		t.Errorf("rebound login post: %d, cookie %q; want 421 and no cookie", r.status, r.header.Get("Set-Cookie"))
	}
	r = b.do(http.MethodPost, "/instant/connection_token", strings.NewReader("{}"), map[string]string{
		"Host": evil, "Origin": "http://" + evil, "Content-Type": "application/json",
	})
	if r.status != http.StatusMisdirectedRequest || strings.Contains(r.body, "token") {
		t.Errorf("rebound token request: %d %s; want 421", r.status, r.body)
	}
}

func TestNewSiteNeedsThePort(t *testing.T) {
	for _, port := range []int{0, -1, 65536} {
		_, err := newSite(siteConfig{
			Instant:      demoConfig(closedAPIURL(t), testSecrets),
			Port:         port,
			Secrets:      testSecrets,
			CentrifugeJS: []byte("//"),
		})
		if err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) {
			t.Errorf("port %d: %v, want an error naming it", port, err)
		}
	}
}

// TestHeadAnswersLikeGet: every page that answers GET answers HEAD the
// same way, without a body.
func TestHeadAnswersLikeGet(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	anon := newBrowser(t, srv)
	admin := newBrowser(t, srv)
	admin.login("admin", "admin-demo")
	cases := []struct {
		b           *browser
		path        string
		status      int
		contentType string
		location    string
	}{
		{anon, "/", http.StatusOK, "text/html", ""},
		{anon, "/login", http.StatusOK, "text/html", ""},
		{anon, "/broadcast", http.StatusSeeOther, "", "/login?next=%2Fbroadcast"},
		{admin, "/broadcast", http.StatusOK, "text/html", ""},
		{anon, "/admin", http.StatusSeeOther, "", "/login?next=%2Fadmin"},
		{admin, "/admin", http.StatusOK, "text/html", ""},
		{anon, "/static/app.js", http.StatusOK, "text/javascript", ""},
		{anon, "/static/style.css", http.StatusOK, "text/css", ""},
		{anon, "/static/centrifuge.js", http.StatusOK, "text/javascript", ""},
		{anon, "/instant/channels", http.StatusOK, "application/json", ""},
		{anon, "/nope", http.StatusNotFound, "text/html", ""},
	}
	for _, tc := range cases {
		get := tc.b.get(tc.path)
		head := tc.b.do(http.MethodHead, tc.path, nil, nil)
		if head.status != tc.status || get.status != tc.status {
			t.Errorf("%s: HEAD %d, GET %d, want %d", tc.path, head.status, get.status, tc.status)
		}
		if head.body != "" {
			t.Errorf("HEAD %s sent a body: %q", tc.path, head.body)
		}
		if ct := head.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
			t.Errorf("HEAD %s: Content-Type %q, want %s", tc.path, ct, tc.contentType)
		}
		if loc := head.header.Get("Location"); loc != tc.location {
			t.Errorf("HEAD %s: Location %q, want %q", tc.path, loc, tc.location)
		}
	}
	// A POST-only route still refuses HEAD.
	if r := anon.do(http.MethodHead, "/logout", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("HEAD /logout: %d, want 405", r.status)
	}
}

// TestEveryPostRefusesCrossSite: every route of the site's own that
// changes state (any method but GET and HEAD) refuses a cross-site
// browser request and a foreign Origin from a logged-in admin, and
// changes nothing: the admin is still logged in. (instant's routes under
// /instant/ check requests themselves, and are tested with the library.)
func TestEveryPostRefusesCrossSite(t *testing.T) {
	st, srv := startSite(t, noCentrifugo)
	admin := browserAs(t, srv, "admin")
	var checked []string
	for _, route := range st.Handler().(*gin.Engine).Routes() {
		if route.Method == http.MethodGet || route.Method == http.MethodHead || strings.HasPrefix(route.Path, "/instant/") {
			continue
		}
		checked = append(checked, route.Method+" "+route.Path)
		for _, h := range [][2]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
			r := admin.do(route.Method, route.Path, strings.NewReader("username=user&password=user-demo&message=x&target=site_public"), map[string]string{
				"Content-Type": "application/x-www-form-urlencoded", h[0]: h[1],
			})
			if r.status != http.StatusForbidden {
				t.Errorf("%s %s with %s: %s: %d, want 403", route.Method, route.Path, h[0], h[1], r.status)
			}
		}
	}
	if user, _ := admin.channels(); user == nil || user["username"] != "admin" {
		t.Errorf("after the cross-site requests the admin's session is %v", user)
	}
	for _, want := range []string{"POST /login", "POST /logout", "POST /broadcast", "POST /admin/staff", "POST /admin/group"} {
		if !slices.Contains(checked, want) {
			t.Errorf("%s is not among the routes checked %v", want, checked)
		}
	}
}
