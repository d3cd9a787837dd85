package instant_test

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

func TestCentrifugoConfigAgrees(t *testing.T) {
	cfg := testConfig()
	cfg.UsersChannels = []string{"$team:all"}
	inst := newInstant(t, cfg)
	_ = inst.Authorize("$orders:{id}", func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil })
	raw, err := inst.CentrifugoConfig(instant.CentrifugoOptions{Port: 8123, AllowedOrigins: []string{"http://127.0.0.1:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		HTTPServer struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		} `json:"http_server"`
		HTTPAPI struct{ Key string } `json:"http_api"`
		Client  struct {
			Token struct {
				HMACSecretKey string `json:"hmac_secret_key"`
			} `json:"token"`
			AllowedOrigins []string `json:"allowed_origins"`
		} `json:"client"`
		Channel struct {
			PrivatePrefix    string         `json:"private_prefix"`
			WithoutNamespace map[string]any `json:"without_namespace"`
			Namespaces       []struct {
				Name string `json:"name"`
			} `json:"namespaces"`
		} `json:"channel"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.HTTPServer.Address != "127.0.0.1" || c.HTTPServer.Port != 8123 || c.HTTPAPI.Key != testAPIKey ||
		c.Client.Token.HMACSecretKey != testSecret || c.Channel.PrivatePrefix != "$" ||
		len(c.Client.AllowedOrigins) != 1 || c.Channel.WithoutNamespace["allow_subscribe_for_anonymous"] != true {
		t.Errorf("config %s", raw)
	}
	var ns []string
	for _, n := range c.Channel.Namespaces {
		ns = append(ns, n.Name)
	}
	if strings.Join(ns, " ") != "orders site_user team" {
		t.Errorf("namespaces %v, want [orders site_user team] (site_user: personal channels)", ns)
	}
	cfg.DisallowAnonymous = true
	raw, _ = newInstant(t, cfg).CentrifugoConfig(instant.CentrifugoOptions{})
	if !strings.Contains(string(raw), `"allow_subscribe_for_anonymous": false`) {
		t.Errorf("DisallowAnonymous not carried into the config:\n%s", raw)
	}
	raw, _ = inst.CentrifugoConfig(instant.CentrifugoOptions{ProxyURL: "http://127.0.0.1:8080/instant"})
	// Every proxy carries one key, neither the API key nor the secret.
	if key := proxyKey(t, inst); key == testAPIKey || key == testSecret ||
		strings.Count(string(raw), `"X-Instant-Proxy-Key": "`+key+`"`) != strings.Count(string(raw), `"X-Instant-Proxy-Key"`) {
		t.Errorf("proxy key not the derived one:\n%s", raw)
	}
	if _, err := inst.CentrifugoConfig(instant.CentrifugoOptions{Port: 70000}); !errors.Is(err, instant.ErrConfig) {
		t.Errorf("port 70000: %v", err)
	}
}

// TestCentrifugoConfigPassesCheckconfig runs the real server's strict
// config check on what CentrifugoConfig writes.
func TestCentrifugoConfigPassesCheckconfig(t *testing.T) {
	t.Parallel()
	bin := centrifugotest.Require(t)
	inst := newInstant(t, testConfig())
	_ = inst.Authorize("$chat:*", func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil })
	for name, o := range map[string]instant.CentrifugoOptions{
		"plain":   {},
		"history": {HistorySize: 10, HistoryTTL: time.Minute, Presence: true, AllowedOrigins: []string{"http://127.0.0.1:8080"}},
		"proxies": {ProxyURL: "http://127.0.0.1:8080/instant"},
	} {
		raw, err := inst.CentrifugoConfig(o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "checkconfig", "--strict", "-c", path).CombinedOutput()
		if err != nil {
			t.Errorf("%s: checkconfig --strict: %v\n%s\n%s", name, err, out, raw)
		}
	}
}

// TestCentrifugoConfigPresenceWhereItIsPrivate: with Presence, the
// namespaces that hold private channels get presence, and one of public
// channels only gets none (no joins or leaves, no queries, for anyone);
// no namespace lets a client query presence or ask for joins by itself.
func TestCentrifugoConfigPresenceWhereItIsPrivate(t *testing.T) {
	cfg := testConfig()
	cfg.PublicChannels = []string{"site_public", "news:all", "chat:lobby"}
	inst := newInstant(t, cfg)
	_ = inst.Authorize("$chat:*", func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil })
	presenceOf := func(raw []byte) map[string]bool {
		t.Helper()
		var c struct {
			Channel struct {
				WithoutNamespace map[string]any   `json:"without_namespace"`
				Namespaces       []map[string]any `json:"namespaces"`
			} `json:"channel"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, opts := range append(c.Channel.Namespaces, c.Channel.WithoutNamespace) {
			name, _ := opts["name"].(string)
			on := opts["presence"] == true
			if (opts["join_leave"] == true) != on {
				t.Errorf("namespace %q: presence %v but join_leave %v", name, on, opts["join_leave"])
			}
			// No client asks for presence or joins by itself, anywhere.
			if opts["allow_presence_for_subscriber"] != false || opts["force_push_join_leave"] != false || opts["allow_presence_for_anonymous"] == true || opts["allow_presence_for_client"] == true {
				t.Errorf("namespace %q: %v", name, opts)
			}
			out[name] = on
		}
		return out
	}
	raw, _ := inst.CentrifugoConfig(instant.CentrifugoOptions{Presence: true})
	want := map[string]bool{"": true, "chat": true, "news": false, "site_user": true}
	if got := presenceOf(raw); !maps.Equal(got, want) {
		t.Errorf("presence by namespace %v, want %v", got, want)
	}
	raw, _ = inst.CentrifugoConfig(instant.CentrifugoOptions{})
	if got := presenceOf(raw); slices.Contains(slices.Collect(maps.Values(got)), true) {
		t.Errorf("presence off, yet on in %v", got)
	}
	// A rule whose namespace cannot be told may match any: presence stays
	// on everywhere (if Authorize takes such a pattern at all).
	if err := inst.Authorize("${team}:board", func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }); err == nil {
		raw, _ = inst.CentrifugoConfig(instant.CentrifugoOptions{Presence: true})
		if got := presenceOf(raw); !got["news"] {
			t.Errorf("with ${team}:board, presence by namespace %v, want on everywhere", got)
		}
	}
}

// TestCentrifugoConfigHistoryTTL: HistoryTTL is written in whole seconds,
// a fraction of one refused; zero is the default's 120s, negative none.
func TestCentrifugoConfigHistoryTTL(t *testing.T) {
	inst := newInstant(t, testConfig())
	for _, tc := range []struct {
		o    instant.CentrifugoOptions
		want string // history_ttl of channels without a namespace, "" for none
	}{
		{instant.CentrifugoOptions{}, "120s"},
		{instant.CentrifugoOptions{HistorySize: 10, HistoryTTL: 90 * time.Second}, "90s"},
		{instant.CentrifugoOptions{HistorySize: -1, HistoryTTL: -1}, ""},
	} {
		raw, err := inst.CentrifugoConfig(tc.o)
		var c struct {
			Channel struct {
				WithoutNamespace map[string]any `json:"without_namespace"`
			} `json:"channel"`
		}
		if err != nil || json.Unmarshal(raw, &c) != nil {
			t.Fatalf("%+v: %v", tc.o, err)
		}
		if got, _ := c.Channel.WithoutNamespace["history_ttl"].(string); got != tc.want {
			t.Errorf("%+v: history_ttl %q, want %q", tc.o, got, tc.want)
		}
	}
	for _, o := range []instant.CentrifugoOptions{
		{HistorySize: 10, HistoryTTL: 1500 * time.Millisecond},
		{HistorySize: 10},
		{HistoryTTL: time.Minute},
		{HistorySize: -1, HistoryTTL: time.Minute},
	} {
		if _, err := inst.CentrifugoConfig(o); !errors.Is(err, instant.ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", o, err)
		}
	}
}
