package instant_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

func TestProxyRoutesNeedTheKey(t *testing.T) {
	b := newBrowser(t, newRouter(newInstant(t, testConfig())))
	for _, route := range []string{"connect", "refresh", "subscribe", "sub_refresh"} {
		for _, key := range []string{"", "wrong"} {
			req, _ := http.NewRequest("POST", b.srv.URL+"/instant/proxy/"+route, strings.NewReader(`{"client":"c","user":"","channel":"x"}`))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set(instant.ProxyKeyHeader, key)
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
		req.Header.Set(instant.ProxyKeyHeader, testAPIKey)
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
	var app http.Handler
	appSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { app.ServeHTTP(w, r) }))
	defer appSrv.Close()
	var inst *instant.Instant
	srv := centrifugotest.Start(t, func(port int) ([]byte, error) {
		var err error
		cfg := testConfig()
		if inst, err = instant.New(cfg); err != nil {
			return nil, err
		}
		err = inst.Authorize("chat:{room}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
			return u != nil && p["room"] != "closed", map[string]string{"room": p["room"]}
		})
		if err != nil {
			return nil, err
		}
		return inst.CentrifugoConfig(instant.CentrifugoOptions{Port: port, LogLevel: "error", ProxyURL: appSrv.URL + "/instant"})
	})
	app = newRouter(inst)

	try := func(header http.Header, channel string) bool {
		c := centrifuge.NewJsonClient(srv.WebsocketURL, centrifuge.Config{Header: header})
		defer c.Close()
		connected := make(chan struct{})
		var once sync.Once
		c.OnConnected(func(centrifuge.ConnectedEvent) { once.Do(func() { close(connected) }) })
		if err := c.Connect(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-connected:
		case <-time.After(10 * time.Second):
			t.Fatal("no connection through the connect proxy")
		}
		sub, _ := c.NewSubscription(channel)
		result := make(chan bool, 2)
		sub.OnSubscribed(func(centrifuge.SubscribedEvent) { result <- true })
		sub.OnError(func(e centrifuge.SubscriptionErrorEvent) {
			var se centrifuge.SubscriptionSubscribeError
			if errors.As(e.Error, &se) {
				result <- false
			}
		})
		sub.OnUnsubscribed(func(centrifuge.UnsubscribedEvent) { result <- false })
		_ = sub.Subscribe()
		select {
		case ok := <-result:
			return ok
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer for %s", channel)
			return false
		}
	}
	aliceHdr := newBrowser(t, app).as(&alice).cookieHeader()
	cases := []struct {
		who     string
		header  http.Header
		channel string
		want    bool
	}{
		{"alice", aliceHdr, "chat:lobby", true},
		{"alice", aliceHdr, "chat:closed", false},
		{"alice", aliceHdr, "site_public", true},
		{"anonymous", nil, "chat:lobby", false},
		{"anonymous", nil, "site_public", true},
	}
	for _, tc := range cases {
		if got := try(tc.header, tc.channel); got != tc.want {
			t.Errorf("%s subscribing to %s through the proxy: %v, want %v", tc.who, tc.channel, got, tc.want)
		}
	}
}
