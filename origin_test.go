package instant_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// originRouter is newRouter with GET /test/origin answering
// {"origin": instant.Origin(c)}.
func originRouter(inst *instant.Instant) *gin.Engine {
	r := newRouter(inst)
	r.GET("/test/origin", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"origin": instant.Origin(c)}) })
	return r
}

// mint asks the channels route for a new origin id, as client.js does.
func mint(t *testing.T, b *browser) string {
	t.Helper()
	status, body := b.get("/instant/channels")
	id, _ := body["origin"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("GET channels: %d %v, want an origin", status, body)
	}
	return id
}

// originOf is what Origin(c) gives for a request of b carrying id.
func originOf(t *testing.T, b *browser, id string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/test/origin", nil)
	req.Header.Set("X-Instant-Origin", id)
	status, body := b.do(req)
	if status != http.StatusOK {
		t.Fatalf("GET /test/origin: %d %v", status, body)
	}
	got, _ := body["origin"].(string)
	return got
}

var originFormat = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// TestOriginIsBoundToItsUser: an origin id minted for a user is that
// user's only. Events carry their origin, so any subscriber sees ids: an
// id sent back by another user, or by an anonymous visitor, or altered,
// is ignored, and so nobody makes their events vanish from another's tab.
func TestOriginIsBoundToItsUser(t *testing.T) {
	r := originRouter(newInstant(t, testConfig()))
	a, b, anon := newBrowser(t, r).as(&alice), newBrowser(t, r).as(&sam), newBrowser(t, r)
	id := mint(t, a)
	if !originFormat.MatchString(id) {
		t.Fatalf("minted id %q is not 1 to 64 of [A-Za-z0-9_-]", id)
	}
	if again := mint(t, a); again == id {
		t.Error("two tabs of one user got the same id")
	}
	flip := func(s string, k int) string {
		c := byte('A')
		if s[k] == 'A' {
			c = 'B'
		}
		return s[:k] + string(c) + s[k+1:]
	}
	for _, tc := range []struct {
		name string
		b    *browser
		id   string
		want string
	}{
		{"the user it was minted for", a, id, id},
		{"the same user in another browser", newBrowser(t, r).as(&alice), id, id},
		{"another user", b, id, ""},
		{"an anonymous visitor", anon, id, ""},
		{"its nonce altered", a, flip(id, 0), ""},
		{"its MAC altered", a, flip(id, len(id)-1), ""},
		{"cut short", a, id[:len(id)-1], ""},
		{"lengthened", a, id + "A", ""},
		{"a client's own random id", a, "0123456789abcdef01234567", ""},
		{"spaces", a, strings.Repeat(" ", len(id)), ""},
		{"markup", a, "<script>" + id[8:], ""},
		{"too long", a, strings.Repeat("x", 65), ""},
		{"not ASCII", a, "\u00e9t\u00e9" + id[6:], ""},
	} {
		if got := originOf(t, tc.b, tc.id); got != tc.want {
			t.Errorf("%s: Origin = %q, want %q", tc.name, got, tc.want)
		}
	}

	// Anonymous visitors share one identity; a login changes it.
	anonID := mint(t, anon)
	if got := originOf(t, newBrowser(t, r), anonID); got != anonID {
		t.Errorf("an anonymous id from another anonymous visitor: %q, want it kept", got)
	}
	if got := originOf(t, a, anonID); got != "" {
		t.Errorf("an anonymous id from a logged-in user: %q", got)
	}
	if status, _ := a.postJSON("/test/logout", nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d", status)
	}
	if got := originOf(t, a, id); got != "" {
		t.Errorf("alice's id after her logout: %q", got)
	}

	// Instants with other secrets mint ids the other does not take.
	cfg := testConfig()
	cfg.TokenSecret = "another-secret-0123456789abcdef0123"
	other := newBrowser(t, originRouter(newInstant(t, cfg))).as(&alice)
	if got := originOf(t, other, id); got != "" {
		t.Errorf("an id minted with another secret: %q", got)
	}
}

// TestOriginOutsideSession: without Session's request state Origin
// cannot tell whose id it is, and answers "".
func TestOriginOutsideSession(t *testing.T) {
	r := originRouter(newInstant(t, testConfig()))
	id := mint(t, newBrowser(t, r))
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodPost, "/", nil)
	c.Request.Header.Set("X-Instant-Origin", id)
	if got := instant.Origin(c); got != "" {
		t.Errorf("Origin outside Session = %q", got)
	}
	if instant.Origin(nil) != "" {
		t.Error("Origin(nil)")
	}
}

// TestMintedOriginIsAnEventOrigin: what Origin returns, Broadcast takes.
func TestMintedOriginIsAnEventOrigin(t *testing.T) {
	inst, f := fakeInstant(t)
	r := originRouter(inst)
	b := newBrowser(t, r).as(&alice)
	id := originOf(t, b, mint(t, b))
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "news", Message: "m", Origin: id}); err != nil {
		t.Fatalf("Broadcast with a minted origin: %v", err)
	}
	if _, payloads := f.published(t, 0); payloads[0]["origin"] != id {
		t.Errorf("payload %v, want origin %q", payloads[0], id)
	}
}

// TestOriginAllocatesNothing: Origin runs on the app's own handlers, once
// per change: checking an id costs an HMAC and no allocation (the user is
// loaded once a request).
func TestOriginAllocatesNothing(t *testing.T) {
	inst := newInstant(t, testConfig())
	r := newRouter(inst)
	var allocs float64
	var got string
	r.GET("/test/allocs", func(c *gin.Context) {
		allocs = testing.AllocsPerRun(200, func() { got = instant.Origin(c) })
		c.Status(http.StatusNoContent)
	})
	b := newBrowser(t, r).as(&alice)
	id := mint(t, b)
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/test/allocs", nil)
	req.Header.Set("X-Instant-Origin", id)
	b.do(req)
	if got != id {
		t.Errorf("Origin = %q, want %q", got, id)
	}
	// The race detector drops pooled values at random: count there is
	// meaningless.
	if allocs != 0 && !raceEnabled() {
		t.Errorf("Origin: %v allocations a call, want none", allocs)
	}
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func BenchmarkOrigin(b *testing.B) {
	inst := newInstant(b, testConfig())
	r := newRouter(inst)
	r.GET("/bench", func(c *gin.Context) {
		instant.Origin(c) // loads the user
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			instant.Origin(c)
		}
		b.StopTimer()
		c.Status(http.StatusNoContent)
	})
	br := newBrowser(b, r).as(&alice)
	_, body := br.get("/instant/channels")
	req, _ := http.NewRequest(http.MethodGet, br.srv.URL+"/bench", nil)
	req.Header.Set("X-Instant-Origin", body["origin"].(string))
	br.do(req)
}

// FuzzOrigin sends any header value: Origin answers "" or the header,
// the header for the id minted for the user, and never panics. (Under
// -fuzz each worker mints its own id: a seed minted by another answers "".)
func FuzzOrigin(f *testing.F) {
	r := originRouter(newInstant(f, testConfig()))
	b := newBrowser(f, r).as(&alice)
	_, body := b.get("/instant/channels")
	id := body["origin"].(string)
	for _, s := range []string{"", id, id[:37], id + "=", strings.Repeat("A", 38), "tab-1_A", "\x00" + id[1:], "\u00e9" + id[2:]} {
		f.Add(s)
	}
	cookies := b.cookieHeader()
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/test/origin", nil)
		req.Header = cookies.Clone()
		req.Header.Set("X-Instant-Origin", header)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		got := w.Body.String()
		ok := got == `{"origin":""}`
		if header == id {
			ok = got == `{"origin":"`+id+`"}`
		} else if header != "" && got == `{"origin":"`+header+`"}` {
			ok = len(header) == len(id) && originFormat.MatchString(header) // another worker's id
		}
		if w.Code != http.StatusOK || !ok {
			t.Fatalf("header %q: %d %s", header, w.Code, got)
		}
	})
}
