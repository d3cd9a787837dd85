package embedded_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
)

// noEnvironment unsets every CENTRIFUGO_ and INSTANT_ variable for the
// test (t.Setenv restores them after it).
func noEnvironment(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CENTRIFUGO_") || strings.HasPrefix(name, "INSTANT_") {
			t.Setenv(name, "")
			_ = os.Unsetenv(name)
		}
	}
}

// TestConfigFromEnvChoosesEmbedded: with the package imported and no
// Centrifugo in the environment, ConfigFromEnv gives an embedded Server
// (in memory) and a token secret of its own, and an Instant of it serves
// a client end to end.
func TestConfigFromEnvChoosesEmbedded(t *testing.T) {
	noEnvironment(t)
	cfg := instant.ConfigFromEnv()
	srv, ok := cfg.Server.(*embedded.Server)
	if !ok {
		t.Fatalf("Config.Server is %T, want *embedded.Server", cfg.Server)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if cfg.TokenSecret == "" {
		t.Fatal("no token secret")
	}
	if got := srv.Describe(); got != "embedded, memory" {
		t.Errorf("Describe: %q", got)
	}
	st := siteOn(t, srv, cfg, nil)
	cl := st.connect(t, st.browser(t, "1"))
	sb, code := cl.subscribe("$site_users", cl.withToken("$site_users"))
	if sb == nil {
		t.Fatalf("refused: %d", code)
	}
	st.broadcast(t, eventTo("$site_users", "from the env"))
	sb.waitMessage(t, "from the env")
}

// TestPackageLevel: the card's calls, instant.Session and
// instant.Register with no environment, serve realtime from the process
// once the package is imported: a page's client connects to the
// websocket the channels route names and receives what a handler
// broadcasts through instant.Default.
func TestPackageLevel(t *testing.T) {
	noEnvironment(t)
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(instant.Session())
	instant.Register(r.Group("/instant"))
	r.POST("/test/send", func(c *gin.Context) {
		if err := instant.Default(c).Broadcast(c, instant.Event{Target: instant.LevelPublic, Message: c.Query("m")}); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.Status(http.StatusNoContent)
	})
	hs := httptest.NewServer(r)
	t.Cleanup(hs.Close)
	st := &site{http: hs}
	b := st.browser(t, "")
	status, out, err := b.get("/instant/channels")
	if err != nil || status != http.StatusOK || out["websocket_url"] != "/instant/connection/websocket" {
		t.Fatalf("channels route: %d %v %v", status, out, err)
	}
	cl := st.connect(t, b)
	sb, code := cl.subscribe("site_public", centrifuge.SubscriptionConfig{})
	if sb == nil {
		t.Fatalf("refused: %d", code)
	}
	if status, _, err := b.post("/test/send?m=hello", map[string]any{}); err != nil || status != http.StatusNoContent {
		t.Fatalf("send: %d %v", status, err)
	}
	sb.waitMessage(t, "hello")
}
