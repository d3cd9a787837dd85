package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/internal/centrifugotest"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	code := m.Run()
	stopChromium()
	os.Exit(code)
}

// testSecrets are fixed secrets for tests.
var testSecrets = secrets{
	TokenSecret: strings.Repeat("t", 64),
	APIKey:      strings.Repeat("k", 32),
	CookieKey:   strings.Repeat("ab", cookieKeyLength),
}

// closedAPIURL is a Centrifugo API address where nothing listens.
func closedAPIURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u + "/api"
}

// noCentrifugo, given to newTestSite or startSite for the API URL, builds
// a site whose Centrifugo is down: its API URL is closedAPIURL's, and its
// PublishTimeout deadTimeout, so that its broadcasts and logouts fail at
// once rather than after the default 5 s each.
const noCentrifugo = ""

// deadTimeout is the PublishTimeout of a test site without Centrifugo.
const deadTimeout = 200 * time.Millisecond

// newTestSite builds the site served on port against the Centrifugo API
// at apiURL (or none: see noCentrifugo), with cheap password hashes and a
// stand-in centrifuge.js.
func newTestSite(t *testing.T, apiURL string, port int) *site {
	t.Helper()
	cfg := demoConfig(apiURL, testSecrets)
	if apiURL == noCentrifugo {
		cfg = demoConfig(closedAPIURL(t), testSecrets)
		cfg.PublishTimeout = deadTimeout
	}
	st, err := newSite(siteConfig{
		Instant:      cfg,
		Port:         port,
		Secrets:      testSecrets,
		CentrifugeJS: []byte("/* centrifuge.js stand-in */"),
		BcryptCost:   bcrypt.MinCost,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("newSite: %v", err)
	}
	return st
}

// browser is an HTTP client with its own cookie jar that does not follow
// redirects, talking to one test server.
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: srv.URL, client: &http.Client{
		Transport:     centrifugotest.HTTP.Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// startSite serves a test site on a loopback httptest server.
func startSite(t *testing.T, apiURL string) (*site, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	st := newTestSite(t, apiURL, srv.Listener.Addr().(*net.TCPAddr).Port)
	srv.Config.Handler = st.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return st, srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, body io.Reader, header map[string]string) response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v // the Host header is not in req.Header
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

func (b *browser) get(path string) response { return b.do(http.MethodGet, path, nil, nil) }

// postForm sends a form as a same-origin browser form post would.
func (b *browser) postForm(path string, form url.Values, header ...string) response {
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
	for k := 0; k+1 < len(header); k += 2 {
		h[header[k]] = header[k+1]
	}
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()), h)
}

// login logs in through the login form and checks it worked.
func (b *browser) login(username, password string) {
	b.t.Helper()
	r := b.postForm("/login", url.Values{"username": {username}, "password": {password}})
	if r.status != http.StatusSeeOther {
		b.t.Fatalf("login as %s: status %d, want 303; body:\n%s", username, r.status, r.body)
	}
}

// browserAs is a browser logged in as the demo account username, or an
// anonymous one for "".
func browserAs(t *testing.T, srv *httptest.Server, username string) *browser {
	t.Helper()
	b := newBrowser(t, srv)
	if username != "" {
		b.login(username, password(t, username))
	}
	return b
}

// channels reads GET /instant/channels.
func (b *browser) channels() (user map[string]any, names []string) {
	b.t.Helper()
	r := b.get("/instant/channels")
	if r.status != http.StatusOK {
		b.t.Fatalf("GET /instant/channels: %d %s", r.status, r.body)
	}
	var got struct {
		User     map[string]any `json:"user"`
		Channels []struct {
			Name string `json:"name"`
		} `json:"channels"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		b.t.Fatalf("channels answer %q: %v", r.body, err)
	}
	for _, c := range got.Channels {
		names = append(names, c.Name)
	}
	return got.User, names
}

// password returns the demo password of username.
func password(t *testing.T, username string) string {
	t.Helper()
	for _, a := range demoAccounts() {
		if a.User.Username == username {
			return a.Password
		}
	}
	t.Fatalf("no demo account %q", username)
	return ""
}

// centrifugoConfigFor returns the centrifugotest.ConfigFunc of a Centrifugo
// that agrees with the test sites and lets browsers connect from the site
// on appPort.
func centrifugoConfigFor(appPort int) centrifugotest.ConfigFunc {
	return func(port int) ([]byte, error) {
		inst, err := instant.New(demoConfig("http://127.0.0.1:"+strconv.Itoa(port)+"/api", testSecrets))
		if err != nil {
			return nil, err
		}
		return inst.CentrifugoConfig(centrifugoOptions(port, appPort))
	}
}

// ==== Chromium: the example site in a real browser, against a real
// Centrifugo (the e2e tests).

// artifactsDir receives the end-to-end test's screenshots (ignored by git).
const artifactsDir = "artifacts"

// screenshotGrace is how long Chromium outlives the test's own limit, so
// that a test that ran out of time still leaves its screenshots.
const screenshotGrace = 15 * time.Second

// requireTool ends the test when a tool is missing: Fatal under CI=true,
// where the suite must run whole, Skip elsewhere.
func requireTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}

// chromiumPath finds Debian's chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	requireTool(t, "no chromium (apt-get install chromium)")
	return ""
}

// chromium is the package's one headless Chromium, started by the first
// end-to-end test that needs it (sharedChromium) and stopped by TestMain.
// Each test works in browser contexts of its own (newPage).
var chromium struct {
	mu      sync.Mutex
	browser context.Context // nil until started
	stop    func()
}

// sharedChromium returns the shared browser, starting it on the first call.
// A start that fails fails the test, and the next test tries again.
func sharedChromium(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	chromium.mu.Lock()
	defer chromium.mu.Unlock()
	if chromium.browser != nil {
		return chromium.browser
	}
	dir, err := os.MkdirTemp("", "e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Not a deadline: Chromium lives as long as the context that starts it.
	runCtx, cancelRun := context.WithCancel(context.Background())
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(runCtx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.DisableGPU,
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1200, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	stop := func() {
		cancelBrowser()
		cancelAlloc()
		cancelRun()
		_ = os.RemoveAll(dir)
	}
	timer := time.AfterFunc(30*time.Second, cancelRun)
	err = chromedp.Do(browserCtx) // starts Chromium
	timer.Stop()
	if err != nil {
		stop()
		t.Fatalf("starting %s: %v", path, err)
	}
	chromium.browser, chromium.stop = browserCtx, stop
	return browserCtx
}

// stopChromium stops the shared browser if a test started it.
func stopChromium() {
	chromium.mu.Lock()
	defer chromium.mu.Unlock()
	if chromium.stop != nil {
		chromium.stop()
		chromium.browser, chromium.stop = nil, nil
	}
}

// e2ePage is one browser tab of the end-to-end test.
type e2ePage struct {
	t        *testing.T
	name     string
	ctx      context.Context
	deadline time.Time // the test's limit; see screenshotGrace
	shot     string    // the screenshot's file name in artifactsDir
}

// runCtx bounds one step by the test's limit.
func (p *e2ePage) runCtx() (context.Context, context.CancelFunc) {
	return context.WithDeadline(p.ctx, p.deadline)
}

func (p *e2ePage) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := p.runCtx()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func (p *e2ePage) eval(expr string, opts ...chromedp.EvaluateOption) any {
	p.t.Helper()
	ctx, cancel := p.runCtx()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr, opts...))
	if err != nil {
		p.t.Fatalf("%s: evaluating %s: %v", p.name, expr, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is true.
func (p *e2ePage) waitFor(what, expr string) {
	p.t.Helper()
	ctx, cancel := p.runCtx()
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		sctx, scancel := context.WithTimeout(p.ctx, 2*time.Second)
		defer scancel()
		state, serr := chromedp.Run(sctx, chromedp.Evaluate[string](`(() => {
			const s = document.querySelector('#state');
			const chans = [...document.querySelectorAll('#channels .channel')].map(li => li.dataset.channel + ':' + li.dataset.state);
			return (s ? s.dataset.state + ' (' + s.title + ')' : 'no #state') + ', channels ' + chans.join(' ');
		})()`))
		if serr != nil {
			state = serr.Error()
		}
		p.t.Fatalf("%s: waiting for %s: %v (state %s)", p.name, what, err, state)
	}
}

// waitLive waits for the connection and for every listed channel to be
// subscribed, and returns the channels.
func (p *e2ePage) waitLive() []string {
	p.t.Helper()
	p.waitFor("the subscriptions", `(() => {
		const state = document.querySelector('#state');
		const items = [...document.querySelectorAll('#channels .channel')];
		return !!state && state.dataset.state === 'connected' && items.length > 0 &&
			items.every(li => li.dataset.state === 'subscribed');
	})()`)
	return p.strings(`[...document.querySelectorAll('#channels .channel')].map(li => li.dataset.channel)`)
}

func (p *e2ePage) strings(expr string) []string {
	p.t.Helper()
	ctx, cancel := p.runCtx()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](expr))
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	return v
}

// messages lists the messages the home page shows.
func (p *e2ePage) messages() []string {
	p.t.Helper()
	return p.strings(`[...document.querySelectorAll('#events .event .event-message')].map(e => e.textContent)`)
}

// snap saves the tab as it is now, at the moment its assertions passed,
// into artifactsDir as <shot>-<label>.png.
func (p *e2ePage) snap(label string) {
	p.t.Helper()
	p.writeScreenshot(strings.TrimSuffix(p.shot, ".png")+"-"+label+".png", "assertions passed")
}

// saveScreenshot saves the tab as it is now into artifactsDir. It runs
// when the test ends, passed or failed (a t.Cleanup of newPage), so it
// only logs what goes wrong.
func (p *e2ePage) saveScreenshot() {
	outcome := "test passed"
	if p.t.Failed() {
		outcome = "test failed"
	}
	p.writeScreenshot(p.shot, outcome)
}

func (p *e2ePage) writeScreenshot(name, outcome string) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("%s: no screenshot (%s): %v", p.name, outcome, err)
		return
	}
	path := filepath.Join(artifactsDir, name)
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		p.t.Logf("%s: no screenshot: %v", p.name, err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Logf("%s: no screenshot: %v", p.name, err)
		return
	}
	p.t.Logf("screenshot of %s (%s): %s", p.name, outcome, path)
}

// e2eEnv is a site served on loopback, the Centrifugo it talks to, and the
// shared Chromium, whose tabs the test opens; all but Chromium end with the
// test (and the tabs within its deadline).
type e2eEnv struct {
	t          *testing.T
	srv        *httptest.Server
	site       *site
	browser    context.Context // the shared Chromium, until the test's deadline
	deadline   time.Time       // the test's limit
	shotPrefix string          // of the screenshots' file names
	apiURL     string          // Centrifugo's server API, for what a test sends it straight
	console    *syncBuffer     // the tabs' consoles
	mu         sync.Mutex
	hits       map[string]int // requests by path
}

// startE2E starts the environment on server (serverEmbedded or
// serverCentrifugo), which the test may use for limit (its tabs live
// screenshotGrace longer). connTTL and subTTL, when not zero, set the
// lifetimes of the connection and subscription tokens. The screenshots'
// names start with shotPrefix and the server.
func startE2E(t *testing.T, server, shotPrefix string, limit, connTTL, subTTL time.Duration) *e2eEnv {
	t.Helper()
	browser := sharedChromium(t)
	shotPrefix += "-" + server
	clientJS, err := os.ReadFile(defaultCentrifugeJS)
	if err != nil {
		requireTool(t, "no %s: run `npm install` in example_app (%v)", defaultCentrifugeJS, err)
	}
	deadline := time.Now().Add(limit)
	browser, cancel := context.WithDeadline(browser, deadline.Add(screenshotGrace))
	t.Cleanup(cancel)

	// The site's address first: Centrifugo must allow its origin.
	srv := httptest.NewUnstartedServer(nil)
	appPort := srv.Listener.Addr().(*net.TCPAddr).Port
	var cfg instant.Config
	apiURL := ""
	if server == serverCentrifugo {
		cent := centrifugotest.Start(t, centrifugoConfigFor(appPort))
		cfg, apiURL = demoConfig(cent.APIURL, testSecrets), cent.APIURL
	} else {
		es, err := embedded.New(embedded.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = es.Close() })
		cfg = demoConfig("", testSecrets)
		cfg.Server = es
	}
	cfg.ConnectionTokenTTL, cfg.SubscriptionTokenTTL = connTTL, subTTL
	st, err := newSite(siteConfig{
		Instant:      cfg,
		Port:         appPort,
		Secrets:      testSecrets,
		CentrifugeJS: clientJS,
		BcryptCost:   bcrypt.MinCost,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &e2eEnv{t: t, srv: srv, site: st, browser: browser, deadline: deadline, shotPrefix: shotPrefix, apiURL: apiURL, console: &syncBuffer{}, hits: map[string]int{}}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.hits[r.URL.Path]++
		e.mu.Unlock()
		st.Handler().ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser console:\n%s", e.console.String())
		}
	})
	return e
}

// newPage opens a tab: in a browser context of its own (own cookies)
// when parent is nil, else a second tab of the parent's visitor (same
// cookies). Whether the test passes or fails, the tab is saved as a
// screenshot in artifactsDir when the test ends.
func (e *e2eEnv) newPage(parent *e2ePage, name string) *e2ePage {
	t := e.t
	t.Helper()
	var pctx context.Context
	var cancel context.CancelFunc
	if parent == nil {
		pctx, cancel = chromedp.NewContext(e.browser, chromedp.WithNewBrowserContext())
	} else {
		pctx, cancel = chromedp.NewContext(parent.ctx)
	}
	t.Cleanup(cancel)
	slug := strings.ReplaceAll(strings.ToLower(name), " ", "-")
	p := &e2ePage{t: t, name: name, ctx: pctx, deadline: e.deadline, shot: e.shotPrefix + "-" + slug + ".png"}
	// Cleanups run last first: the screenshot before the tab closes.
	t.Cleanup(p.saveScreenshot)
	// The tab's first step opens it: it must not be bounded by a context
	// of its own, which would close the tab when it ends.
	if err := chromedp.Do(pctx, chromedp.EmulateViewport(1200, 900)); err != nil {
		t.Fatalf("%s: opening the tab: %v", name, err)
	}
	console := chromedp.Console(pctx) // ends when the tab closes
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			fmt.Fprintf(e.console, "%s: %s\n", name, m)
		}
	}()
	return p
}

// open gives a visitor a browser context of their own (own cookies), logs
// them in through the login form unless username is empty, and leaves the
// tab on the home page.
func (e *e2eEnv) open(name, username string) *e2ePage {
	t := e.t
	t.Helper()
	p := e.newPage(nil, name)
	if username == "" {
		p.do(chromedp.Navigate(e.srv.URL + "/"))
		return p
	}
	p.do(
		chromedp.Navigate(e.srv.URL+"/login"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("username"), username),
		chromedp.SendKeys(chromedp.ID("password"), password(t, username)),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("events")),
	)
	if who := p.strings(`[document.querySelector('#whoami').dataset.user]`); !slices.Equal(who, []string{username}) {
		t.Fatalf("%s: logged in as %v", name, who)
	}
	return p
}

func (e *e2eEnv) hitsOf(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hits[path]
}

// jsArray writes a JavaScript array of strings.
func jsArray(items []string) string {
	quoted := make([]string, len(items))
	for k, s := range items {
		quoted[k] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// syncBuffer is a bytes.Buffer safe to read while another goroutine
// writes to it (run's output, Chromium's console).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ==== Centrifugo's server API, read directly.

// history reads channel's latest publications (their data) through
// Centrifugo's server API.
func history(ctx context.Context, apiURL, channel string) ([]json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"channel": channel, "limit": 10})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/history", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "apikey "+testSecrets.APIKey)
	resp, err := centrifugotest.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var reply struct {
		Error  *struct{ Message string } `json:"error"`
		Result struct {
			Publications []struct {
				Data json.RawMessage `json:"data"`
			} `json:"publications"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return nil, fmt.Errorf("history: HTTP %d: %w", resp.StatusCode, err)
	}
	if reply.Error != nil {
		return nil, errors.New("history: " + reply.Error.Message)
	}
	var out []json.RawMessage
	for _, p := range reply.Result.Publications {
		out = append(out, p.Data)
	}
	return out, nil
}
