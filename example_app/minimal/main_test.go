package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// centrifugeJS is where example_app's npm install put centrifuge-js.
const centrifugeJS = "../node_modules/centrifuge/dist/centrifuge.js"

var (
	authKey = []byte("auth-key-0123456789abcdef0123456")
	encKey  = []byte("encryption-key-0123456789abcdef!")
)

type client struct {
	t   *testing.T
	srv *httptest.Server
	c   *http.Client
}

func (cl *client) post(path, contentType, body string) (int, map[string]any) {
	cl.t.Helper()
	resp, err := cl.c.Post(cl.srv.URL+path, contentType, strings.NewReader(body))
	if err != nil {
		cl.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func (cl *client) token(channel string) (int, string) {
	status, body := cl.post("/instant/subscription_token", "application/json", `{"channel":"`+channel+`"}`)
	tok, _ := body["token"].(string)
	return status, tok
}

// TestMinimalApp runs the README's app against a real Centrifugo: the staff
// user gets a token for $site_staff and not $site_admin, receives the
// order another user posts, and after logout the same cookie gets nothing.
func TestMinimalApp(t *testing.T) {
	gin.SetMode(gin.TestMode)
	var inst *instant.Instant
	cent := centrifugotest.Start(t, func(port int) ([]byte, error) {
		var err error
		inst, err = instant.New(instant.Config{
			APIURL:      fmt.Sprintf("http://127.0.0.1:%d/api", port),
			APIKey:      "minimal-api-key",
			TokenSecret: "minimal-token-secret-0123456789abcdef",
		})
		if err != nil {
			return nil, err
		}
		return inst.CentrifugoConfig(instant.CentrifugoOptions{Port: port, LogLevel: "error"})
	})
	if _, err := newApp(inst, centrifugeJS, authKey, encKey[:16], false); err == nil {
		t.Error("newApp took a 16-byte encryption key")
	}
	app, err := newApp(inst, centrifugeJS, authKey, encKey, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	defer srv.Close()
	login := func(name string) *client {
		jar, _ := cookiejar.New(nil)
		cl := &client{t, srv, &http.Client{Jar: jar, Transport: centrifugotest.HTTP.Transport}}
		if status, body := cl.post("/login", "application/x-www-form-urlencoded", url.Values{"username": {name}}.Encode()); status != 204 {
			t.Fatalf("login %s: %d %v", name, status, body)
		}
		return cl
	}
	staff, alice := login("staff"), login("alice")
	if status, _ := (&client{t, srv, centrifugotest.HTTP}).post("/login", "application/x-www-form-urlencoded", "username=a+b"); status != 400 {
		t.Errorf("login with a space in the ID: %d", status)
	}
	if status, _ := staff.token("$site_admin"); status != 403 {
		t.Errorf("staff's token for $site_admin: %d", status)
	}
	status, subToken := staff.token("$site_staff")
	if status != 200 {
		t.Fatalf("staff's token for $site_staff: %d", status)
	}
	_, conn := staff.post("/instant/connection_token", "application/json", `{}`)

	// staff listens on $site_staff with centrifuge-go, as a browser would.
	cc := centrifuge.NewJsonClient(cent.WebsocketURL, centrifuge.Config{Token: conn["token"].(string), HandshakeTimeout: 10 * time.Second})
	defer cc.Close()
	if err := cc.Connect(); err != nil {
		t.Fatal(err)
	}
	sub, err := cc.NewSubscription("$site_staff", centrifuge.SubscriptionConfig{Token: subToken})
	if err != nil {
		t.Fatal(err)
	}
	got, subscribed := make(chan []byte, 1), make(chan struct{})
	sub.OnSubscribed(func(centrifuge.SubscribedEvent) { close(subscribed) })
	sub.OnPublication(func(e centrifuge.PublicationEvent) { got <- e.Data })
	if err := sub.Subscribe(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("staff could not subscribe to $site_staff")
	}
	if status, body := alice.post("/orders", "application/json", `{}`); status != 202 {
		t.Fatalf("alice's order: %d %v", status, body)
	}
	select {
	case data := <-got:
		var ev map[string]any
		if json.Unmarshal(data, &ev) != nil || ev["message"] != "New order" || ev["data"].(map[string]any)["by"] != "alice" {
			t.Errorf("staff received %s", data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the order never reached staff")
	}

	// After logout, a copy of staff's cookie is anonymous.
	u, _ := url.Parse(srv.URL)
	copied, _ := cookiejar.New(nil)
	copied.SetCookies(u, staff.c.Jar.Cookies(u))
	if status, _ := staff.post("/logout", "application/json", `{}`); status != 204 {
		t.Fatalf("logout: %d", status)
	}
	thief := &client{t, srv, &http.Client{Jar: copied, Transport: centrifugotest.HTTP.Transport}}
	if status, _ := thief.token("$site_staff"); status != 403 {
		t.Errorf("a copy of staff's cookie after logout: %d", status)
	}
	if status, _ := thief.post("/orders", "application/json", `{}`); status != 401 {
		t.Errorf("an order with the logged-out cookie: %d", status)
	}
}

// TestSetupChecksCentrifugo: the app's own commands write the config that
// a real Centrifugo then runs with, and check it; at startup the app logs
// what instant.Check says: that Centrifugo fits, and, once the app holds
// another token secret, ErrTokenSecret's problem with its fix.
func TestSetupChecksCentrifugo(t *testing.T) {
	gin.SetMode(gin.TestMode)
	env := map[string]string{
		"CENTRIFUGO_HTTP_API_KEY":                 "minimal-api-key",
		"CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "minimal-token-secret-0123456789abcdef",
		"SESSION_AUTH_KEY":                        string(authKey),
		"SESSION_ENCRYPTION_KEY":                  string(encKey),
		"INSTANT_SITE_ORIGIN":                     "", // the default, http://127.0.0.1:8080
		"CENTRIFUGE_JS":                           centrifugeJS,
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var logged strings.Builder
	defer log.SetOutput(log.Writer())
	log.SetOutput(&logged)

	startAppCentrifugo(t)
	if srv, err := setup([]string{"check"}); srv != nil || err != nil {
		t.Errorf("check: %v, %v", srv, err)
	}
	srv, err := setup(nil)
	if srv == nil || err != nil {
		t.Fatalf("setup: %v, %v", srv, err)
	}
	if !strings.Contains(logged.String(), "centrifugo fits the app\n") || strings.Contains(logged.String(), "does not fit") {
		t.Errorf("the startup logged:\n%s", logged.String())
	}

	logged.Reset()
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "another-token-secret-0123456789abcdef")
	if srv, err := setup(nil); srv == nil || err != nil {
		t.Fatalf("setup: %v, %v", srv, err)
	}
	want := "centrifugo does not fit the app:\n" + instant.ErrTokenSecret.Error() + ": "
	if !strings.Contains(logged.String(), want) || !strings.Contains(logged.String(), "set the app's TokenSecret") {
		t.Errorf("the startup logged:\n%s\nwant %q and the fix", logged.String(), want)
	}
	if _, err := setup([]string{"check"}); !errors.Is(err, instant.ErrTokenSecret) {
		t.Errorf("check with another secret: %v", err)
	}
}

// TestMinimalAppRefusesCrossSitePosts: the app's own POST routes refuse
// a browser's cross-site request (a form on another site that logs the
// visitor in as the attacker, say) as instant's routes do, and take
// same-origin ones.
func TestMinimalAppRefusesCrossSitePosts(t *testing.T) {
	gin.SetMode(gin.TestMode)
	inst, err := instant.New(instant.Config{
		APIURL:      "http://127.0.0.1:1/api", // no Centrifugo: these routes do not publish
		APIKey:      "minimal-api-key",
		TokenSecret: "minimal-token-secret-0123456789abcdef",
	})
	if err != nil {
		t.Fatal(err)
	}
	app, err := newApp(inst, centrifugeJS, authKey, encKey, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	defer srv.Close()
	cases := []struct {
		name, path string
		header     map[string]string
		status     int
	}{
		{"login, cross-site", "/login", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"login, same-site", "/login", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"login, foreign Origin", "/login", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"logout, cross-site", "/logout", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"orders, foreign Origin", "/orders", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"login, same-origin", "/login", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusNoContent},
		{"login, own Origin", "/login", map[string]string{"Origin": srv.URL}, http.StatusNoContent},
		{"login, no browser headers", "/login", nil, http.StatusNoContent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tc.path, strings.NewReader("username=mallory"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := centrifugotest.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if cookie := resp.Header.Get("Set-Cookie"); tc.status == http.StatusForbidden && cookie != "" {
				t.Errorf("a refused request set a cookie: %s", cookie)
			}
		})
	}
}

// TestServerTimeouts: the server cuts off slow and idle clients, and gives
// a broadcast (PublishTimeout, 5 s) time to finish.
func TestServerTimeouts(t *testing.T) {
	s := newServer("127.0.0.1:8080", http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.IdleTimeout <= 0 || s.WriteTimeout < 2*(5*time.Second) {
		t.Errorf("read header %v, read %v, write %v, idle %v: want all set, write at least twice PublishTimeout",
			s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout)
	}
}

// TestMinimalPageInChromium: the README's five steps, in a browser. The
// app's own commands write the config the real Centrifugo runs; the app
// logs that it fits; in Chromium, the page loads centrifuge.js (from npm)
// and client.js, connects as the anonymous visitor, logs in as staff
// through its form, and shows the order it posts, arrived on $site_staff.
// Without centrifuge-js the app says how to get it.
func TestMinimalPageInChromium(t *testing.T) {
	gin.SetMode(gin.TestMode)
	chromium := chromiumPath(t)
	if _, err := os.Stat(centrifugeJS); err != nil {
		needTool(t, "no %s: run `npm ci` in example_app (%v)", centrifugeJS, err)
	}
	// The app's address first: its origin goes into Centrifugo's config.
	web := httptest.NewUnstartedServer(nil)
	defer web.Close()
	env := map[string]string{
		"CENTRIFUGO_HTTP_API_KEY":                 "minimal-api-key",
		"CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "minimal-token-secret-0123456789abcdef",
		"SESSION_AUTH_KEY":                        string(authKey),
		"SESSION_ENCRYPTION_KEY":                  string(encKey),
		"INSTANT_SITE_ORIGIN":                     "http://" + web.Listener.Addr().String(),
		"CENTRIFUGE_JS":                           filepath.Join(t.TempDir(), "missing.js"),
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var logged strings.Builder
	defer log.SetOutput(log.Writer())
	log.SetOutput(&logged)
	startAppCentrifugo(t)
	if _, err := setup(nil); err == nil || !strings.Contains(err.Error(), "npm install centrifuge@5") {
		t.Errorf("setup without centrifuge-js: %v", err)
	}
	t.Setenv("CENTRIFUGE_JS", centrifugeJS)
	srv, err := setup(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "centrifugo fits the app\n") {
		t.Errorf("the startup logged:\n%s", logged.String())
	}
	web.Config.Handler = srv.Handler
	web.Start()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox,
		chromedp.NoFirstRun, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	var console strings.Builder
	tab, cancelTab := chromedp.NewContext(alloc, chromedp.WithBrowserOption(
		chromedp.WithConsolef(func(format string, args ...any) { fmt.Fprintf(&console, format+"\n", args...) })))
	defer cancelTab()
	defer func() {
		if t.Failed() {
			t.Logf("browser console:\n%s", console.String())
		}
	}()
	text := func(id string) string {
		s, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById(`+strconv.Quote(id)+`).textContent`))
		if err != nil {
			t.Fatalf("#%s: %v", id, err)
		}
		return s
	}
	waitFor := func(what, expr string) {
		t.Helper()
		var err error
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
			// A poll the page's reload (after a login) cut short is made
			// again ("navigated", "Cannot find context").
			if _, err = chromedp.Run(tab, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
				chromedp.WithPollingTimeout(time.Until(end)))); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("waiting for %s: %v (state %q %q, channels %q, denied %q, errors %q)", what, err,
				text("state"), text("why"), text("channels"), text("denied"), text("errors"))
		}
	}
	connected := func(channel string) string {
		return `document.getElementById('state').textContent === 'connected' && document.getElementById('channels').textContent.split(' ').includes('` + channel + `')`
	}
	if err := chromedp.Do(tab, chromedp.Navigate(web.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor("the anonymous visitor's public channel", connected("site_public"))
	if who := text("user"); who != "nobody" {
		t.Errorf("anonymous: logged in as %q", who)
	}
	if err := chromedp.Do(tab, chromedp.SendKeys("#username", "staff"), chromedp.Click("#login button")); err != nil {
		t.Fatal(err)
	}
	waitFor("staff's channels", `document.getElementById('user').textContent === 'staff' && (`+connected("$site_staff")+`)`)
	if err := chromedp.Do(tab, chromedp.Click("#order")); err != nil {
		t.Fatal(err)
	}
	waitFor("the order", `document.getElementById('events').textContent.includes('$site_staff: New order {"by":"staff"}')`)
	if got := text("errors") + text("denied"); got != "" {
		t.Errorf("errors or denied channels: %q", got)
	}
}

// chromiumPath finds Chromium (CHROMIUM_BIN, else Debian's chromium).
// startAppCentrifugo starts a Centrifugo on the config the app's
// centrifugo-config subcommand writes, on a free port (the app's listens on
// 8000), and points INSTANT_API_URL at it.
func startAppCentrifugo(t *testing.T) {
	t.Helper()
	centrifugotest.Start(t, func(port int) ([]byte, error) {
		t.Setenv("INSTANT_API_URL", fmt.Sprintf("http://127.0.0.1:%d/api", port))
		path := filepath.Join(t.TempDir(), "centrifugo.json")
		if srv, err := setup([]string{"centrifugo-config", path}); srv != nil || err != nil {
			return nil, fmt.Errorf("centrifugo-config: %v, %v", srv, err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var conf map[string]any
		if err := json.Unmarshal(raw, &conf); err != nil {
			return nil, err
		}
		conf["http_server"].(map[string]any)["port"] = port
		return json.Marshal(conf)
	})
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	needTool(t, "no chromium (apt-get install chromium)")
	return ""
}

// needTool ends the test when a tool is missing: Fatal under CI=true
// (make test installs everything), Skip elsewhere.
func needTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}
