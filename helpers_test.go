package instant_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/golang-jwt/jwt/v5"
)

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
	return &browser{t: t, srv: srv, c: &http.Client{Jar: jar}}
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
