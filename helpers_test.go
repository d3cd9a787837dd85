package instant_test

// The helpers every black-box test shares (package instant_test), in one
// place, by what they set up.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

	"github.com/centrifugal/centrifuge-go"
	"github.com/centrifugal/gocent/v3"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
	"github.com/golang-jwt/jwt/v5"
)

// ==== Configs, routers and browsers: an Instant as the tests configure it, a
// Gin app around it, and a browser with its own cookie jar.

func init() { gin.SetMode(gin.TestMode) }

const (
	testSecret = "test-secret-0123456789abcdef0123456789"
	testAPIKey = "test-api-key"
)

var cookieKey = []byte("cookie-key-0123456789abcdef01234")

// Users of every role, as the tests log them in.
var (
	alice   = instant.User{ID: "1", Username: "alice"}
	gina    = instant.User{ID: "2", Username: "gina", Groups: []string{"editors"}}
	sam     = instant.User{ID: "3", Username: "sam", Staff: true}
	root    = instant.User{ID: "4", Username: "root", Superuser: true}
	nobody  *instant.User
	editors = map[string][]string{"editors": {"$site_editors"}}
)

func testConfig() instant.Config {
	return instant.Config{APIURL: "http://127.0.0.1:1/api", APIKey: testAPIKey, TokenSecret: testSecret, GroupChannels: editors}
}

func newInstant(t testing.TB, cfg instant.Config) *instant.Instant {
	t.Helper()
	inst, err := instant.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return inst
}

// newRouter is a Gin app as the README sets it up, plus a test login route.
func newRouter(inst *instant.Instant) *gin.Engine {
	return newRouterWith(inst, cookie.NewStore(cookieKey))
}

// newRouterWith is newRouter with another session store.
func newRouterWith(inst *instant.Instant, store sessions.Store) *gin.Engine {
	r := gin.New()
	r.Use(sessions.Sessions("app", store))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	r.POST("/test/login", func(c *gin.Context) {
		var u instant.User
		if err := c.ShouldBindJSON(&u); err != nil {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		if err := instant.Login(c, u); err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		c.Status(http.StatusNoContent)
	})
	r.POST("/test/logout", func(c *gin.Context) {
		if err := instant.Logout(c); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.Status(http.StatusNoContent)
	})
	return r
}

// browser is an HTTP client with a cookie jar against a test server.
type browser struct {
	t   testing.TB
	srv *httptest.Server
	c   *http.Client
}

func newBrowser(t testing.TB, h http.Handler) *browser {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, srv: srv, c: &http.Client{Jar: jar, Transport: centrifugotest.HTTP.Transport}}
}

// as logs u in (nil: stays anonymous) and returns b.
func (b *browser) as(u *instant.User) *browser {
	b.t.Helper()
	if u == nil {
		return b
	}
	status, _ := b.postJSON("/test/login", u)
	if status != http.StatusNoContent {
		b.t.Fatalf("login %s: status %d", u.ID, status)
	}
	return b
}

func (b *browser) do(req *http.Request) (int, map[string]any) {
	b.t.Helper()
	status, out, err := b.try(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return status, out
}

// try is do for other goroutines than the test's: it reports instead of
// failing the test.
func (b *browser) try(req *http.Request) (int, map[string]any, error) {
	resp, err := b.c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: status %d, body not a JSON object: %q", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out, nil
}

// tryPostJSON is postJSON for other goroutines than the test's.
func (b *browser) tryPostJSON(path string, v any) (int, map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return b.try(req)
}

func (b *browser) post(path, contentType string, body []byte) (int, map[string]any) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return b.do(req)
}

func (b *browser) postJSON(path string, v any) (int, map[string]any) {
	b.t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.post(path, "application/json", raw)
}

func (b *browser) get(path string) (int, map[string]any) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
	return b.do(req)
}

// tryGet is get for other goroutines than the test's.
func (b *browser) tryGet(path string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	return b.try(req)
}

// cookieHeader is the Cookie header b's requests carry.
func (b *browser) cookieHeader() http.Header {
	u, _ := url.Parse(b.srv.URL)
	h := http.Header{}
	for _, c := range b.c.Jar.Cookies(u) {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	return h
}

// forgeToken signs claims with secret, as the plugin's routes never would
// (a token they refuse to give, or signed with another secret).
func forgeToken(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// parseToken checks the signature with the shared secret and returns the claims.
func parseToken(t testing.TB, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		return []byte(testSecret), nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return claims
}

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// rulesInstant has the default channels, a group, and two custom rules.
func rulesInstant(t testing.TB) *instant.Instant {
	inst := newInstant(t, testConfig())
	if err := inst.Authorize("$orders:{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && p["id"] == "o"+u.ID, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := inst.Authorize("$chat:*", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && !strings.HasPrefix(p["*"], "secret"), nil
	}); err != nil {
		t.Fatal(err)
	}
	return inst
}

func allowAll(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }

// loginCookie returns a session cookie holding u, as Login writes it.
func loginCookie(b testing.TB, u instant.User) *http.Cookie {
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.GET("/login", func(c *gin.Context) { _ = instant.Login(c, u) })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		b.Fatalf("cookies %v", cookies)
	}
	return cookies[0]
}

// route is one side of a comparison: a handler and the request it serves.
type route struct {
	h   http.Handler
	req *http.Request
}

// fresh returns a copy of rt's request with its own body: gorilla/sessions
// caches the decoded session on the request, so reusing one would skip the
// decoding.
func (rt route) fresh(body []byte) *http.Request {
	req := new(http.Request)
	*req = *rt.req
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return req
}

// ==== Logs: what an Instant logs, recorded.

// logRecorder keeps what the plugin logs.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

// loggedInstant is an Instant of testConfig (changed by mutate, when not
// nil) whose log the test reads.
func loggedInstant(t testing.TB, mutate func(*instant.Config)) (*instant.Instant, *logRecorder) {
	logger, logs := newLogger()
	cfg := testConfig()
	cfg.Logger = logger
	if mutate != nil {
		mutate(&cfg)
	}
	return newInstant(t, cfg), logs
}

func newLogger() (*slog.Logger, *logRecorder) {
	rec := &logRecorder{}
	return slog.New(&captureHandler{rec: rec}), rec
}

func (l *logRecorder) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Level >= slog.LevelWarn {
			out = append(out, r.Message)
		}
	}
	return out
}

func (l *logRecorder) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		b.WriteByte('\n')
	}
	return b.String()
}

// captureHandler is a slog.Handler that keeps records in a logRecorder.
type captureHandler struct {
	rec   *logRecorder
	attrs []slog.Attr
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.rec.mu.Lock()
	h.rec.recs = append(h.rec.recs, r)
	h.rec.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &captureHandler{rec: h.rec, attrs: append(append([]slog.Attr{}, h.attrs...), a...)}
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

// ==== Stand-in Centrifugo APIs, for unit tests.

// fakeAPI records the commands of each request to the server API and
// answers as told. It stands in for Centrifugo in unit tests
// (publisher_test.go, apiclient_test.go, events_test.go, ...);
// integration_test.go publishes through the real server.
// Publishes come to /api/batch ({"commands":[{"publish":{…}}]}), other
// calls to /api (gocent's JSON lines); both are recorded in the lines'
// form, {"method","params"}.
type fakeAPI struct {
	mu       sync.Mutex
	requests [][]map[string]any
	auth     []string
	// reply answers a request of n commands, when set; batchReply answers
	// the /api/batch ones instead, when set. Set both with answer: a
	// request of an earlier call may still be in the handler.
	reply      func(w http.ResponseWriter, n int)
	batchReply func(w http.ResponseWriter, n int)
}

// answer sets how f answers from now on.
func (f *fakeAPI) answer(reply, batchReply func(w http.ResponseWriter, n int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reply, f.batchReply = reply, batchReply
}

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cmds []map[string]any
		batch := strings.HasSuffix(r.URL.Path, "/api/batch")
		if batch {
			var req struct{ Commands []map[string]map[string]any }
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				t.Errorf("batch not JSON: %v", err)
			}
			for _, c := range req.Commands {
				for method, params := range c {
					cmds = append(cmds, map[string]any{"method": method, "params": params})
				}
			}
		} else {
			sc := bufio.NewScanner(r.Body)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var cmd map[string]any
				if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
					t.Errorf("command not JSON: %q", sc.Bytes())
				}
				cmds = append(cmds, cmd)
			}
		}
		f.mu.Lock()
		f.requests = append(f.requests, cmds)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		reply := f.reply
		if batch && f.batchReply != nil {
			reply = f.batchReply
		}
		f.mu.Unlock()
		switch {
		case reply != nil:
			reply(w, len(cmds))
		case batch:
			w.Write([]byte(`{"replies":[` + strings.Repeat(`{"publish":{}},`, len(cmds)-1) + `{"publish":{}}]}`))
		default:
			for range cmds {
				w.Write([]byte(`{"result":{}}` + "\n"))
			}
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// published returns the channel and decoded payload of each publish.
func (f *fakeAPI) published(t *testing.T, req int) (channels []string, payloads []map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Other calls (the access log a Login session's replica reads, see
	// reauth.go) are not counted.
	var publishes [][]map[string]any
	for _, r := range f.requests {
		if len(r) > 0 && r[0]["method"] == "publish" {
			publishes = append(publishes, r)
		}
	}
	if req >= len(publishes) {
		t.Fatalf("publish request %d of %d", req, len(publishes))
	}
	for _, cmd := range publishes[req] {
		if cmd["method"] != "publish" {
			t.Fatalf("method %v", cmd["method"])
		}
		params := cmd["params"].(map[string]any)
		channels = append(channels, params["channel"].(string))
		payloads = append(payloads, params["data"].(map[string]any))
	}
	return channels, payloads
}

// sent is the number of requests the stand-in has had.
func (f *fakeAPI) sent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func fakeInstant(t *testing.T) (*instant.Instant, *fakeAPI) {
	f, srv := newFakeAPI(t)
	cfg := testConfig()
	cfg.APIURL = srv.URL + "/api"
	cfg.SiteName = "Demo"
	return newInstant(t, cfg), f
}

// batchOf is Centrifugo's answer to a batch: {"replies":[…]}.
func batchOf(replies ...string) string {
	return `{"replies":[` + strings.Join(replies, ",") + `]}`
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

func status(code int, retryAfter string) func(w http.ResponseWriter) {
	return statusAt(code, func() string { return retryAfter })
}

// statusAt is status with a Retry-After made when the answer is.
func statusAt(code int, retryAfter func() string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if v := retryAfter(); v != "" {
			w.Header().Set("Retry-After", v)
		}
		w.WriteHeader(code)
	}
}

// hangingServer takes every request and answers none before the test
// ends.
func hangingServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // first: cleanups run last-in first
	return srv
}

// ==== Live: a real Centrifugo on loopback, and real clients (centrifuge-go).

// liveSetup is a real Centrifugo, an Instant bound to it and a Gin app.
type liveSetup struct {
	srv  *centrifugotest.Server
	cfg  instant.Config // inst's, as given to New
	inst *instant.Instant
	app  http.Handler
}

// startCentrifugo starts Centrifugo with the config an Instant writes: the
// Instant of testConfig() changed by mod, its APIURL then the server's,
// once setup (rules, whose namespaces go into the config) has run on it,
// from opts with the port filled in (and LogLevel "error" when unset);
// edits, if any, change the config's bytes in turn. It returns the server,
// the Instant and its Config.
func startCentrifugo(t testing.TB, mod func(*instant.Config), setup func(*instant.Instant) error, opts instant.CentrifugoOptions, edits ...func([]byte) ([]byte, error)) (*centrifugotest.Server, *instant.Instant, instant.Config) {
	t.Helper()
	var inst *instant.Instant
	var cfg instant.Config
	srv := centrifugotest.Start(t, centrifugoConfig(&inst, &cfg, mod, setup, opts, edits...))
	return srv, inst, cfg
}

// centrifugoConfig is the config startCentrifugo writes; inst and cfg are
// set when it runs.
func centrifugoConfig(inst **instant.Instant, cfgp *instant.Config, mod func(*instant.Config), setup func(*instant.Instant) error, opts instant.CentrifugoOptions, edits ...func([]byte) ([]byte, error)) centrifugotest.ConfigFunc {
	return func(port int) ([]byte, error) {
		cfg := testConfig()
		if mod != nil {
			mod(&cfg)
		}
		cfg.APIURL = fmt.Sprintf("http://127.0.0.1:%d/api", port)
		*cfgp = cfg
		var err error
		if *inst, err = instant.New(cfg); err != nil {
			return nil, err
		}
		if setup != nil {
			if err := setup(*inst); err != nil {
				return nil, err
			}
		}
		o := opts
		o.Port, o.LogLevel = port, cmp.Or(o.LogLevel, "error")
		raw, err := (*inst).CentrifugoConfig(o)
		for _, edit := range edits {
			if err != nil {
				break
			}
			raw, err = edit(raw)
		}
		return raw, err
	}
}

// livePublishTimeout is the PublishTimeout of the Instants that talk to a
// live Centrifugo: how long it may take to answer, not a bound the tests
// assert (a stopped server refuses at once). A loaded machine (CI: three
// suites and Chromium at once) once took over 2 s to answer a publish.
const livePublishTimeout = 10 * time.Second

// startLive starts Centrifugo with the config CentrifugoConfig writes from
// opts, with a rule for "$orders:{id}".
func startLive(t *testing.T, opts instant.CentrifugoOptions) *liveSetup {
	t.Helper()
	ls := &liveSetup{}
	ls.srv, ls.inst, ls.cfg = startCentrifugo(t, func(c *instant.Config) { c.PublishTimeout = livePublishTimeout }, func(inst *instant.Instant) error {
		return inst.Authorize("$orders:{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
			return u != nil && p["id"] == "o"+u.ID, nil
		})
	}, opts)
	ls.app = newRouter(ls.inst)
	return ls
}

func (ls *liveSetup) connect(t *testing.T, u *instant.User) *liveClient {
	t.Helper()
	return ls.connectWith(t, newBrowser(t, ls.app).as(u))
}

// handshakeTimeout bounds a test client's dial and connect: centrifuge-go's
// 1s default ran out dialling loopback on a loaded machine.
const handshakeTimeout = 10 * time.Second

// connectWith connects a client whose tokens come from b's requests.
func (ls *liveSetup) connectWith(t *testing.T, b *browser) *liveClient {
	t.Helper()
	lc := &liveClient{t: t, b: b, subs: map[string]*centrifuge.Subscription{}}
	lc.c = centrifuge.NewJsonClient(ls.srv.WebsocketURL, centrifuge.Config{
		GetToken: func(centrifuge.ConnectionTokenEvent) (string, error) {
			return lc.token("/instant/connection_token", map[string]any{})
		},
		HandshakeTimeout: handshakeTimeout,
	})
	t.Cleanup(lc.c.Close)
	connected := make(chan struct{})
	var once sync.Once
	lc.c.OnConnected(func(centrifuge.ConnectedEvent) { once.Do(func() { close(connected) }) })
	if err := lc.c.Connect(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(2 * handshakeTimeout): // room for a handshake that timed out and a retry
		t.Fatal("the client did not connect")
	}
	return lc
}

// through is an Instant of the live setup's config whose API calls go to
// apiURL (and then apiURLs).
func (ls *liveSetup) through(t *testing.T, timeout time.Duration, apiURL string, apiURLs ...string) *instant.Instant {
	cfg := ls.cfg
	cfg.APIURL, cfg.APIURLs, cfg.PublishTimeout = apiURL, apiURLs, timeout
	return newInstant(t, cfg)
}

// liveClient is one centrifuge-go connection whose tokens come from the
// app's routes, as a browser's would.
type liveClient struct {
	t    *testing.T
	b    *browser
	c    *centrifuge.Client
	mu   sync.Mutex
	got  []map[string]any // payloads received, in order
	subs map[string]*centrifuge.Subscription
	// refusal is the code of Centrifugo's last subscribe error.
	refusal uint32
	// calls counts the token requests, by route.
	calls map[string]int
}

func (lc *liveClient) token(path string, body any) (string, error) {
	lc.mu.Lock()
	if lc.calls == nil {
		lc.calls = map[string]int{}
	}
	lc.calls[path]++
	lc.mu.Unlock()
	// Called on centrifuge-go's goroutines: report, never t.Fatal.
	status, resp, err := lc.b.tryPostJSON(path, body)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return "", centrifuge.ErrUnauthorized
	case status != http.StatusOK:
		return "", fmt.Errorf("%s: status %d", path, status)
	}
	tok, ok := resp["token"].(string)
	if !ok {
		return "", fmt.Errorf("%s: no token in %v", path, resp)
	}
	return tok, nil
}

// subscribe subscribes to channel and reports whether Centrifugo accepted.
// withToken false subscribes without asking the app for a token.
func (lc *liveClient) subscribe(channel string, withToken bool, fixed string) bool {
	lc.t.Helper()
	cfg := centrifuge.SubscriptionConfig{Token: fixed}
	if withToken {
		cfg.GetToken = func(centrifuge.SubscriptionTokenEvent) (string, error) {
			return lc.token("/instant/subscription_token", map[string]any{"channel": channel})
		}
	}
	sub, err := lc.c.NewSubscription(channel, cfg)
	if err != nil {
		lc.t.Fatal(err)
	}
	sub.OnPublication(func(e centrifuge.PublicationEvent) {
		var p map[string]any
		if err := json.Unmarshal(e.Data, &p); err != nil {
			lc.t.Errorf("payload not JSON: %q", e.Data)
		}
		lc.mu.Lock()
		lc.got = append(lc.got, p)
		lc.mu.Unlock()
	})
	ok, code := awaitSubscribe(lc.t, sub)
	if ok {
		lc.subs[channel] = sub
	} else {
		lc.refusal = code
		_ = lc.c.RemoveSubscription(sub)
	}
	return ok
}

// waitFor waits until a payload with message arrived, then returns every
// message received so far.
func (lc *liveClient) waitFor(message string) []map[string]any {
	lc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		lc.mu.Lock()
		for _, p := range lc.got {
			if p["message"] == message {
				out := append([]map[string]any(nil), lc.got...)
				lc.mu.Unlock()
				return out
			}
		}
		lc.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	lc.t.Fatalf("message %q never arrived", message)
	return nil
}

// awaitSubscribe subscribes and waits for Centrifugo's answer: whether it
// accepted, and else the code of its refusal (0 when there was none).
func awaitSubscribe(t *testing.T, sub *centrifuge.Subscription) (ok bool, code uint32) {
	t.Helper()
	type answer struct {
		ok   bool
		code uint32
	}
	// The handlers stay after the first answer (a later resubscribe may
	// call them again): they never block centrifuge-go's callback queue.
	result := make(chan answer, 1)
	send := func(a answer) {
		select {
		case result <- a:
		default:
		}
	}
	sub.OnSubscribed(func(centrifuge.SubscribedEvent) { send(answer{ok: true}) })
	sub.OnUnsubscribed(func(e centrifuge.UnsubscribedEvent) { send(answer{}) })
	sub.OnError(func(e centrifuge.SubscriptionErrorEvent) {
		var se centrifuge.SubscriptionSubscribeError
		if errors.As(e.Error, &se) {
			var ce *centrifuge.Error
			errors.As(se.Err, &ce)
			a := answer{}
			if ce != nil {
				a.code = ce.Code
			}
			send(a)
		}
	})
	if err := sub.Subscribe(); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-result:
		return a.ok, a.code
	case <-time.After(10 * time.Second):
		t.Fatalf("no answer subscribing to %s", sub.Channel)
		return false, 0
	}
}

func waitCount(t *testing.T, lc *liveClient, n int, limit time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		msgs, _ := uniqueMessages(lc)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d of %d events arrived", limit, len(msgs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uniqueMessages returns the messages lc received, each id once, in
// arrival order, and how many copies were dropped.
func uniqueMessages(lc *liveClient) (msgs []string, dups int) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	seen := map[any]bool{}
	for _, p := range lc.got {
		if seen[p["id"]] {
			dups++
			continue
		}
		seen[p["id"]] = true
		msgs = append(msgs, p["message"].(string))
	}
	return msgs, dups
}

// history asks Centrifugo at cfg.APIURL, with cfg.APIKey, for up to
// 1,000 of channel's latest publications (their data, oldest first).
func history(t *testing.T, cfg instant.Config, channel string) []json.RawMessage {
	t.Helper()
	res, err := gocent.New(gocent.Config{Addr: cfg.APIURL, Key: cfg.APIKey}).History(context.Background(), channel, gocent.WithLimit(1000))
	if err != nil {
		t.Fatalf("history of %s: %v", channel, err)
	}
	out := make([]json.RawMessage, len(res.Publications))
	for k, p := range res.Publications {
		out[k] = json.RawMessage(p.Data)
	}
	return out
}

// historyOf returns "id message" for each publication in channel's
// history, oldest first.
func historyOf(t *testing.T, cfg instant.Config, channel string) []string {
	t.Helper()
	pubs := history(t, cfg, channel)
	out := make([]string, 0, len(pubs))
	for _, p := range pubs {
		var ev struct{ ID, Message string }
		if err := json.Unmarshal(p, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.ID+" "+ev.Message)
	}
	return out
}

func withHistory() instant.CentrifugoOptions {
	return instant.CentrifugoOptions{HistorySize: 100, HistoryTTL: 5 * time.Minute}
}

// ==== The outbox: a PostgreSQL and a Redis of its own, and Centrifugo nodes
// consuming the outbox.

// outboxSetup is Redis, PostgreSQL with the outbox table, and an Instant
// whose Centrifugo nodes (started by node) share them.
type outboxSetup struct {
	redis *centrifugotest.Redis
	pg    *centrifugotest.Postgres
	db    *sql.DB
	cfg   instant.Config
}

func startOutbox(t *testing.T) *outboxSetup {
	t.Helper()
	o := &outboxSetup{redis: centrifugotest.StartRedis(t), pg: centrifugotest.SharedPostgres(t)}
	o.db = openDB(t, o.pg)
	o.cfg = testConfig()
	o.cfg.PublishTimeout = 3 * time.Second
	if _, err := o.db.Exec(newInstant(t, o.cfg).OutboxDDL()); err != nil {
		t.Fatal(err)
	}
	return o
}

// node starts one Centrifugo node on the shared Redis, consuming the
// outbox when consume is true, and returns a live setup bound to it.
func (o *outboxSetup) node(t *testing.T, consume bool) *liveSetup {
	t.Helper()
	ls := &liveSetup{}
	opts := instant.CentrifugoOptions{RedisAddress: o.redis.URL, HistorySize: 10000, HistoryTTL: 10 * time.Minute}
	if consume {
		opts.OutboxDSN = o.pg.DSN
	}
	ls.srv, ls.inst, ls.cfg = startCentrifugo(t, func(c *instant.Config) { *c = o.cfg }, nil, opts)
	ls.app = newRouter(ls.inst)
	return ls
}

func openDB(t *testing.T, pg *centrifugotest.Postgres) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// manyUsers returns n user IDs.
func manyUsers(n int) []string {
	users := make([]string, n)
	for k := range users {
		users[k] = "u" + strconv.Itoa(k)
	}
	return users
}

// ==== Proxy mode: Centrifugo asking the app's proxy routes.

type proxied struct {
	t    *testing.T
	srv  *centrifugotest.Server
	inst *instant.Instant
	app  http.Handler
}

// dial connects with the given headers and token; nil when refused.
func (p *proxied) dial(header http.Header, token string) *centrifuge.Client {
	c := centrifuge.NewJsonClient(p.srv.WebsocketURL, centrifuge.Config{Header: header, Token: token, HandshakeTimeout: handshakeTimeout})
	p.t.Cleanup(c.Close)
	result := make(chan bool, 2)
	c.OnConnected(func(centrifuge.ConnectedEvent) { result <- true })
	c.OnDisconnected(func(centrifuge.DisconnectedEvent) { result <- false })
	if err := c.Connect(); err != nil {
		p.t.Fatal(err)
	}
	select {
	case ok := <-result:
		if ok {
			return c
		}
	case <-time.After(2 * handshakeTimeout):
		p.t.Fatal("no answer to connect")
	}
	return nil
}

// subscribe reports whether Centrifugo let c subscribe to channel.
func (p *proxied) subscribe(c *centrifuge.Client, channel, token string) bool {
	sub, err := c.NewSubscription(channel, centrifuge.SubscriptionConfig{Token: token})
	if err != nil {
		p.t.Fatal(err)
	}
	ok, _ := awaitSubscribe(p.t, sub)
	return ok
}

// askProxy sends a Centrifugo proxy request to route with b's cookies.
func askProxy(t *testing.T, b *browser, inst *instant.Instant, route, user, channel string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", b.srv.URL+"/instant/proxy/"+route, strings.NewReader(`{"client":"c1","transport":"websocket","protocol":"json","encoding":"json","user":"`+user+`","channel":"`+channel+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Instant-Proxy-Key", proxyKey(t, inst))
	status, body := b.do(req)
	if status != 200 {
		t.Fatalf("%s: status %d %v", route, status, body)
	}
	return body
}

func hasChannel(body map[string]any, name, level string) bool {
	chans, _ := body["channels"].([]any)
	for _, c := range chans {
		if m, _ := c.(map[string]any); m["name"] == name && m["level"] == level {
			return true
		}
	}
	return false
}

// listedChannel is a channel as GET channels lists it.
type listedChannel struct{ Name, Level, Group string }

// listedChannels is what GET channels lists for b's user; nil when the
// route refuses.
func listedChannels(t testing.TB, b *browser) []listedChannel {
	t.Helper()
	status, body := b.get("/instant/channels")
	if status != http.StatusOK {
		return nil
	}
	var out []listedChannel
	raw, _ := json.Marshal(body["channels"])
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// levelChannels are the names of inst's channels of level l, in order.
func levelChannels(inst *instant.Instant, l instant.Level) []string {
	var out []string
	for _, c := range inst.Channels() {
		if c.Level == l {
			out = append(out, c.Name)
		}
	}
	return out
}

// privateChannel: a channel whose name starts with "$" is private.
func privateChannel(ch string) bool { return strings.HasPrefix(ch, "$") }

// nameChecker is an Instant of the test config, to ask about names.
var nameChecker = sync.OnceValue(func() *instant.Instant {
	inst, err := instant.New(testConfig())
	if err != nil {
		panic(err)
	}
	return inst
})

// channelNameError is the error wrapping ErrInvalidChannel with which the
// plugin refuses name as a channel (SubscriptionToken checks the name
// before anything else), or nil when name is a channel.
func channelNameError(name string) error {
	_, err := nameChecker().SubscriptionToken(nil, &root, name)
	if errors.Is(err, instant.ErrInvalidChannel) {
		return err
	}
	return nil
}

// ruleFailed reports whether err is SubscriptionToken's answer when a
// custom rule failed: an error that is none of its refusals.
func ruleFailed(err error) bool {
	return err != nil && !errors.Is(err, instant.ErrInvalidChannel) && !errors.Is(err, instant.ErrLoginRequired) &&
		!errors.Is(err, instant.ErrNotAllowed) && !errors.Is(err, instant.ErrNotInstalled)
}

// proxyKey is the key Centrifugo's proxy requests carry, as the config
// CentrifugoConfig writes tells Centrifugo to send it.
func proxyKey(t testing.TB, inst *instant.Instant) string {
	t.Helper()
	raw, err := inst.CentrifugoConfig(instant.CentrifugoOptions{ProxyURL: "http://127.0.0.1:1/instant"})
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Client struct {
			Proxy struct {
				Connect struct {
					HTTP struct {
						StaticHeaders map[string]string `json:"static_headers"`
					} `json:"http"`
				} `json:"connect"`
			} `json:"proxy"`
		} `json:"client"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	key := c.Client.Proxy.Connect.HTTP.StaticHeaders["X-Instant-Proxy-Key"]
	if key == "" {
		t.Fatalf("no proxy key in the config:\n%s", raw)
	}
	return key
}

// ==== Check: a Centrifugo whose config a test may edit.

const siteOrigin = "http://127.0.0.1:8080"

// checkSetup is a running Centrifugo whose config an Instant of cfg wrote
// (with opts, and then changed by edit), and cfg bound to it.
type checkSetup struct {
	srv *centrifugotest.Server
	cfg instant.Config
}

// startCheck starts Centrifugo with the config of an Instant of
// testConfig() with a namespaced users channel, SiteOrigin and a rule.
func startCheck(t *testing.T, opts instant.CentrifugoOptions, edit func(map[string]any)) *checkSetup {
	t.Helper()
	cs := &checkSetup{}
	opts.LogLevel = "info"
	opts.AllowedOrigins = append(opts.AllowedOrigins, siteOrigin)
	var edits []func([]byte) ([]byte, error)
	if edit != nil {
		edits = append(edits, func(raw []byte) ([]byte, error) {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, err
			}
			edit(m)
			return json.Marshal(m)
		})
	}
	cs.srv, _, cs.cfg = startCentrifugo(t, checkMod, checkRule, opts, edits...)
	return cs
}

func checkMod(c *instant.Config) {
	c.UsersChannels = []string{"$team:all"}
	c.SiteOrigin = siteOrigin
	c.PublishTimeout = 5 * time.Second
}

func checkRule(inst *instant.Instant) error { return inst.Authorize("$orders:{id}", allowAll) }

// sharedCheck is startCheck(t, instant.CentrifugoOptions{}, nil) on the
// package's one such Centrifugo: the tests that take it only read it
// (Check connects, asks and leaves), from Instants of their own.
func sharedCheck(t *testing.T) *checkSetup {
	t.Helper()
	var inst *instant.Instant
	var cfg instant.Config
	opts := instant.CentrifugoOptions{LogLevel: "info", AllowedOrigins: []string{siteOrigin}}
	cs := &checkSetup{srv: centrifugotest.Shared(t, "check", centrifugoConfig(&inst, &cfg, checkMod, checkRule, opts))}
	cs.cfg = testConfig()
	checkMod(&cs.cfg)
	cs.cfg.APIURL = cs.srv.APIURL
	return cs
}

// app is an Instant of the setup's config, changed by change, with the
// setup's rule.
func (cs *checkSetup) app(t *testing.T, change func(*instant.Config)) *instant.Instant {
	t.Helper()
	cfg := cs.cfg
	if change != nil {
		change(&cfg)
	}
	inst := newInstant(t, cfg)
	if err := inst.Authorize("$orders:{id}", allowAll); err != nil {
		t.Fatal(err)
	}
	return inst
}

// ==== client.js under Node: the unit script, and the live script driven over
// stdin and stdout (testdata/nodepage.mjs).

// needTool ends the test when a tool is missing: Fatal under CI=true
// (`make test` installs everything), Skip elsewhere.
func needTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}

// checkAnswers compares what a Node script answered with want: every
// key wanted holds its value, and every key answered is wanted.
func checkAnswers(t *testing.T, got, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %v, not checked", k, got[k])
		}
	}
}

// liveNode finds node with a WebSocket and centrifuge-js, for the scripts
// that run client.js against a real Centrifugo (see TestClientJSLive).
func liveNode(t *testing.T) (node string, flags []string, centrifugeJS string) {
	node, err := exec.LookPath("node")
	if err != nil {
		needTool(t, "node is not installed")
	}
	centrifugeJS, _ = filepath.Abs("example_app/node_modules/centrifuge/build/index.mjs")
	if _, err := os.Stat(centrifugeJS); err != nil {
		needTool(t, "no centrifuge-js: run `make npm` (%v)", err)
	}
	for _, try := range [][]string{nil, {"--experimental-websocket"}} {
		probe := append(slices.Clone(try), "-e", `process.exit(typeof WebSocket === "function" ? 0 : 1)`)
		if exec.Command(node, probe...).Run() == nil {
			return node, try, centrifugeJS
		}
	}
	needTool(t, "this node has no WebSocket")
	return "", nil, ""
}

// liveMsg is a request of testdata/clientjs_live.mjs to its test, or, with
// Result, its last line.
type liveMsg struct {
	Do, Channel, ID, Message, Origin string
	N                                int
	Result                           map[string]any
}

// runLiveScript runs testdata/clientjs_live.mjs in phase against the app
// at appURL, answers its requests with handle (each answer through reply)
// and returns the result it ends with.
func runLiveScript(t *testing.T, node string, flags []string, centrifugeJS, appURL, phase string, handle func(ctx context.Context, msg liveMsg, reply func(any))) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	clientJS, _ := filepath.Abs("client.js")
	script, _ := filepath.Abs("testdata/clientjs_live.mjs")
	cmd := exec.CommandContext(ctx, node, append(slices.Clone(flags), script, clientJS, centrifugeJS, appURL, phase)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waited error
	wait := sync.OnceFunc(func() { waited = cmd.Wait() })
	t.Cleanup(func() {
		cancel()
		wait() // stderr is written until then
		if t.Failed() {
			t.Logf("what the pages went through:\n%s", stderr.Bytes())
		}
	})
	reply := func(v any) {
		b, _ := json.Marshal(v)
		_, _ = stdin.Write(append(b, '\n'))
	}
	var result map[string]any
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var msg liveMsg
		if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
			t.Errorf("the script wrote %q", lines.Text())
			continue
		}
		if msg.Do == "" {
			result = msg.Result
			continue
		}
		handle(ctx, msg, reply)
	}
	if wait(); waited != nil || result == nil {
		t.Fatalf("node: %v, result %v", waited, result)
	}
	return result
}

// ==== Nodes that go silent: a stand-in whose answers can hang, be slow or
// come back, counting what reaches it (nodes_test.go).

// moodyAPI stands in for Centrifugo's server API: publishes (/api/batch)
// are answered after delay, other calls (/api: the probes' info) at once;
// while hung, nothing is answered until unhung.
type moodyAPI struct {
	srv *httptest.Server

	mu          sync.Mutex
	hung        chan struct{} // closed to release what hangs; nil while not hung
	delay       time.Duration
	publishes   int // publish requests received
	probes      int // other requests received
	inProbe     int // other requests being answered now
	maxInProbes int // the most at once
}

func newMoodyAPI(t *testing.T) *moodyAPI {
	m := &moodyAPI{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		batch := strings.HasSuffix(r.URL.Path, "/batch")
		m.mu.Lock()
		hung, delay := m.hung, m.delay
		if batch {
			m.publishes++
		} else {
			m.probes++
			m.inProbe++
			m.maxInProbes = max(m.maxInProbes, m.inProbe)
		}
		m.mu.Unlock()
		defer func() {
			if !batch {
				m.mu.Lock()
				m.inProbe--
				m.mu.Unlock()
			}
		}()
		if hung != nil {
			select {
			case <-hung:
			case <-r.Context().Done():
			}
			return // no answer: the connection is cut
		}
		if batch {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
			n := bytes.Count(body, []byte(`{"publish":`))
			w.Write([]byte(batchOf(slices.Repeat([]string{`{"publish":{}}`}, n)...)))
			return
		}
		for range bytes.Count(body, []byte("\n")) + 1 {
			w.Write([]byte(`{"result":{"nodes":[]}}` + "\n"))
		}
	}))
	t.Cleanup(m.srv.Close)
	t.Cleanup(func() { m.setHung(false) }) // first: cleanups run last-in first
	return m
}

// setHung makes the stand-in hang (every request waits) or answer again
// (what waits is released unanswered).
func (m *moodyAPI) setHung(hung bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case hung && m.hung == nil:
		m.hung = make(chan struct{})
	case !hung && m.hung != nil:
		close(m.hung)
		m.hung = nil
	}
}

func (m *moodyAPI) setDelay(d time.Duration) {
	m.mu.Lock()
	m.delay = d
	m.mu.Unlock()
}

// counts returns the publishes and the other requests received, and the
// most of the latter in flight at once.
func (m *moodyAPI) counts() (publishes, probes, maxInProbes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.publishes, m.probes, m.maxInProbes
}

// retryFor calls f until it returns nil or limit has passed, and returns
// its last error and how long it took.
func retryFor(limit time.Duration, f func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := f()
		if err == nil || time.Since(start) > limit {
			return time.Since(start), err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// broadcastLive is a live script's broadcast: right after Centrifugo comes
// back, or after a call a loaded machine let run past PublishTimeout, the
// Instant holds the node down and calls fail at once until a probe
// answers. It tries again for up to 5 s; ev.ID must be set, so that a
// repeat of a publication Centrifugo took is dropped, not counted twice.
func broadcastLive(ctx context.Context, inst *instant.Instant, ev instant.Event) error {
	var err error
	_, _ = retryFor(5*time.Second, func() error {
		err = inst.Broadcast(ctx, ev)
		if errors.Is(err, instant.ErrUnreachable) {
			return err
		}
		return nil // published, or refused for good
	})
	return err
}

// ==== Safe events (issue 20): what reaches Centrifugo straight, bypassing
// the plugin's checks.

// rawPublish publishes data to channel straight through Centrifugo's
// server API (/api/publish), with none of the plugin's checks: the HTTP
// status and the reply.
func rawPublish(t *testing.T, ls *liveSetup, channel string, data json.RawMessage) (int, []byte) {
	t.Helper()
	body := append(append([]byte(`{"channel":`), mustJSON(channel)...), `,"data":`...)
	body = append(append(body, data...), '}')
	req, _ := http.NewRequest(http.MethodPost, ls.srv.APIURL+"/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "apikey "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := centrifugotest.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, reply
}
