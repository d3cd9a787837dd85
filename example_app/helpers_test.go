package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
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
