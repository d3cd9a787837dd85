package instant_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-contrib/sessions/memstore"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// replay is a client that sends a fixed Cookie header: a copy of a
// browser's cookie taken before its logout.
func replay(t *testing.T, b *browser, cookies http.Header) *browser {
	return &browser{t: t, srv: b.srv, c: &http.Client{Transport: headerTransport{cookies}}}
}

type headerTransport struct{ h http.Header }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.h {
		r.Header[k] = v
	}
	return centrifugotest.HTTP.Transport.RoundTrip(r)
}

// TestServerSideStoreEndsLogins: with a server-side store (memstore), a
// copy of the cookie taken before Logout is anonymous on every route
// afterwards, and the refresh proxy expires its connection.
func TestServerSideStoreEndsLogins(t *testing.T) {
	inst := newInstant(t, testConfig())
	b := newBrowser(t, newRouterWith(inst, memstore.NewStore(cookieKey))).as(&root)
	copied := replay(t, b, b.cookieHeader())
	if status, _ := copied.postJSON("/instant/subscription_token", map[string]any{"channel": "$site_admin"}); status != 200 {
		t.Fatalf("the copied cookie before logout: %d", status)
	}
	if status, _ := b.post("/test/logout", "", nil); status != 204 {
		t.Fatalf("logout %d", status)
	}
	if _, body := copied.get("/instant/channels"); body["user"] != nil {
		t.Errorf("GET channels after logout: %v", body["user"])
	}
	if status, _ := copied.postJSON("/instant/subscription_token", map[string]any{"channel": "$site_admin"}); status != 403 {
		t.Errorf("subscription_token after logout: %d", status)
	}
	if _, body := copied.postJSON("/instant/auth", map[string]any{"channels": []string{"$site_users"}}); body["channels"].([]any)[0].(map[string]any)["status"] != float64(403) {
		t.Errorf("auth after logout: %v", body)
	}
	if _, body := copied.postJSON("/instant/connection_token", map[string]any{}); parseToken(t, body["token"].(string))["sub"] != "" {
		t.Errorf("connection_token after logout: %v", body)
	}
	if body := askProxy(t, copied, inst, "refresh", root.ID, ""); body["result"].(map[string]any)["expired"] != true {
		t.Errorf("refresh proxy after logout: %v", body)
	}
	if body := askProxy(t, copied, inst, "subscribe", root.ID, "$site_admin"); body["error"] == nil {
		t.Errorf("subscribe proxy after logout: %v", body)
	}
}

// TestCookieStoreCannotEndALogin documents what the README says: with a
// cookie store the login is the cookie, so a copy taken before Logout
// still logs in. Use a server-side store to end logins.
func TestCookieStoreCannotEndALogin(t *testing.T) {
	inst := newInstant(t, testConfig())
	b := newBrowser(t, newRouterWith(inst, cookie.NewStore(cookieKey))).as(&root)
	copied := replay(t, b, b.cookieHeader())
	b.post("/test/logout", "", nil)
	if status, _ := copied.postJSON("/instant/subscription_token", map[string]any{"channel": "$site_admin"}); status != 200 {
		t.Errorf("a copied cookie-store cookie after logout: %d (if this fails, the README's warning is out of date)", status)
	}
}

// TestLiveRefreshProxyEndsALoggedOutConnection: Centrifugo with the
// connect and refresh proxies, a memstore session, two-second
// connections. After alice logs out, the refresh proxy expires her
// connection; gina's, whose session is unchanged, stays.
func TestLiveRefreshProxyEndsALoggedOutConnection(t *testing.T) {
	t.Parallel()
	p := &proxied{t: t}
	appSrv := newBrowser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.app.ServeHTTP(w, r) })).srv
	p.srv, p.inst, _ = startCentrifugo(t, func(c *instant.Config) { c.ConnectionTokenTTL = 2 * time.Second }, nil,
		instant.CentrifugoOptions{ProxyURL: appSrv.URL + "/instant"})
	p.app = newRouterWith(p.inst, memstore.NewStore(cookieKey))
	aliceB := newBrowser(t, p.app).as(&alice)
	aliceB.srv = appSrv
	ginaB := newBrowser(t, p.app).as(&gina)
	ginaB.srv = appSrv

	type watch struct {
		mu      sync.Mutex
		dropped bool
	}
	dial := func(b *browser) (*centrifuge.Client, *watch) {
		c := p.dial(b.cookieHeader(), "")
		if c == nil {
			t.Fatal("could not connect through the connect proxy")
		}
		w := &watch{}
		drop := func() { w.mu.Lock(); w.dropped = true; w.mu.Unlock() }
		c.OnDisconnected(func(centrifuge.DisconnectedEvent) { drop() })
		c.OnConnecting(func(centrifuge.ConnectingEvent) { drop() })
		return c, w
	}
	_, aliceW := dial(aliceB)
	_, ginaW := dial(ginaB)
	if status, _ := aliceB.post("/test/logout", "", nil); status != 204 {
		t.Fatal("logout failed")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		aliceW.mu.Lock()
		dropped := aliceW.dropped
		aliceW.mu.Unlock()
		if dropped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's connection outlived her logout")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ginaW.mu.Lock()
	defer ginaW.mu.Unlock()
	if ginaW.dropped {
		t.Error("gina's connection, whose session is unchanged, was dropped too")
	}
}

// TestRoutesWorkWithoutSession: Register's doc said the routes need
// Session before them. They need sessions.Sessions only: without Session,
// each route records its own request state and reads the user that Login
// wrote (or that LoadUser finds); without sessions.Sessions, a 500 names
// it.
func TestRoutesWorkWithoutSession(t *testing.T) {
	for _, withLoadUser := range []bool{false, true} {
		cfg := testConfig()
		if withLoadUser {
			cfg.LoadUser = func(c *gin.Context) (*instant.User, error) {
				if c.GetHeader("X-Test-User") == "" {
					return nil, nil
				}
				return &sam, nil
			}
		}
		inst := newInstant(t, cfg)
		r := gin.New()
		r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
		inst.Register(r.Group("/instant")) // no r.Use(inst.Session())
		r.POST("/test/login", func(c *gin.Context) {
			if err := instant.Login(c, sam); err != nil {
				c.AbortWithStatus(http.StatusInternalServerError)
				return
			}
			c.Status(http.StatusNoContent)
		})
		b := newBrowser(t, r)
		if _, body := b.get("/instant/channels"); body["user"] != nil {
			t.Fatalf("before login: %v", body)
		}
		if status, _ := b.postJSON("/test/login", map[string]any{}); status != http.StatusNoContent {
			t.Fatalf("login: %d", status)
		}
		if withLoadUser {
			b.c.Transport = headerTransport{http.Header{"X-Test-User": {"1"}}}
		}
		status, body := b.get("/instant/channels")
		if user, _ := body["user"].(map[string]any); status != http.StatusOK || user["id"] != sam.ID {
			t.Errorf("LoadUser %v: GET channels without Session: %d %v", withLoadUser, status, body)
		}
		if status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": "$site_staff"}); status != http.StatusOK || parseToken(t, body["token"].(string))["sub"] != sam.ID {
			t.Errorf("LoadUser %v: subscription_token without Session: %d %v", withLoadUser, status, body)
		}
		if status, body := b.postJSON("/instant/auth", map[string]any{"client": "c1", "channels": []string{"$site_staff", "$site_admin"}}); status != http.StatusOK || !strings.Contains(jsonText(body), `"status":403`) || !strings.Contains(jsonText(body), `"token"`) {
			t.Errorf("LoadUser %v: auth without Session: %d %v", withLoadUser, status, body)
		}
		if status, body := b.postJSON("/instant/connection_token", map[string]any{}); status != http.StatusOK || parseToken(t, body["token"].(string))["sub"] != sam.ID {
			t.Errorf("LoadUser %v: connection_token without Session: %d %v", withLoadUser, status, body)
		}
	}

	// Without sessions.Sessions the routes answer 500, naming it.
	r := gin.New()
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	newInstant(t, cfg).Register(r.Group("/instant"))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/instant/channels", nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "sessions.Sessions") {
		t.Errorf("without sessions.Sessions: %d %s", w.Code, w.Body)
	}
}

func jsonText(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}
