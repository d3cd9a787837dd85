package instant_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/golang-jwt/jwt/v5"
)

func TestProxyRoutesNeedTheKey(t *testing.T) {
	b := newBrowser(t, newRouter(newInstant(t, testConfig())))
	for _, route := range []string{"connect", "refresh", "subscribe", "sub_refresh"} {
		for _, key := range []string{"", "wrong", testAPIKey} {
			req, _ := http.NewRequest("POST", b.srv.URL+"/instant/proxy/"+route, strings.NewReader(`{"client":"c","user":"","channel":"x"}`))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("X-Instant-Proxy-Key", key)
			}
			if status, body := b.do(req); status != 403 || body["result"] != nil {
				t.Errorf("%s with key %q: %d %v", route, key, status, body)
			}
		}
	}
}

func TestProxySubscribeAnswers(t *testing.T) {
	inst := rulesInstant(t)
	b := newBrowser(t, newRouter(inst)).as(&alice)
	ask := func(route, user, channel string) map[string]any {
		req, _ := http.NewRequest("POST", b.srv.URL+"/instant/proxy/"+route, strings.NewReader(`{"client":"c1","transport":"websocket","protocol":"json","encoding":"json","user":"`+user+`","channel":"`+channel+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Instant-Proxy-Key", proxyKey(t, inst))
		status, body := b.do(req)
		if status != 200 {
			t.Fatalf("%s: status %d %v", route, status, body)
		}
		return body
	}
	if body := ask("subscribe", "1", "$orders:o1"); body["result"] == nil || body["error"] != nil {
		t.Errorf("allowed channel: %v", body)
	}
	if body := ask("subscribe", "1", "$site_admin"); body["error"].(map[string]any)["code"] != float64(403) || body["result"] != nil {
		t.Errorf("denied channel: %v", body)
	}
	// The session holds alice (1); a connection claiming user 4 is refused.
	if body := ask("subscribe", "4", "site_public"); body["error"] == nil {
		t.Errorf("another user's connection: %v", body)
	}
	if body := ask("sub_refresh", "1", "$site_admin"); body["result"].(map[string]any)["expired"] != true {
		t.Errorf("sub_refresh of a denied channel: %v", body)
	}
	if body := ask("refresh", "1", ""); body["result"].(map[string]any)["expire_at"] == nil {
		t.Errorf("refresh of the session user: %v", body)
	}
	if body := ask("refresh", "2", ""); body["result"].(map[string]any)["expired"] != true {
		t.Errorf("refresh of another user: %v", body)
	}
	if body := ask("connect", "", ""); body["result"].(map[string]any)["user"] != "1" {
		t.Errorf("connect: %v", body)
	}
}

// TestLiveProxies connects without tokens: Centrifugo asks the proxy
// routes, forwarding the session cookie.
func TestLiveProxies(t *testing.T) {
	t.Parallel()
	for _, disallow := range []bool{false, true} {
		lp := startProxied(t, disallow)
		aliceCookie := newBrowser(t, lp.app).as(&alice).cookieHeader()
		aliceToken := func() string {
			_, body := newBrowser(t, lp.app).as(&alice).postJSON("/instant/subscription_token", map[string]any{"channel": "$site_users"})
			return body["token"].(string)
		}()
		// An anonymous connection token, which the routes refuse under
		// DisallowAnonymous: made by hand.
		anonToken := forgeToken(t, testSecret, jwt.MapClaims{"sub": "", "exp": time.Now().Add(time.Minute).Unix()})

		// alice, identified by her cookie through the connect proxy: her
		// subscription token for $site_users (sub "1") matches the user
		// the proxy gave the connection, and the subscribe proxy lets her
		// read the public channel.
		c := lp.dial(aliceCookie, "")
		if c == nil {
			t.Fatalf("disallow=%v: alice could not connect through the proxy", disallow)
		}
		if !lp.subscribe(c, "$site_users", aliceToken) {
			t.Errorf("disallow=%v: the connect proxy did not make the connection alice's", disallow)
		}
		if !lp.subscribe(c, "site_public", "") {
			t.Errorf("disallow=%v: alice refused site_public by the subscribe proxy", disallow)
		}

		// An anonymous connection (token with empty sub) carrying alice's
		// cookie: the session is not the connection's user, so the
		// subscribe proxy refuses.
		if c := lp.dial(aliceCookie, anonToken); c != nil && lp.subscribe(c, "site_public", "") {
			t.Errorf("disallow=%v: a connection that is not alice's read through her cookie", disallow)
		}

		// Anonymous without a token: connected (and reading public
		// channels) unless anonymous visitors are refused.
		c = lp.dial(nil, "")
		if disallow && c != nil {
			t.Error("DisallowAnonymous: the connect proxy let an anonymous visitor in")
		}
		if !disallow && (c == nil || !lp.subscribe(c, "site_public", "")) {
			t.Error("anonymous visitor could not read site_public through the proxies")
		}
	}
}

func startProxied(t *testing.T, disallowAnonymous bool) *proxied {
	p := &proxied{t: t}
	appSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.app.ServeHTTP(w, r) }))
	t.Cleanup(appSrv.Close)
	p.srv, p.inst, _ = startCentrifugo(t, func(c *instant.Config) { c.DisallowAnonymous = disallowAnonymous }, nil,
		instant.CentrifugoOptions{ProxyURL: appSrv.URL + "/instant"})
	p.app = newRouter(p.inst)
	return p
}

// TestProxiesRetryWhenLoadUserFails: a database blink is not a logout;
// the proxies tell the client to reconnect (4000..4499), never 4501.
func TestProxiesRetryWhenLoadUserFails(t *testing.T) {
	inst, _ := loggedInstant(t, func(cfg *instant.Config) {
		cfg.LoadUser = func(*gin.Context) (*instant.User, error) { return nil, errors.New("db down") }
	})
	b := newBrowser(t, newRouter(inst))
	for _, route := range []string{"connect", "refresh", "subscribe", "sub_refresh"} {
		body := askProxy(t, b, inst, route, "1", "$site_users")
		d, _ := body["disconnect"].(map[string]any)
		if code, _ := d["code"].(float64); code < 4000 || code > 4499 || body["result"] != nil {
			t.Errorf("%s while LoadUser fails: %v, want a disconnect that reconnects", route, body)
		}
	}
}

// TestProxiesRefuseAnonymousWhenDisallowed: the refresh proxy does not
// prolong an anonymous connection, the others refuse it.
func TestProxiesRefuseAnonymousWhenDisallowed(t *testing.T) {
	cfg := testConfig()
	cfg.DisallowAnonymous = true
	inst := newInstant(t, cfg)
	b := newBrowser(t, newRouter(inst))
	if body := askProxy(t, b, inst, "refresh", "", ""); body["result"].(map[string]any)["expired"] != true {
		t.Errorf("refresh of an anonymous connection: %v", body)
	}
	if body := askProxy(t, b, inst, "connect", "", ""); body["disconnect"].(map[string]any)["code"] != float64(4501) {
		t.Errorf("connect of an anonymous visitor: %v", body)
	}
	if body := askProxy(t, b, inst, "subscribe", "", "site_public"); body["error"] == nil || body["result"] != nil {
		t.Errorf("subscribe of an anonymous connection: %v", body)
	}
	if body := askProxy(t, b.as(&alice), inst, "refresh", "1", ""); body["result"].(map[string]any)["expire_at"] == nil {
		t.Errorf("refresh of alice's connection: %v", body)
	}
}

// TestProxySubscribeRefusesRuleInfoThatIsNotJSON: the subscribe proxy
// answers an internal error, and one log line, for a rule whose info does
// not encode, instead of an empty answer.
func TestProxySubscribeRefusesRuleInfoThatIsNotJSON(t *testing.T) {
	inst, logs := loggedInstant(t, nil)
	_ = inst.Authorize("$room:{id}", func(*gin.Context, *instant.User, map[string]string) (bool, any) {
		return true, json.RawMessage(`{"nick":"x"},"sub":"4"`)
	})
	b := newBrowser(t, newRouter(inst)).as(&alice)
	req, _ := http.NewRequest("POST", b.srv.URL+"/instant/proxy/subscribe", strings.NewReader(`{"client":"c1","user":"1","channel":"$room:1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Instant-Proxy-Key", proxyKey(t, inst))
	status, body := b.do(req)
	if e, _ := body["error"].(map[string]any); status != 200 || e == nil || body["result"] != nil {
		t.Errorf("proxy/subscribe: %d %v, want an error answer", status, body)
	}
	if errs := logs.errors(); len(errs) != 1 {
		t.Errorf("log lines %q, want one", errs)
	}
}

// TestProxySubscribeWithNullRuleInfo: a rule whose info is a nil map (JSON
// null, no info) gets a result without info, not an answer that does not
// encode.
func TestProxySubscribeWithNullRuleInfo(t *testing.T) {
	inst := newInstant(t, testConfig())
	_ = inst.Authorize("$room:{id}", func(*gin.Context, *instant.User, map[string]string) (bool, any) {
		return true, map[string]any(nil)
	})
	b := newBrowser(t, newRouter(inst)).as(&alice)
	req, _ := http.NewRequest("POST", b.srv.URL+"/instant/proxy/subscribe", strings.NewReader(`{"client":"c1","user":"1","channel":"$room:1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Instant-Proxy-Key", proxyKey(t, inst))
	status, body := b.do(req)
	if r, _ := body["result"].(map[string]any); status != 200 || r == nil || hasKey(r, "info") {
		t.Errorf("proxy/subscribe: %d %v, want a result without info", status, body)
	}
}
