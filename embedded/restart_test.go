package embedded_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
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

// restartSecret is the token secret both processes of the restart test
// share, as several processes on one Redis must.
var restartSecret = strings.Repeat("r", 32)

// process is one app process: an embedded server on a Redis, an Instant
// and a Gin app served at addr.
type process struct {
	srv  *embedded.Server
	inst *instant.Instant
	http *http.Server
	done chan struct{}
}

// startProcess starts a process on addr ("127.0.0.1:0" for any port).
func startProcess(t *testing.T, redisURL, addr string) (*process, string) {
	t.Helper()
	srv, err := embedded.New(embedded.Options{RedisAddress: redisURL})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := instant.New(instant.Config{TokenSecret: restartSecret, Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore([]byte(restartSecret))))
	inst.Register(r.Group("/instant"))
	var ln net.Listener
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &process{srv: srv, inst: inst, http: &http.Server{Handler: r}, done: make(chan struct{})}
	go func() { _ = p.http.Serve(ln); close(p.done) }()
	return p, ln.Addr().String()
}

// stop ends the process as a deploy does: the server closes its
// websockets, the HTTP server stops.
func (p *process) stop() {
	_ = p.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.http.Shutdown(ctx)
	_ = p.http.Close()
	<-p.done
}

// TestRestartedProcessRecovers: two processes on one Redis; a client of B
// reads $site_users. B is restarted on its address (a deploy) while A
// publishes: the client reconnects to the new B by itself and receives,
// in order and once, what was published while it was away, then what
// comes next.
func TestRestartedProcessRecovers(t *testing.T) {
	redis := centrifugotest.StartRedis(t)
	a, _ := startProcess(t, redis.URL, "127.0.0.1:0")
	t.Cleanup(a.stop)
	b, addr := startProcess(t, redis.URL, "127.0.0.1:0")

	alice := &instant.User{ID: "1", Username: "alice"}
	conn, err := b.inst.ConnectionToken(alice)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := b.inst.SubscriptionToken(nil, alice, "$site_users")
	if err != nil {
		t.Fatal(err)
	}
	c := centrifuge.NewJsonClient("ws://"+addr+"/instant/connection/websocket", centrifuge.Config{
		Token:             conn.Token,
		MinReconnectDelay: 50 * time.Millisecond,
		MaxReconnectDelay: 200 * time.Millisecond,
		HandshakeTimeout:  10 * time.Second, // the 1s default ran out dialling loopback on a loaded machine
	})
	t.Cleanup(c.Close)
	var mu sync.Mutex
	var got []string
	connects := make(chan struct{}, 4)
	c.OnConnected(func(centrifuge.ConnectedEvent) { connects <- struct{}{} })
	sub, err := c.NewSubscription("$site_users", centrifuge.SubscriptionConfig{Token: tok.Token})
	if err != nil {
		t.Fatal(err)
	}
	sub.OnPublication(func(e centrifuge.PublicationEvent) {
		var ev struct{ Message string }
		_ = json.Unmarshal(e.Data, &ev)
		mu.Lock()
		got = append(got, ev.Message)
		mu.Unlock()
	})
	subscribed := make(chan struct{}, 4)
	sub.OnSubscribed(func(centrifuge.SubscribedEvent) { subscribed <- struct{}{} })
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(); err != nil {
		t.Fatal(err)
	}
	wait := func(ch chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not within 10 s", what)
		}
	}
	wait(connects, "connected to B")
	wait(subscribed, "subscribed on B")
	publish := func(msg string) {
		t.Helper()
		if err := a.inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	publish("before")

	stopped := time.Now()
	b.stop() // the deploy
	publish("while away 1")
	publish("while away 2")
	b2, _ := startProcess(t, redis.URL, addr)
	t.Cleanup(b2.stop)
	wait(connects, "reconnected to the new B")
	wait(subscribed, "subscribed again on the new B")
	back := time.Since(stopped)
	publish("after")

	want := "before,while away 1,while away 2,after"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		have := strings.Join(got, ",")
		mu.Unlock()
		if have == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client received %q, want %q", have, want)
		}
	}
	t.Logf("the client was back and subscribed %v after B stopped", back.Round(time.Millisecond))
}
