package instant_test

// The app's own commands, and one environment for the app and Centrifugo.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

func TestCommandWritesTheConfig(t *testing.T) {
	inst := newInstant(t, testConfig())
	path := filepath.Join(t.TempDir(), "centrifugo.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	done, err := inst.Command([]string{"centrifugo-config", path}, instant.CentrifugoOptions{Port: 8123})
	if !done || err != nil {
		t.Fatalf("Command: %v %v", done, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	want, _ := inst.CentrifugoConfig(instant.CentrifugoOptions{Port: 8123})
	if info.Mode().Perm() != 0o600 || strings.TrimSpace(string(raw)) != string(want) {
		t.Errorf("the file: mode %v, %q", info.Mode().Perm(), raw)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("files left beside it: %v", entries)
	}
}

func TestCommandLeavesOtherArgsToTheApp(t *testing.T) {
	inst := newInstant(t, testConfig())
	for _, args := range [][]string{nil, {}, {"serve"}, {"-port", "8080"}, {"checks"}, {"Check"}} {
		if done, err := inst.Command(args, instant.CentrifugoOptions{}); done || err != nil {
			t.Errorf("Command(%q) = %v, %v", args, done, err)
		}
	}
	for _, args := range [][]string{{"check", "now"}, {"centrifugo-config", "a", "b"}} {
		if done, err := inst.Command(args, instant.CentrifugoOptions{}); !done || err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("Command(%q) = %v, %v", args, done, err)
		}
	}
	done, err := inst.Command([]string{"centrifugo-config", filepath.Join(t.TempDir(), "no", "such", "dir")}, instant.CentrifugoOptions{})
	if !done || err == nil {
		t.Errorf("Command into a missing directory: %v, %v", done, err)
	}
	done, err = inst.Command([]string{"centrifugo-config", filepath.Join(t.TempDir(), "c.json")}, instant.CentrifugoOptions{Port: -1})
	if !done || !errors.Is(err, instant.ErrConfig) {
		t.Errorf("Command with a bad port: %v, %v", done, err)
	}
}

// TestCommandCheck: the check command returns Check's problems.
func TestCommandCheck(t *testing.T) {
	cfg := checkConfig() // nothing at 127.0.0.1:1
	done, err := newInstant(t, cfg).Command([]string{"check"}, instant.CentrifugoOptions{})
	if !done || !errors.Is(err, instant.ErrUnreachable) {
		t.Errorf("check with nothing listening: %v, %v", done, err)
	}
	cs := startCheck(t, instant.CentrifugoOptions{}, nil)
	if done, err := cs.app(t, nil).Command([]string{"check"}, instant.CentrifugoOptions{}); !done || err != nil {
		t.Errorf("check against the generated config: %v, %v", done, err)
	}
}

// appEnv is the environment of an app whose Centrifugo listens on port:
// every setting under the names ConfigFromEnv reads.
func appEnv(port int) map[string]string {
	return map[string]string{
		"CENTRIFUGO_HTTP_API_KEY":                 testAPIKey,
		"CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": testSecret,
		"INSTANT_API_URL":                         fmt.Sprintf("http://127.0.0.1:%d/api", port),
		"INSTANT_WEBSOCKET_URL":                   fmt.Sprintf("ws://127.0.0.1:%d/connection/websocket", port),
		"INSTANT_SITE_NAME":                       "My Shop",
		"INSTANT_SITE_SLUG":                       "shop",
		"INSTANT_SITE_ORIGIN":                     siteOrigin,
		"INSTANT_USERS_CHANNELS":                  "$team:all, members",
		"INSTANT_STAFF_CHANNELS":                  "staff",
		"INSTANT_SUPERUSER_CHANNELS":              "",
	}
}

// TestOneEnvironmentForAppAndCentrifugo: Centrifugo run with the app's
// environment (and the rest of its config in a file without the secrets)
// warns of no variable, and the app built from the same environment
// passes Check against it.
func TestOneEnvironmentForAppAndCentrifugo(t *testing.T) {
	bin := centrifugotest.Require(t)
	port, err := centrifugotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env := appEnv(port)
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg := instant.ConfigFromEnv()
	if cfg.APIKey != testAPIKey || cfg.TokenSecret != testSecret || cfg.APIURL != env["INSTANT_API_URL"] ||
		cfg.WebsocketURL != env["INSTANT_WEBSOCKET_URL"] || cfg.SiteName != "My Shop" || cfg.SiteSlug != "shop" ||
		cfg.SiteOrigin != siteOrigin || !slices.Equal(cfg.UsersChannels, []string{"$team:all", "members"}) ||
		!slices.Equal(cfg.StaffChannels, []string{"staff"}) || cfg.SuperuserChannels == nil || len(cfg.SuperuserChannels) != 0 ||
		cfg.PublicChannels != nil {
		t.Fatalf("ConfigFromEnv = %+v", cfg)
	}
	inst := newInstant(t, cfg)
	if got := levelChannels(inst, instant.LevelSuperuser); len(got) != 0 {
		t.Errorf("INSTANT_SUPERUSER_CHANNELS set empty: superuser channels %v, want none", got)
	}
	raw, err := inst.CentrifugoConfig(instant.CentrifugoOptions{Port: port, AllowedOrigins: []string{siteOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	// The secrets come from the environment only.
	var conf map[string]any
	if err := json.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	delete(conf, "http_api")
	delete(conf["client"].(map[string]any), "token")
	raw, _ = json.Marshal(conf)
	out := runCentrifugo(t, bin, port, raw, env)
	if err := inst.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	if strings.Contains(out(), "unknown var") || !strings.Contains(out(), "starting Centrifugo") {
		t.Errorf("centrifugo's log:\n%s", out())
	}

}

// runCentrifugo runs Centrifugo with conf as its config file and env as
// its whole environment until the test ends, and returns its output so far.
func runCentrifugo(t *testing.T, bin string, port int, conf []byte, env map[string]string) func() string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	return runCentrifugoWith(t, bin, port, path, env)
}

// runCentrifugoWith runs Centrifugo with -c path (which may name no file:
// Centrifugo then runs on its defaults and env) and env as its whole
// environment until the test ends, and returns its output so far, once
// /health answers on port.
func runCentrifugoWith(t *testing.T, bin string, port int, path string, env map[string]string) func() string {
	t.Helper()
	cmd := exec.Command(bin, "-c", path)
	cmd.Dir = t.TempDir()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var mu sync.Mutex
	var buf strings.Builder
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	out := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return out
			}
		}
		select {
		case <-exited:
			t.Fatalf("centrifugo exited:\n%s", out())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("centrifugo not healthy:\n%s", out())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestConfigFromEnvReadsMoreAPIURLs: the further nodes of a cluster come
// from INSTANT_API_URLS, comma-separated, and Check asks each of them.
func TestConfigFromEnvReadsMoreAPIURLs(t *testing.T) {
	t.Setenv("INSTANT_API_URLS", "")
	os.Unsetenv("INSTANT_API_URLS")
	if got := instant.ConfigFromEnv().APIURLs; got != nil {
		t.Errorf("INSTANT_API_URLS unset: %v", got)
	}
	var down [2]string
	for k := range down {
		port, err := centrifugotest.FreePort() // closed again: nothing listens
		if err != nil {
			t.Fatal(err)
		}
		down[k] = fmt.Sprintf("http://127.0.0.1:%d/api", port)
	}
	t.Setenv("INSTANT_API_URLS", " "+down[0]+" ,"+down[1]+",")
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", testSecret)
	cfg := instant.ConfigFromEnv()
	if !slices.Equal(cfg.APIURLs, down[:]) {
		t.Fatalf("APIURLs %q, want %q", cfg.APIURLs, down)
	}
	err := newInstant(t, cfg).Check(context.Background())
	for _, node := range down {
		if !errors.Is(err, instant.ErrUnreachable) || !strings.Contains(err.Error(), node) {
			t.Errorf("Check does not name the node %s: %v", node, err)
		}
	}
}
