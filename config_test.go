package instant_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

func TestNewReportsEveryProblemAtOnce(t *testing.T) {
	_, err := instant.New(instant.Config{
		APIURL:             "ftp://x/api",
		TokenSecret:        "short",
		SiteSlug:           "bad slug",
		PublicChannels:     []string{"$not_public"},
		StaffChannels:      []string{"a b"},
		ConnectionTokenTTL: -time.Second,
		TrustedOrigins:     []string{"not an origin"},
		GroupChannels:      map[string][]string{"": {"x"}},
	})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	if !errors.Is(err, instant.ErrConfig) {
		t.Errorf("%v does not wrap ErrConfig", err)
	}
	for _, want := range []string{"TokenSecret", "APIURL", "SiteSlug", "PublicChannels", "StaffChannels", "ConnectionTokenTTL", "TrustedOrigins", "GroupChannels"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "short") {
		t.Error("error shows the secret")
	}
}

func TestNewRequiresSecret(t *testing.T) {
	if _, err := instant.New(instant.Config{}); err == nil || !strings.Contains(err.Error(), "TokenSecret is required") {
		t.Errorf("New(Config{}) = %v", err)
	}
	if _, err := instant.New(instant.Config{TokenSecret: strings.Repeat("x", 31)}); err == nil {
		t.Error("31-byte secret accepted")
	}
	if _, err := instant.New(instant.Config{TokenSecret: strings.Repeat("x", 32)}); err != nil {
		t.Errorf("32-byte secret refused: %v", err)
	}
}

func TestNewRefusesDuplicateLevels(t *testing.T) {
	cfg := testConfig()
	cfg.StaffChannels = []string{"$site_users"}
	if _, err := instant.New(cfg); err == nil || !strings.Contains(err.Error(), "already a users channel") {
		t.Errorf("same channel at two levels: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	inst := newInstant(t, instant.Config{TokenSecret: testSecret})
	if got := inst.WebsocketURL(); got != "ws://127.0.0.1:8000/connection/websocket" {
		t.Errorf("WebsocketURL %q", got)
	}
	f, srv := newFakeAPI(t)
	if err := newInstant(t, instant.Config{TokenSecret: testSecret, APIURL: srv.URL + "/api"}).Broadcast(context.Background(), instant.Event{Channel: "site_public", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, payloads := f.published(t, 0); payloads[0]["site"] != "site" {
		t.Errorf("site %v, want the slug", payloads[0]["site"])
	}
	conn, err := inst.ConnectionToken(&alice)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := inst.SubscriptionToken(nil, &alice, "$site_users")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tok instant.Token
		ttl time.Duration
	}{{conn, 10 * time.Minute}, {sub, 5 * time.Minute}} {
		claims := parseToken(t, tc.tok.Token)
		if got := time.Duration(claims["exp"].(float64)-claims["iat"].(float64)) * time.Second; got < tc.ttl-time.Second || got > tc.ttl {
			t.Errorf("token lifetime %v, want %v", got, tc.ttl)
		}
	}
	want := map[instant.Level]string{
		instant.LevelPublic: "site_public", instant.LevelUsers: "$site_users",
		instant.LevelStaff: "$site_staff", instant.LevelSuperuser: "$site_admin",
	}
	for l, name := range want {
		if got := levelChannels(inst, l); len(got) != 1 || got[0] != name {
			t.Errorf("%v channels %v, want [%s]", l, got, name)
		}
	}
}

func TestWebsocketURLFollowsAPIURL(t *testing.T) {
	cfg := testConfig()
	cfg.APIURL = "https://rt.example.com/centrifugo/api"
	if got := newInstant(t, cfg).WebsocketURL(); got != "wss://rt.example.com/centrifugo/connection/websocket" {
		t.Errorf("WebsocketURL %q", got)
	}
}

func TestEmptyListMeansNoChannels(t *testing.T) {
	cfg := testConfig()
	cfg.PublicChannels = []string{}
	inst := newInstant(t, cfg)
	if got := listedChannels(t, newBrowser(t, newRouter(inst))); len(got) != 0 {
		t.Errorf("anonymous channels %v, want none", got)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("INSTANT_API_URL", "http://127.0.0.1:9999/api")
	t.Setenv("CENTRIFUGO_HTTP_API_KEY", "k")
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", testSecret)
	t.Setenv("INSTANT_WEBSOCKET_URL", "ws://127.0.0.1:9999/connection/websocket")
	t.Setenv("INSTANT_SITE_NAME", "My Shop")
	t.Setenv("INSTANT_SITE_SLUG", "shop")
	cfg := instant.ConfigFromEnv()
	want := instant.Config{
		APIURL: "http://127.0.0.1:9999/api", APIKey: "k", TokenSecret: testSecret,
		WebsocketURL: "ws://127.0.0.1:9999/connection/websocket", SiteName: "My Shop", SiteSlug: "shop",
	}
	if cfg.APIURL != want.APIURL || cfg.APIKey != want.APIKey || cfg.TokenSecret != want.TokenSecret ||
		cfg.WebsocketURL != want.WebsocketURL || cfg.SiteName != want.SiteName || cfg.SiteSlug != want.SiteSlug {
		t.Errorf("ConfigFromEnv = %+v", cfg)
	}
	inst := newInstant(t, cfg)
	if got := levelChannels(inst, instant.LevelUsers); got[0] != "$shop_users" {
		t.Errorf("users channel %v", got)
	}
}

// TestConfigFromEnvSaysNothing: the variables are read without a word in
// the log, and a list is split at commas, blank items dropped.
func TestConfigFromEnvSaysNothing(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	t.Setenv("INSTANT_API_URL", "http://127.0.0.1:9999/api")
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "s")
	t.Setenv("INSTANT_STAFF_CHANNELS", " a ,, b ,")
	cfg := instant.ConfigFromEnv()
	if cfg.APIURL != "http://127.0.0.1:9999/api" || cfg.TokenSecret != "s" || len(cfg.StaffChannels) != 2 ||
		cfg.StaffChannels[0] != "a" || cfg.StaffChannels[1] != "b" || cfg.UsersChannels != nil || buf.Len() != 0 {
		t.Errorf("ConfigFromEnv = %+v, log %q", cfg, buf.String())
	}
}

// TestWebsocketURLHoldsNoCredentials: the API URL's user and password
// (basic auth on a proxy in front of /api) never reach the websocket URL
// that every visitor is told.
func TestWebsocketURLHoldsNoCredentials(t *testing.T) {
	cfg := testConfig()
	cfg.APIURL = "https://rt.example.com/api" // New refuses credentials here (TestNewRefusesCredentialsInAPIURL)
	inst := newInstant(t, cfg)
	if got := inst.WebsocketURL(); got != "wss://rt.example.com/connection/websocket" {
		t.Errorf("WebsocketURL %q", got)
	}
	status, body := newBrowser(t, newRouter(inst)).get("/instant/channels")
	if ws, _ := body["websocket_url"].(string); status != 200 || ws != "wss://rt.example.com/connection/websocket" {
		t.Errorf("GET channels: %d websocket_url %q", status, ws)
	}
	cfg.WebsocketURL = "wss://u:p@rt.example.com/connection/websocket"
	if _, err := instant.New(cfg); !errors.Is(err, instant.ErrConfig) || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("New with credentials in WebsocketURL: %v", err)
	}
}

// TestNewRefusesCredentialsInAPIURL: credentials in APIURL
// (http://user:pass@host/api) were never sent (the API key takes the
// Authorization header) and the 401 then read as a wrong API key. New
// refuses them, for APIURL and every APIURLs entry, without repeating the
// password.
func TestNewRefusesCredentialsInAPIURL(t *testing.T) {
	const password = "pr0xy-pa55word"
	for _, u := range []string{
		"http://admin:" + password + "@127.0.0.1:8000/api",
		"https://admin:" + password + "@proxy.example.com/centrifugo/api",
		"http://admin@127.0.0.1:8000/api",
		"http://:" + password + "@127.0.0.1:8000/api",
	} {
		cfg := testConfig()
		cfg.APIURL = u
		_, err := instant.New(cfg)
		if !errors.Is(err, instant.ErrConfig) || !strings.Contains(err.Error(), "APIURL") || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("APIURL with credentials: %v", err)
		}
		cfg = testConfig()
		cfg.APIURLs = []string{"http://127.0.0.1:8001/api", u}
		_, err2 := instant.New(cfg)
		if !errors.Is(err2, instant.ErrConfig) || !strings.Contains(err2.Error(), "APIURLs[1]") || !strings.Contains(err2.Error(), "credentials") {
			t.Errorf("APIURLs with credentials: %v", err2)
		}
		for _, e := range []error{err, err2} {
			if e != nil && (strings.Contains(e.Error(), password) || strings.Contains(e.Error(), "admin")) {
				t.Errorf("the error repeats the credentials: %v", e)
			}
		}
	}
	cfg := testConfig()
	cfg.APIURLs = []string{"http://127.0.0.1:8001/api"}
	if _, err := instant.New(cfg); err != nil {
		t.Errorf("APIURLs without credentials: %v", err)
	}
}

// TestNewKeepsItsOwnAPIURLs: the caller's APIURLs slice, changed after
// New, changes nothing in the Instant (Check names the nodes New took).
func TestNewKeepsItsOwnAPIURLs(t *testing.T) {
	var ports [2]int // closed again: nothing listens
	for k := range ports {
		var err error
		if ports[k], err = centrifugotest.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig()
	cfg.APIURL = fmt.Sprintf("http://127.0.0.1:%d/api", ports[0])
	node := fmt.Sprintf("http://127.0.0.1:%d/api", ports[1])
	cfg.APIURLs = []string{node}
	inst := newInstant(t, cfg)
	cfg.APIURLs[0] = "http://changed.invalid/api"
	err := inst.Check(context.Background())
	if err == nil || strings.Contains(err.Error(), "changed.invalid") || !strings.Contains(err.Error(), node) {
		t.Errorf("Check after the caller changed its APIURLs: %v", err)
	}
}
