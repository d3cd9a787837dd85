package instant_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
	"github.com/golang-jwt/jwt/v5"
)

func TestConnectionTokenRoute(t *testing.T) {
	inst := newInstant(t, testConfig())
	for _, u := range []*instant.User{nobody, &alice, &root} {
		b := newBrowser(t, newRouter(inst)).as(u)
		status, body := b.postJSON("/instant/connection_token", map[string]any{})
		if status != http.StatusOK {
			t.Fatalf("status %d %v", status, body)
		}
		c := parseToken(t, body["token"].(string))
		want := ""
		if u != nil {
			want = u.ID
		}
		if c["sub"] != want {
			t.Errorf("sub %v, want %q", c["sub"], want)
		}
		if exp, _ := c.GetExpirationTime(); float64(exp.Unix()) != body["expires_at"] {
			t.Errorf("expires_at %v, exp %v", body["expires_at"], exp.Unix())
		}
	}
}

func TestConnectionTokenRefusedToAnonymousWhenDisallowed(t *testing.T) {
	cfg := testConfig()
	cfg.DisallowAnonymous = true
	inst := newInstant(t, cfg)
	b := newBrowser(t, newRouter(inst))
	status, body := b.postJSON("/instant/connection_token", map[string]any{})
	if status != http.StatusUnauthorized || body["error"] == nil || body["token"] != nil {
		t.Errorf("anonymous: %d %v", status, body)
	}
	status, _ = b.postJSON("/instant/subscription_token", map[string]any{"channel": "site_public"})
	if status != http.StatusUnauthorized {
		t.Errorf("anonymous subscription: %d", status)
	}
	if status, _ := b.as(&alice).postJSON("/instant/connection_token", map[string]any{}); status != http.StatusOK {
		t.Errorf("user: %d", status)
	}
}

func TestSubscriptionTokenRoute(t *testing.T) {
	inst := rulesInstant(t)
	cases := []struct {
		user    *instant.User
		channel string
		status  int
	}{
		{nobody, "site_public", 200},
		{nobody, "$site_users", 403},
		{&alice, "$site_users", 200},
		{&alice, "$site_staff", 403},
		{&alice, "$orders:o1", 200},
		{&alice, "$orders:o2", 403},
		{&gina, "$site_editors", 200},
		{&sam, "$site_staff", 200},
		{&sam, "$site_admin", 403},
		{&root, "$site_staff", 200},
		{&root, "$site_admin", 200},
		{&root, "$private_chan", 403},
	}
	browsers := map[*instant.User]*browser{}
	for _, tc := range cases {
		b := browsers[tc.user]
		if b == nil {
			b = newBrowser(t, newRouter(inst)).as(tc.user)
			browsers[tc.user] = b
		}
		status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": tc.channel})
		if status != tc.status {
			t.Errorf("%v %q: status %d, want %d (%v)", tc.user, tc.channel, status, tc.status, body)
			continue
		}
		if status != 200 {
			if body["error"] == nil || body["token"] != nil {
				t.Errorf("%v %q: refusal body %v", tc.user, tc.channel, body)
			}
			continue
		}
		c := parseToken(t, body["token"].(string))
		sub := ""
		if tc.user != nil {
			sub = tc.user.ID
		}
		if c["sub"] != sub || c["channel"] != tc.channel {
			t.Errorf("%v %q: claims %v", tc.user, tc.channel, c)
		}
	}
}

func TestSubscriptionTokenCarriesRuleInfo(t *testing.T) {
	inst := newInstant(t, testConfig())
	err := inst.Authorize("$room:{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		if u == nil {
			return false, nil
		}
		return true, map[string]string{"room": p["id"], "as": u.Username}
	})
	if err != nil {
		t.Fatal(err)
	}
	_, body := newBrowser(t, newRouter(inst)).as(&alice).postJSON("/instant/subscription_token", map[string]any{"channel": "$room:7"})
	c := parseToken(t, body["token"].(string))
	info, _ := c["info"].(map[string]any)
	if info["room"] != "7" || info["as"] != "alice" {
		t.Errorf("info %v", c["info"])
	}
}

func TestAuthBatchRoute(t *testing.T) {
	inst := newInstant(t, testConfig())
	b := newBrowser(t, newRouter(inst)).as(&sam)
	status, body := b.postJSON("/instant/auth", map[string]any{
		"client":   "9a1b-client",
		"channels": []string{"$site_users", "$site_admin", "site_public", "$site_staff"},
	})
	if status != 200 {
		t.Fatalf("status %d %v", status, body)
	}
	list := body["channels"].([]any)
	want := map[string]bool{"$site_users": true, "$site_admin": false, "site_public": true, "$site_staff": true}
	if len(list) != len(want) {
		t.Fatalf("answers %v", list)
	}
	for _, a := range list {
		m := a.(map[string]any)
		ch := m["channel"].(string)
		if want[ch] {
			if c := parseToken(t, m["token"].(string)); c["channel"] != ch || c["sub"] != sam.ID {
				t.Errorf("%s: claims %v", ch, c)
			}
		} else if m["status"] != float64(403) || m["token"] != nil {
			t.Errorf("%s: %v, want status 403 and no token", ch, m)
		}
	}
}

func TestChannelsRoute(t *testing.T) {
	inst := newInstant(t, testConfig())
	status, body := newBrowser(t, newRouter(inst)).get("/instant/channels")
	if status != 200 || body["user"] != nil {
		t.Fatalf("anonymous: %d %v", status, body)
	}
	if body["websocket_url"] != "ws://127.0.0.1:1/connection/websocket" {
		t.Errorf("websocket_url %v", body["websocket_url"])
	}
	if chans := body["channels"].([]any); len(chans) != 1 || chans[0].(map[string]any)["name"] != "site_public" || chans[0].(map[string]any)["level"] != "public" {
		t.Errorf("anonymous channels %v", chans)
	}
	_, body = newBrowser(t, newRouter(inst)).as(&gina).get("/instant/channels")
	user := body["user"].(map[string]any)
	if user["id"] != "2" || user["username"] != "gina" {
		t.Errorf("user %v", user)
	}
	var names []string
	for _, c := range body["channels"].([]any) {
		names = append(names, c.(map[string]any)["name"].(string)+"/"+c.(map[string]any)["level"].(string))
	}
	if got := strings.Join(names, " "); got != "site_public/public $site_users/users $site_editors/groups $site_user:2/personal" {
		t.Errorf("channels %s", got)
	}
}

// TestDisallowAnonymousOnEveryRoute: an anonymous visitor gets 401 from
// every token route and from GET channels; a logged-in user is served.
func TestDisallowAnonymousOnEveryRoute(t *testing.T) {
	cfg := testConfig()
	cfg.DisallowAnonymous = true
	r := newRouter(newInstant(t, cfg))
	anon := newBrowser(t, r)
	if status, body := anon.get("/instant/channels"); status != 401 || body["channels"] != nil {
		t.Errorf("GET channels: %d %v", status, body)
	}
	for route, body := range map[string]any{
		"connection_token":   map[string]any{},
		"subscription_token": map[string]any{"channel": "site_public"},
		"auth":               map[string]any{"channels": []string{"site_public"}},
	} {
		if status, answer := anon.postJSON("/instant/"+route, body); status != 401 || answer["token"] != nil || answer["channels"] != nil {
			t.Errorf("%s: %d %v", route, status, answer)
		}
	}
	if status, body := newBrowser(t, r).as(&alice).get("/instant/channels"); status != 200 || body["user"] == nil {
		t.Errorf("alice's GET channels: %d %v", status, body)
	}
}

// TestBadInput sends every kind of bad request: each gets a 4xx JSON error,
// no token, and nothing is logged as a server fault.
func TestBadInput(t *testing.T) {
	inst, logs := loggedInstant(t, nil)
	h := newRouter(inst)
	longName := strings.Repeat("a", 256)
	many := make([]string, 101)
	for k := range many {
		many[k] = fmt.Sprintf("ch%d", k)
	}
	manyJSON, _ := json.Marshal(map[string]any{"channels": many})
	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		header      map[string]string
		status      int
	}{
		{"malformed JSON", "POST", "subscription_token", "application/json", `{"channel":`, nil, 400},
		{"trailing garbage", "POST", "subscription_token", "application/json", `{"channel":"a"} x`, nil, 400},
		{"JSON array", "POST", "subscription_token", "application/json", `["site_public"]`, nil, 400},
		{"JSON null", "POST", "subscription_token", "application/json", `null`, nil, 400},
		{"channel not a string", "POST", "subscription_token", "application/json", `{"channel":42}`, nil, 400},
		{"text/plain", "POST", "subscription_token", "text/plain", `{"channel":"site_public"}`, nil, 415},
		{"form post", "POST", "connection_token", "application/x-www-form-urlencoded", `a=b`, nil, 415},
		{"no content type", "POST", "subscription_token", "", `{"channel":"site_public"}`, nil, 415},
		{"body over 64 KiB", "POST", "subscription_token", "application/json", `{"channel":"` + strings.Repeat("a", 70<<10) + `"}`, nil, 413},
		{"over 100 channels", "POST", "auth", "application/json", string(manyJSON), nil, 400},
		{"no channels", "POST", "auth", "application/json", `{"client":"c","channels":[]}`, nil, 400},
		{"bad channel in batch", "POST", "auth", "application/json", `{"channels":["ok","bad name"]}`, nil, 400},
		{"empty channel", "POST", "subscription_token", "application/json", `{"channel":""}`, nil, 400},
		{"missing channel", "POST", "subscription_token", "application/json", `{}`, nil, 400},
		{"over-long channel", "POST", "subscription_token", "application/json", `{"channel":"` + longName + `"}`, nil, 400},
		{"whitespace", "POST", "subscription_token", "application/json", `{"channel":"a b"}`, nil, 400},
		{"newline", "POST", "subscription_token", "application/json", `{"channel":"a\nb"}`, nil, 400},
		{"control byte", "POST", "subscription_token", "application/json", `{"channel":"a\u0001b"}`, nil, 400},
		{"NUL", "POST", "subscription_token", "application/json", `{"channel":"$site_users\u0000"}`, nil, 400},
		{"invalid UTF-8", "POST", "subscription_token", "application/json", "{\"channel\":\"a\xffb\"}", nil, 400},
		{"GET on POST route", "GET", "subscription_token", "", "", nil, 405},
		{"PUT on POST route", "PUT", "connection_token", "application/json", "{}", nil, 405},
		{"POST on GET route", "POST", "channels", "application/json", "{}", nil, 405},
		{"cross-site POST", "POST", "connection_token", "application/json", "{}", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"foreign origin", "POST", "subscription_token", "application/json", `{"channel":"site_public"}`, map[string]string{"Origin": "https://evil.example"}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, h).as(&root)
			req, _ := http.NewRequest(tc.method, b.srv.URL+"/instant/"+tc.path, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			status, body := b.do(req)
			if status != tc.status {
				t.Errorf("status %d, want %d (%v)", status, tc.status, body)
			}
			if msg, _ := body["error"].(string); !strings.HasPrefix(msg, "instant: ") {
				t.Errorf("error %q, want an instant: message", body["error"])
			}
			if body["token"] != nil || body["channels"] != nil {
				t.Errorf("answer holds tokens: %v", body)
			}
		})
	}
	if errs := logs.errors(); len(errs) > 0 {
		t.Errorf("bad input logged as a server fault: %v", errs)
	}
}

func TestTrustedOriginAccepted(t *testing.T) {
	cfg := testConfig()
	cfg.TrustedOrigins = []string{"https://app.example"}
	b := newBrowser(t, newRouter(newInstant(t, cfg)))
	req, _ := http.NewRequest("POST", b.srv.URL+"/instant/connection_token", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://app.example")
	if status, body := b.do(req); status != 200 {
		t.Errorf("trusted origin: %d %v", status, body)
	}
}

func TestEmptyBodyIsEmptyObject(t *testing.T) {
	b := newBrowser(t, newRouter(newInstant(t, testConfig())))
	if status, body := b.post("/instant/connection_token", "application/json", nil); status != 200 || body["token"] == nil {
		t.Errorf("empty JSON body: %d %v", status, body)
	}
	if status, body := b.post("/instant/connection_token", "", nil); status != 415 || body["token"] != nil {
		t.Errorf("empty body without a content type: %d %v", status, body)
	}
}

func TestMethodsAndHead(t *testing.T) {
	b := newBrowser(t, newRouter(newInstant(t, testConfig())))
	for _, m := range []string{"OPTIONS", "TRACE", "DELETE", "PATCH"} {
		req, _ := http.NewRequest(m, b.srv.URL+"/instant/subscription_token", nil)
		status, body := b.do(req)
		if status != 405 || body["error"] == nil {
			t.Errorf("%s: %d %v", m, status, body)
		}
	}
	req, _ := http.NewRequest("HEAD", b.srv.URL+"/instant/channels", nil)
	if status, _ := b.do(req); status != 200 {
		t.Errorf("HEAD channels: %d", status)
	}
}

func TestNilInstantRoutesAnswer500(t *testing.T) {
	var inst *instant.Instant
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	r.GET("/", func(c *gin.Context) { c.Status(204) })
	for _, path := range []string{"/", "/instant/channels"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 500 || !strings.Contains(w.Body.String(), "not installed") {
			t.Errorf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	r = gin.New()
	inst.Register(r.Group("/instant"))
	w := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/instant/connection_token", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	r.ServeHTTP(w, req)
	if w.Code != 500 || !strings.Contains(w.Body.String(), "not installed") {
		t.Errorf("POST on a nil Instant's route: %d %s", w.Code, w.Body)
	}
}

func TestTamperedCookieIsAnonymous(t *testing.T) {
	inst, logs := loggedInstant(t, nil)
	h := newRouter(inst)
	b := newBrowser(t, h).as(&root)
	// Flip one character in the middle of the signed cookie value.
	u := b.srv.URL
	req, _ := http.NewRequest("GET", u, nil)
	cookies := b.c.Jar.Cookies(req.URL)
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	v := []byte(cookies[0].Value)
	v[len(v)/2] ^= 1
	for _, status := range []struct {
		path string
		want int
	}{{"subscription_token", 403}, {"connection_token", 200}} {
		req, _ := http.NewRequest("POST", u+"/instant/"+status.path, strings.NewReader(`{"channel":"$site_admin"}`))
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(&http.Cookie{Name: cookies[0].Name, Value: string(v)})
		resp, err := centrifugotest.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != status.want {
			t.Errorf("%s with tampered cookie: %d, want %d", status.path, resp.StatusCode, status.want)
		}
		if status.want == 200 {
			if c := parseToken(t, body["token"].(string)); c["sub"] != "" {
				t.Errorf("tampered cookie kept sub %v", c["sub"])
			}
		}
	}
	if errs := logs.errors(); len(errs) > 0 {
		t.Errorf("logged %v", errs)
	}
}

func TestUndecodableSessionUserIsAnonymous(t *testing.T) {
	inst, logs := loggedInstant(t, nil)
	defer func() {
		if errs := logs.errors(); len(errs) > 0 {
			t.Errorf("an undecodable session user was logged as a fault: %v", errs)
		}
	}()
	for name, value := range map[string]any{
		"not JSON":      "{not json",
		"wrong type":    42,
		"no ID":         `{"username":"ghost","superuser":true}`,
		"bad group":     `{"id":"9","groups":["a b"]}`,
		"wrong shape":   `{"id":["9"]}`,
		"control in ID": "{\"id\":\"9\\u0000\",\"superuser\":true}",
	} {
		t.Run(name, func(t *testing.T) {
			r := gin.New()
			r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
			r.Use(inst.Session())
			inst.Register(r.Group("/instant"))
			r.POST("/plant", func(c *gin.Context) {
				s := sessions.Default(c)
				s.Set("instant.user", value)
				_ = s.Save()
			})
			b := newBrowser(t, r)
			b.post("/plant", "", nil)
			status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "$site_admin"})
			if status != 403 {
				t.Errorf("status %d %v", status, body)
			}
			_, body = b.get("/instant/channels")
			if body["user"] != nil {
				t.Errorf("user %v", body["user"])
			}
		})
	}
}

func TestLoadUserFailureIs500AndLogged(t *testing.T) {
	inst, logs := loggedInstant(t, func(cfg *instant.Config) {
		cfg.LoadUser = func(c *gin.Context) (*instant.User, error) { return nil, fmt.Errorf("db down") }
	})
	b := newBrowser(t, newRouter(inst))
	status, body := b.postJSON("/instant/connection_token", map[string]any{})
	if status != 500 || body["token"] != nil {
		t.Errorf("status %d %v", status, body)
	}
	if !strings.Contains(logs.all(), "db down") {
		t.Errorf("cause not logged: %q", logs.all())
	}
}

func TestLoadUserReplacesSession(t *testing.T) {
	cfg := testConfig()
	calls := 0
	cfg.LoadUser = func(c *gin.Context) (*instant.User, error) {
		calls++
		if c.GetHeader("X-User") == "" {
			return nil, nil
		}
		return &instant.User{ID: c.GetHeader("X-User"), Staff: true}, nil
	}
	b := newBrowser(t, newRouter(newInstant(t, cfg)))
	req, _ := http.NewRequest("POST", b.srv.URL+"/instant/subscription_token", bytes.NewReader([]byte(`{"channel":"$site_staff"}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User", "77")
	status, body := b.do(req)
	if status != 200 {
		t.Fatalf("status %d %v", status, body)
	}
	if c := parseToken(t, body["token"].(string)); c["sub"] != "77" {
		t.Errorf("sub %v", c["sub"])
	}
	if calls != 1 {
		t.Errorf("LoadUser called %d times for one request", calls)
	}
}

// TestPackageLevelRegister: the package-level Session and Register share
// one default Instant, built from the environment. (The package default
// is built once a process: no other test in this binary may use them.)
func TestPackageLevelRegister(t *testing.T) {
	t.Setenv("INSTANT_API_URL", "http://127.0.0.1:1/api")
	t.Setenv("CENTRIFUGO_HTTP_API_KEY", testAPIKey)
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", testSecret)
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(instant.Session())
	instant.Register(r.Group("/instant"))
	r.GET("/who", func(c *gin.Context) {
		c.JSON(200, gin.H{"same": instant.Default(c) == c.MustGet("instant").(*instant.Instant)})
	})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/who", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "true") {
		t.Errorf("/who: %d %s", w.Code, w.Body)
	}
	b := newBrowser(t, r)
	if status, body := b.postJSON("/instant/connection_token", map[string]any{}); status != 200 {
		t.Errorf("connection_token %d %v", status, body)
	}
}

// TestPackageLevelFormsFailAtStartup: without the environment, the
// package-level Session and Register panic when called (at startup), each
// time, naming the missing variable and never a secret; they do not hand
// back a middleware that answers 500 to every request. It runs in a
// process of its own, where nothing built the package default.
func TestPackageLevelFormsFailAtStartup(t *testing.T) {
	t.Parallel()
	if os.Getenv("INSTANT_TEST_STARTUP") == "1" {
		for _, call := range []func(){
			func() { instant.Session() },
			func() { instant.Register(gin.New().Group("/instant")) },
			func() { instant.Session() },
		} {
			func() {
				defer func() { fmt.Printf("panic: %v\n", recover()) }()
				call()
			}()
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPackageLevelFormsFailAtStartup$", "-test.count=1")
	cmd.Env = []string{"INSTANT_TEST_STARTUP=1", "CENTRIFUGO_HTTP_API_KEY=" + testAPIKey, "INSTANT_SITE_SLUG=bad slug"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var panics []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if msg, ok := strings.CutPrefix(line, "panic: "); ok {
			panics = append(panics, msg)
		}
	}
	if len(panics) != 3 {
		t.Fatalf("want 3 panics, got %q", out)
	}
	for _, msg := range panics {
		if !strings.Contains(msg, "unset: CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY") || strings.Contains(msg, "CENTRIFUGO_HTTP_API_KEY") ||
			!strings.Contains(msg, "TokenSecret is required") || !strings.Contains(msg, "SiteSlug") || strings.Contains(msg, testAPIKey) {
			t.Errorf("panic %q: want the unset variable and every problem, no secret", msg)
		}
	}
}

// TestPanickingRuleIs500 shows that a rule's panic is the server's fault:
// a 500 and a log line, no token, and the next request is served.
func TestPanickingRuleIs500(t *testing.T) {
	inst, logs := loggedInstant(t, nil)
	_ = inst.Authorize("$room:{id}", func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
		return u.Username != "", nil // panics for anonymous visitors
	})
	b := newBrowser(t, newRouter(inst))
	if status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "$room:1"}); status != 500 || body["token"] != nil {
		t.Errorf("anonymous on a panicking rule: %d %v", status, body)
	}
	if errs := logs.errors(); len(errs) != 1 || !strings.Contains(errs[0], "panicked") {
		t.Errorf("log lines %q, want one saying the rule panicked", errs)
	}
	status, body := b.postJSON("/instant/auth", map[string]any{"channels": []string{"$room:1", "site_public"}})
	if chans, _ := body["channels"].([]any); status != 200 || len(chans) != 2 ||
		chans[0].(map[string]any)["status"] != float64(500) || chans[1].(map[string]any)["token"] == nil {
		t.Errorf("batch with a panicking rule: %d %v", status, body)
	}
	if inst.Allowed(nil, nil, "$room:1") {
		t.Error("Allowed granted what a panicking rule decides")
	}
	if status, _ := b.as(&alice).postJSON("/instant/subscription_token", map[string]any{"channel": "$room:1"}); status != 200 {
		t.Errorf("the rule stopped working after a panic: %d", status)
	}
}

func TestLoadUserMayAskForTheCurrentUser(t *testing.T) {
	cfg := testConfig()
	cfg.LoadUser = func(c *gin.Context) (*instant.User, error) {
		// Re-entrant: LoadUser asking for the user it is loading sees none
		// yet, through the context it got and through the request's.
		if instant.CurrentUser(c) != nil || instant.CurrentUser(c.Request.Context()) != nil {
			return nil, fmt.Errorf("a user before LoadUser returned")
		}
		return &instant.User{ID: "5"}, nil
	}
	b := newBrowser(t, newRouter(newInstant(t, cfg)))
	type answer struct {
		status int
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		status, _, err := b.tryPostJSON("/instant/connection_token", map[string]any{})
		done <- answer{status, err}
	}()
	select {
	case a := <-done:
		if a.err != nil || a.status != 200 {
			t.Errorf("status %d, %v", a.status, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LoadUser asking for the current user deadlocked")
	}
}

func TestClientJS(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := gin.New() // no sessions: the helper needs none
	inst.Register(r.Group("/instant"))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/instant/client.js", nil))
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript") ||
		!strings.Contains(w.Body.String(), "export class Instant") || w.Header().Get("ETag") == "" {
		t.Fatalf("GET client.js: %d %q %.80q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
	req := httptest.NewRequest("GET", "/instant/client.js", nil)
	req.Header.Set("If-None-Match", w.Header().Get("ETag"))
	w2 := httptest.NewRecorder()
	r.ServeHTTP(w2, req)
	if w2.Code != 304 || w2.Body.Len() != 0 {
		t.Errorf("revalidation: %d, %d bytes", w2.Code, w2.Body.Len())
	}
	w3 := httptest.NewRecorder()
	r.ServeHTTP(w3, httptest.NewRequest("POST", "/instant/client.js", nil))
	if w3.Code != 405 {
		t.Errorf("POST client.js: %d", w3.Code)
	}
}

// TestRuleInfoCannotRewriteClaims: a rule's json.RawMessage info is checked
// and compacted, never spliced as it is: `{"a":1},"sub":"4"` would
// otherwise give alice a token for user 4.
func TestRuleInfoCannotRewriteClaims(t *testing.T) {
	inst, logs := loggedInstant(t, nil)
	infos := map[string]any{
		"inject": json.RawMessage(`{"nick":"x"},"sub":"4"`),
		"broken": json.RawMessage(`{"nick":`),
		"spaced": json.RawMessage(" {\"nick\" :\n \"x\"} "),
		"map":    map[string]any{"nick": "x"},
		"chan":   make(chan int),
	}
	_ = inst.Authorize("$room:{id}", func(_ *gin.Context, _ *instant.User, p map[string]string) (bool, any) {
		return true, infos[p["id"]]
	})
	b := newBrowser(t, newRouter(inst)).as(&alice)
	for _, id := range []string{"inject", "broken", "chan"} {
		status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "$room:" + id})
		if status != http.StatusInternalServerError || body["token"] != nil {
			t.Errorf("info %s: %d %v, want 500 and no token", id, status, body)
		}
	}
	if errs := logs.errors(); len(errs) != 3 || !strings.Contains(errs[0], "not JSON") {
		t.Errorf("log lines %q, want three saying the info is not JSON", errs)
	}
	for _, id := range []string{"spaced", "map"} {
		status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "$room:" + id})
		tok, _ := body["token"].(string)
		cl := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, cl, func(*jwt.Token) (any, error) { return []byte(testSecret), nil }); status != 200 || err != nil {
			t.Fatalf("info %s: %d %v %v", id, status, body, err)
		}
		if info, _ := cl["info"].(map[string]any); cl["sub"] != alice.ID || info["nick"] != "x" {
			t.Errorf("info %s: claims %v", id, cl)
		}
	}
	if _, err := inst.SubscriptionToken(nil, &alice, "$room:inject"); !ruleFailed(err) {
		t.Errorf("SubscriptionToken: %v, want the rule's failure", err)
	}
}

// TestAuthBatchWithConnection: "connection": true adds a connection token
// to the batch's answer, so that a page connects and subscribes with one
// request; the channels may then be none. A request without it is answered
// exactly as before, and every rule of the route still holds.
func TestAuthBatchWithConnection(t *testing.T) {
	inst := newInstant(t, testConfig())
	b := newBrowser(t, newRouter(inst)).as(&sam)
	status, body := b.postJSON("/instant/auth", map[string]any{
		"channels":   []string{"$site_users", "$site_admin"},
		"connection": true,
	})
	if status != http.StatusOK {
		t.Fatalf("status %d %v", status, body)
	}
	conn, _ := body["connection"].(map[string]any)
	if conn == nil {
		t.Fatalf("no connection in %v", body)
	}
	c := parseToken(t, conn["token"].(string))
	if c["sub"] != sam.ID || c["channel"] != nil {
		t.Errorf("connection token claims %v", c)
	}
	if exp, _ := c.GetExpirationTime(); float64(exp.Unix()) != conn["expires_at"] {
		t.Errorf("connection expires_at %v, exp %v", conn["expires_at"], exp.Unix())
	}
	list := body["channels"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["token"] == nil || list[1].(map[string]any)["status"] != float64(403) {
		t.Errorf("channels %v", list)
	}

	// The connection alone.
	status, body = b.postJSON("/instant/auth", map[string]any{"channels": []string{}, "connection": true})
	if list, _ := body["channels"].([]any); status != http.StatusOK || body["connection"] == nil || list == nil || len(list) != 0 {
		t.Errorf("connection only: %d %v", status, body)
	}
	status, body = b.postJSON("/instant/auth", map[string]any{"connection": true})
	if status != http.StatusOK || body["connection"] == nil {
		t.Errorf("connection only, no channels key: %d %v", status, body)
	}

	// Without it, the answer is the batch's as before: no connection key.
	for _, req := range []map[string]any{
		{"channels": []string{"$site_users"}},
		{"channels": []string{"$site_users"}, "connection": false},
	} {
		status, body = b.postJSON("/instant/auth", req)
		if _, has := body["connection"]; status != http.StatusOK || has || len(body) != 1 {
			t.Errorf("%v: %d %v, want the channels alone", req, status, body)
		}
	}

	// Refusals and bad input refuse the whole request.
	cfg := testConfig()
	cfg.DisallowAnonymous = true
	anon := newBrowser(t, newRouter(newInstant(t, cfg)))
	if status, body := anon.postJSON("/instant/auth", map[string]any{"connection": true}); status != http.StatusUnauthorized || body["connection"] != nil {
		t.Errorf("anonymous with DisallowAnonymous: %d %v", status, body)
	}
	many := make([]string, 101)
	for k := range many {
		many[k] = fmt.Sprintf("ch%d", k)
	}
	for name, req := range map[string]any{
		"connection not a bool":      map[string]any{"connection": "yes"},
		"no channels, no connection": map[string]any{"connection": false},
		"over 100 channels":          map[string]any{"channels": many, "connection": true},
		"bad channel":                map[string]any{"channels": []string{"bad name"}, "connection": true},
	} {
		status, body := b.postJSON("/instant/auth", req)
		if msg, _ := body["error"].(string); status != http.StatusBadRequest || !strings.HasPrefix(msg, "instant: ") || body["connection"] != nil || body["channels"] != nil {
			t.Errorf("%s: %d %v, want 400 and no token", name, status, body)
		}
	}
}

// TestRegisterMountsFewRoutes: Register adds a small, fixed number of
// routes (every endpoint and every wrong method behind two paths), the
// app's own routes in the same group still win, and a name that is no
// endpoint is a JSON 404.
func TestRegisterMountsFewRoutes(t *testing.T) {
	r := gin.New()
	r.Use(sessions.Sessions("s", cookie.NewStore([]byte("0123456789abcdef0123456789abcdef"))))
	g := r.Group("/instant")
	g.GET("/mine", func(c *gin.Context) { c.String(200, "the app's own") })
	newInstant(t, testConfig()).Register(g)
	if n := len(r.Routes()); n-1 > 20 {
		t.Errorf("Register added %d routes, want at most 20", n-1)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/instant/mine", 200, ""},
		{"GET", "/instant/channels", 200, ""},
		{"HEAD", "/instant/client.js", 200, ""},
		{"DELETE", "/instant/channels", 405, "GET, HEAD"},
		{"GET", "/instant/auth", 405, "POST"},
		{"OPTIONS", "/instant/proxy/connect", 405, "POST"},
		{"GET", "/instant/nothing-here", 404, ""},
		{"POST", "/instant/proxy/nothing", 404, ""},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.status || w.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", tc.method, tc.path, w.Code, w.Header().Get("Allow"), tc.status, tc.allow)
		}
		if tc.status >= 400 && tc.method != "HEAD" && !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("%s %s: body %q is not a JSON error", tc.method, tc.path, w.Body.String())
		}
	}
}

// TestPresenceRouteRefusals: the presence route answers only the private
// channels a logged-in user may read. Public channels, channels the user
// may not read, and every channel of an anonymous visitor are a 403 of
// their own, and cost no call to Centrifugo; bad requests are a 400 (or
// what every POST route answers), and a Centrifugo that does not answer
// is a 502 with a JSON error, logged once.
func TestPresenceRouteRefusals(t *testing.T) {
	inst, logs := loggedInstant(t, func(c *instant.Config) { c.PublishTimeout = 300 * time.Millisecond })
	_ = inst.Authorize("$room:{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && p["id"] == u.ID, nil
	})
	h := newRouter(inst)
	forbidden := func(t *testing.T, b *browser, channels ...string) {
		t.Helper()
		status, body := b.postJSON("/instant/presence", map[string]any{"channels": channels})
		list, _ := body["channels"].([]any)
		if status != http.StatusOK || len(list) != len(channels) {
			t.Fatalf("%v: %d %v", channels, status, body)
		}
		for k, a := range list {
			m, _ := a.(map[string]any)
			if m["channel"] != channels[k] || m["status"] != float64(403) || m["clients"] != nil {
				t.Errorf("%s: %v, want status 403 and no clients", channels[k], m)
			}
		}
	}
	alice := newBrowser(t, h).as(&alice)
	// Public channels (listed or not), channels alice may not read, the
	// same channel twice: all 403, and Centrifugo (unreachable here) is
	// never asked.
	forbidden(t, alice, "site_public", "news", "$site_admin", "$site_staff", "$site_editors", "$room:2", "$site_user:2", "$nobody", "$site_admin")
	// Anonymous: every channel, even those anonymous visitors may read.
	forbidden(t, newBrowser(t, h), "site_public", "$site_users", "$room:1")
	if errs := logs.errors(); len(errs) > 0 {
		t.Errorf("refusals logged as faults: %v", errs)
	}

	many := make([]string, 21)
	for k := range many {
		many[k] = "$site_users"
	}
	for name, body := range map[string]string{
		"malformed JSON":       `{"channels":`,
		"JSON array":           `["$site_users"]`,
		"no channels":          `{"channels":[]}`,
		"empty body":           ``,
		"channels not a list":  `{"channels":"$site_users"}`,
		"channel not a string": `{"channels":[1]}`,
		"bad channel":          `{"channels":["$site_users","bad name"]}`,
		"empty channel":        `{"channels":[""]}`,
		"over 20 channels":     mustJSON(map[string]any{"channels": many}),
	} {
		status, answer := alice.post("/instant/presence", "application/json", []byte(body))
		if msg, _ := answer["error"].(string); status != http.StatusBadRequest || !strings.HasPrefix(msg, "instant: ") || answer["channels"] != nil {
			t.Errorf("%s: %d %v, want 400 and an error", name, status, answer)
		}
	}
	if status, _ := alice.post("/instant/presence", "text/plain", []byte(`{"channels":["$site_users"]}`)); status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d, want 415", status)
	}
	req, _ := http.NewRequest("POST", alice.srv.URL+"/instant/presence", strings.NewReader(`{"channels":["$site_users"]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if status, body := alice.do(req); status != http.StatusForbidden || body["channels"] != nil {
		t.Errorf("cross-site: %d %v, want 403", status, body)
	}
	if status, _ := alice.get("/instant/presence"); status != http.StatusMethodNotAllowed {
		t.Errorf("GET presence: %d, want 405", status)
	}
	if errs := logs.errors(); len(errs) > 0 {
		t.Errorf("bad requests logged as faults: %v", errs)
	}

	// With DisallowAnonymous, an anonymous visitor gets the 401 of every route.
	cfg := testConfig()
	cfg.DisallowAnonymous = true
	anon := newBrowser(t, newRouter(newInstant(t, cfg)))
	if status, body := anon.postJSON("/instant/presence", map[string]any{"channels": []string{"site_public"}}); status != http.StatusUnauthorized || body["channels"] != nil {
		t.Errorf("anonymous with DisallowAnonymous: %d %v, want 401", status, body)
	}

	// A channel alice may read: Centrifugo does not answer.
	status, body := alice.postJSON("/instant/presence", map[string]any{"channels": []string{"$site_users", "$room:1", "site_public"}})
	if msg, _ := body["error"].(string); status != http.StatusBadGateway || !strings.HasPrefix(msg, "instant: ") || body["channels"] != nil {
		t.Errorf("Centrifugo unreachable: %d %v, want 502 and an error", status, body)
	}
	if errs := logs.errors(); len(errs) != 1 {
		t.Errorf("logged %d errors, want 1: %v", len(errs), errs)
	}
	if strings.Contains(logs.all(), testAPIKey) || strings.Contains(logs.all(), testSecret) {
		t.Errorf("the log holds a secret: %s", logs.all())
	}
}
