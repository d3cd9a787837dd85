package embedded_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// TestTwoProcesses: two Servers on one Redis, each with its own Gin app
// and the same token secret, act as one: an event from A reaches a
// client of B, Presence on A lists a client of B, and Reauthorize on A
// ends a subscription held on B within a second.
func TestTwoProcesses(t *testing.T) {
	redis := centrifugotest.StartRedis(t)
	us := newUsers()
	a := newSite(t, embedded.Options{RedisAddress: redis.URL}, us)
	b := newSite(t, embedded.Options{RedisAddress: redis.URL}, us)
	if got := a.srv.Describe(); got != "embedded, redis "+redis.URL {
		t.Errorf("Describe: %q", got)
	}
	if err := a.srv.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}

	alice := b.connect(t, b.browser(t, "1"))
	users, _ := alice.subscribe("$site_users", alice.withToken("$site_users"))
	room, _ := alice.subscribe("$room:1", alice.withToken("$room:1"))
	sam := b.connect(t, b.browser(t, "3"))
	samStaff, _ := sam.subscribe("$site_staff", sam.withToken("$site_staff"))
	root := a.connect(t, a.browser(t, "4"))
	rootStaff, _ := root.subscribe("$site_staff", root.withToken("$site_staff"))
	if users == nil || room == nil || samStaff == nil || rootStaff == nil {
		t.Fatal("refused")
	}

	start := time.Now()
	a.broadcast(t, eventTo("$site_users", "from A"))
	users.waitMessage(t, "from A")
	t.Logf("A → client of B: %v", time.Since(start))

	members, err := a.inst.Presence(context.Background(), "$room:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].UserID != "1" || string(members[0].Info) != `{"nick":"alice"}` {
		t.Errorf("Presence on A: %+v, want alice (a client of B) with her info", members)
	}

	reauthorizeEnds(t, a, us, samStaff, rootStaff)
}

// TestRedisUnreachable: New fails when Redis does not answer, naming the
// address.
func TestRedisUnreachable(t *testing.T) {
	port, err := centrifugotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "redis://127.0.0.1:" + itoa(port)
	srv, err := embedded.New(embedded.Options{RedisAddress: addr})
	if err == nil {
		_ = srv.Close()
		t.Fatal("New with no Redis there: no error")
	}
	if !strings.Contains(err.Error(), addr) || !strings.HasPrefix(err.Error(), "embedded:") {
		t.Errorf("error %q, want it to name %s", err, addr)
	}
}
