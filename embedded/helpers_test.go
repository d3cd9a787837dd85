package embedded_test

// What the tests share: a Gin app with the core's routes on a realtime
// server (a "site": the embedded Server here, or a real Centrifugo, see
// servers_test.go), browsers with cookie jars, and centrifuge-go clients
// whose tokens come from the routes, as a page's would.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

func init() { gin.SetMode(gin.TestMode) }

const testSecret = "test-secret-0123456789abcdef0123456789"

var cookieKey = []byte("cookie-key-0123456789abcdef01234")

// users is the app's user store, which LoadUser reads at every request:
// a test changes a user there, then calls Reauthorize.
type users struct {
	mu sync.Mutex
	m  map[string]instant.User
}

func newUsers() *users {
	return &users{m: map[string]instant.User{
		"1": {ID: "1", Username: "alice"},
		"2": {ID: "2", Username: "gina", Groups: []string{"editors"}},
		"3": {ID: "3", Username: "sam", Staff: true},
		"4": {ID: "4", Username: "root", Superuser: true},
	}}
}

func (us *users) get(id string) (instant.User, bool) {
	us.mu.Lock()
	defer us.mu.Unlock()
	u, ok := us.m[id]
	return u, ok
}

func (us *users) set(u instant.User) {
	us.mu.Lock()
	us.m[u.ID] = u
	us.mu.Unlock()
}

// site is a realtime server, an Instant bound to it, and a Gin app with
// its routes on a test HTTP server. The server is an embedded one (srv)
// or a Centrifugo (cf, which the Instant reaches through its HTTP API).
type site struct {
	server string // "embedded" or "centrifugo"
	srv    *embedded.Server
	cf     *centrifugotest.Server
	inst   *instant.Instant
	http   *httptest.Server
}

// newSite starts a site on a new Server of opts, sharing the store us
// (nil: a store of its own). Its Instant has the default channels, a
// group channel ($site_editors) and a rule "$room:{id}" any logged-in
// user may read, whose info is {"nick": username}.
func newSite(t *testing.T, opts embedded.Options, us *users) *site {
	t.Helper()
	srv, err := embedded.New(opts)
	if err != nil {
		t.Fatalf("embedded.New: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return siteOn(t, srv, instant.Config{}, us)
}

// siteOn is newSite on a Server of the caller's, with cfg (its
// TokenSecret, GroupChannels and LoadUser filled in when empty).
func siteOn(t *testing.T, srv *embedded.Server, cfg instant.Config, us *users) *site {
	t.Helper()
	cfg.Server = srv
	inst, err := instantFor(cfg, us)
	if err != nil {
		t.Fatalf("instant.New: %v", err)
	}
	st := &site{server: "embedded", srv: srv, inst: inst, http: httptest.NewServer(newRouter(inst))}
	t.Cleanup(st.http.Close)
	return st
}

// instantFor is the Instant of every site: cfg with its TokenSecret,
// GroupChannels and LoadUser (reading us; nil: a store of its own) filled
// in when empty, and the rule "$room:{id}".
func instantFor(cfg instant.Config, us *users) (*instant.Instant, error) {
	if us == nil {
		us = newUsers()
	}
	if cfg.TokenSecret == "" {
		cfg.TokenSecret = testSecret
	}
	if cfg.GroupChannels == nil {
		cfg.GroupChannels = map[string][]string{"editors": {"$site_editors"}}
	}
	if cfg.LoadUser == nil {
		cfg.LoadUser = func(c *gin.Context) (*instant.User, error) {
			id, _ := sessions.Default(c).Get("uid").(string)
			if u, ok := us.get(id); ok {
				return &u, nil
			}
			return nil, nil
		}
	}
	inst, err := instant.New(cfg)
	if err != nil {
		return nil, err
	}
	// Before CentrifugoConfig: the rule's namespace goes into its config.
	if err := inst.Authorize("$room:{id}", func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
		if u == nil {
			return false, nil
		}
		return true, map[string]string{"nick": u.Username}
	}); err != nil {
		return nil, err
	}
	return inst, nil
}

// newRouter is a Gin app as the README sets one up, and a test login
// that keeps the user's ID in the session (LoadUser reads the rest).
func newRouter(inst *instant.Instant) *gin.Engine {
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	r.POST("/test/login", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("uid", c.Query("id"))
		_ = s.Save()
		c.Status(http.StatusNoContent)
	})
	return r
}

// wsURL is the site's websocket, where the channels route sends browsers.
func (st *site) wsURL() string {
	if st.cf != nil {
		return st.cf.WebsocketURL
	}
	return "ws" + strings.TrimPrefix(st.http.URL, "http") + "/instant/connection/websocket"
}

// browser is an HTTP client with a cookie jar, logged in as one user (or
// none).
type browser struct {
	base string
	c    *http.Client
}

// browser returns a new browser on the site, logged in as the user with
// id ("" stays anonymous).
func (st *site) browser(t *testing.T, id string) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{base: st.http.URL, c: &http.Client{Jar: jar, Transport: centrifugotest.HTTP.Transport}}
	if id != "" {
		if status, _, err := b.post("/test/login?id="+id, map[string]any{}); err != nil || status != http.StatusNoContent {
			t.Fatalf("login %s: %d %v", id, status, err)
		}
	}
	return b
}

// post sends v as JSON and decodes the JSON answer; it reports instead of
// failing, for centrifuge-go's goroutines.
func (b *browser) post(path string, v any) (int, map[string]any, error) {
	raw, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, b.base+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(body) > 0 && json.Unmarshal(body, &out) != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s: not JSON: %q", path, body)
	}
	return resp.StatusCode, out, nil
}

// get sends a GET and decodes the JSON answer.
func (b *browser) get(path string) (int, map[string]any, error) {
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	err = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, err
}

// token asks a route for a token; a refusal is centrifuge-go's
// ErrUnauthorized, as a page's helper would say.
func (b *browser) token(path string, body any) (string, error) {
	status, out, err := b.post(path, body)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return "", centrifuge.ErrUnauthorized
	case status != http.StatusOK:
		return "", fmt.Errorf("%s: status %d", path, status)
	}
	tok, _ := out["token"].(string)
	return tok, nil
}

// client is a centrifuge-go connection to a site.
type client struct {
	t *testing.T
	b *browser
	c *centrifuge.Client

	mu           sync.Mutex
	connects     int
	disconnects  []uint32
	tokenAsks    int
	subs         map[string]*sub
	disconnected chan uint32
	// closing makes every token request fail once the test is over:
	// centrifuge-go v0.12.1 reads its transport unlocked when a refresh it
	// timed sends, racing Close. A failed token request sends nothing, and
	// Close waits 100ms for a refresh already past its token request.
	closing atomic.Bool
}

// connect connects a client whose tokens come from b, and waits until it
// is connected.
func (st *site) connect(t *testing.T, b *browser) *client {
	t.Helper()
	cl := st.dial(t, b)
	cl.waitConnects(1)
	return cl
}

// dial starts connecting a client whose tokens come from b.
func (st *site) dial(t *testing.T, b *browser) *client {
	t.Helper()
	return st.dialWithToken(t, b, "")
}

// dialWithToken is dial with a first connection token of the test's.
func (st *site) dialWithToken(t *testing.T, b *browser, first string) *client {
	t.Helper()
	cl := &client{t: t, b: b, subs: map[string]*sub{}, disconnected: make(chan uint32, 16)}
	cl.c = centrifuge.NewJsonClient(st.wsURL(), centrifuge.Config{
		Token: first,
		GetToken: func(centrifuge.ConnectionTokenEvent) (string, error) {
			cl.mu.Lock()
			cl.tokenAsks++
			cl.mu.Unlock()
			if cl.closing.Load() {
				return "", errors.New("the test is over")
			}
			return b.token("/instant/connection_token", map[string]any{})
		},
		MinReconnectDelay: 50 * time.Millisecond,
		MaxReconnectDelay: 200 * time.Millisecond,
		HandshakeTimeout:  10 * time.Second, // the 1s default ran out dialling loopback on a loaded machine
	})
	cl.c.OnConnected(func(centrifuge.ConnectedEvent) {
		cl.mu.Lock()
		cl.connects++
		cl.mu.Unlock()
	})
	cl.c.OnDisconnected(func(e centrifuge.DisconnectedEvent) {
		cl.mu.Lock()
		cl.disconnects = append(cl.disconnects, e.Code)
		cl.mu.Unlock()
		send(cl.disconnected, e.Code)
	})
	cl.c.OnConnecting(func(e centrifuge.ConnectingEvent) {
		if e.Code >= 3000 { // a reconnect after the server closed the connection
			cl.mu.Lock()
			cl.disconnects = append(cl.disconnects, e.Code)
			cl.mu.Unlock()
			send(cl.disconnected, e.Code)
		}
	})
	t.Cleanup(func() {
		cl.closing.Store(true)
		time.Sleep(100 * time.Millisecond)
		cl.c.Close()
	})
	if err := cl.c.Connect(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// waitConnects waits until the client connected n times in all.
func (cl *client) waitConnects(n int) {
	cl.t.Helper()
	eventually(cl.t, 10*time.Second, fmt.Sprintf("connected %d times", n), func() bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return cl.connects >= n
	})
}

// sub is one subscription and what it received.
type sub struct {
	s *centrifuge.Subscription

	mu           sync.Mutex
	data         [][]byte
	joins        []centrifuge.ClientInfo
	leaves       []centrifuge.ClientInfo
	subscribed   []centrifuge.SubscribedEvent
	unsubscribed []uint32
}

// subscribe subscribes to channel with cfg and waits for the server's
// answer: the subscription when it was accepted, else nil and the
// refusal's code (a subscribe error's, or the connection's close code
// when the server closed it instead).
func (cl *client) subscribe(channel string, cfg centrifuge.SubscriptionConfig) (*sub, uint32) {
	cl.t.Helper()
	s, err := cl.c.NewSubscription(channel, cfg)
	if err != nil {
		cl.t.Fatal(err)
	}
	sb := &sub{s: s}
	answer := make(chan uint32, 4)
	s.OnPublication(func(e centrifuge.PublicationEvent) {
		sb.mu.Lock()
		sb.data = append(sb.data, e.Data)
		sb.mu.Unlock()
	})
	s.OnJoin(func(e centrifuge.JoinEvent) {
		sb.mu.Lock()
		sb.joins = append(sb.joins, e.ClientInfo)
		sb.mu.Unlock()
	})
	s.OnLeave(func(e centrifuge.LeaveEvent) {
		sb.mu.Lock()
		sb.leaves = append(sb.leaves, e.ClientInfo)
		sb.mu.Unlock()
	})
	s.OnSubscribed(func(e centrifuge.SubscribedEvent) {
		sb.mu.Lock()
		sb.subscribed = append(sb.subscribed, e)
		sb.mu.Unlock()
		send(answer, 0)
	})
	s.OnUnsubscribed(func(e centrifuge.UnsubscribedEvent) {
		sb.mu.Lock()
		sb.unsubscribed = append(sb.unsubscribed, e.Code)
		sb.mu.Unlock()
	})
	s.OnError(func(e centrifuge.SubscriptionErrorEvent) {
		var se centrifuge.SubscriptionSubscribeError
		if errors.As(e.Error, &se) {
			var ce *centrifuge.Error
			if errors.As(se.Err, &ce) {
				if ce.Code == 109 {
					return // token expired: the client asks for another and tries again
				}
				send(answer, ce.Code)
				return
			}
			if errors.Is(se.Err, centrifuge.ErrClientDisconnected) {
				// The server closed the connection instead of answering:
				// its close code, which follows, is the refusal.
				return
			}
			send(answer, 1)
		}
	})
	if err := s.Subscribe(); err != nil {
		cl.t.Fatal(err)
	}
	select {
	case code := <-answer:
		if code == 0 {
			cl.subs[channel] = sb
			return sb, 0
		}
		_ = s.Unsubscribe()
		_ = cl.c.RemoveSubscription(s)
		return nil, code
	case code := <-cl.disconnected:
		return nil, code
	case <-time.After(10 * time.Second):
		cl.t.Fatalf("no answer subscribing to %s", channel)
		return nil, 0
	}
}

// send sends code unless ch is full: the handlers that call it run again
// on every resubscribe, when nobody reads.
func send(ch chan uint32, code uint32) {
	select {
	case ch <- code:
	default:
	}
}

// withToken is a subscription config whose tokens come from the
// subscription_token route.
func (cl *client) withToken(channel string) centrifuge.SubscriptionConfig {
	return centrifuge.SubscriptionConfig{GetToken: func(centrifuge.SubscriptionTokenEvent) (string, error) {
		if cl.closing.Load() {
			return "", errors.New("the test is over")
		}
		return cl.b.token("/instant/subscription_token", map[string]any{"channel": channel})
	}}
}

// received is what sb received so far, each as its bytes.
func (sb *sub) received() []string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	out := make([]string, len(sb.data))
	for k, d := range sb.data {
		out[k] = string(d)
	}
	return out
}

// messages is the "message" of each payload sb received, in order.
func (sb *sub) messages() []string {
	var out []string
	for _, raw := range sb.received() {
		var p struct{ Message string }
		_ = json.Unmarshal([]byte(raw), &p)
		out = append(out, p.Message)
	}
	return out
}

// waitMessage waits until sb received a payload with message.
func (sb *sub) waitMessage(t *testing.T, message string) {
	t.Helper()
	eventually(t, 10*time.Second, "message "+message, func() bool {
		for _, m := range sb.messages() {
			if m == message {
				return true
			}
		}
		return false
	})
}

// isUnsubscribed reports whether the server ended sb.
func (sb *sub) isUnsubscribed() bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return len(sb.unsubscribed) > 0
}

// eventually waits until cond holds, failing the test after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: never %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventTo is an event with message to channel.
func eventTo(channel, message string) instant.Event {
	return instant.Event{Channel: channel, Message: message}
}

func configDisallowAnonymous() instant.Config {
	return instant.Config{DisallowAnonymous: true}
}

// broadcast sends ev through st's Instant, failing the test on error.
func (st *site) broadcast(t *testing.T, ev instant.Event) {
	t.Helper()
	if err := st.inst.Broadcast(context.Background(), ev); err != nil {
		t.Fatalf("Broadcast %q: %v", ev.Message, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
