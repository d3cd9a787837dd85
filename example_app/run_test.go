package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-instant/instant/internal/centrifugotest"
)

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunServesAndStops runs the whole demo, as `go run .` does, on free
// ports, then stops it as Ctrl-C would.
func TestRunServesAndStops(t *testing.T) {
	centrifugotest.Require(t)
	dir := t.TempDir()
	js := filepath.Join(dir, "centrifuge.js")
	if err := os.WriteFile(js, []byte("// stand-in"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-port", "0", "-centrifugo-port", "0", "-dir", filepath.Join(dir, "state"), "-centrifuge-js", js}, &stdout, &stderr)
	}()

	urlRE := regexp.MustCompile(`instant demo is running: (http://127\.0\.0\.1:\d+)/`)
	var base string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" {
		if m := urlRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no URL printed:\n%s", stdout.String())
		}
	}
	for _, a := range demoAccounts() {
		if !strings.Contains(stdout.String(), a.User.Username) || !strings.Contains(stdout.String(), a.Password) {
			t.Errorf("the banner does not show the account %s with its password", a.User.Username)
		}
	}

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/login"); code != http.StatusOK || !strings.Contains(body, "admin-demo") {
		t.Errorf("GET /login: %d", code)
	}
	code, body := get("/instant/channels")
	var channels struct {
		WebsocketURL string `json:"websocket_url"`
	}
	if err := json.Unmarshal([]byte(body), &channels); err != nil || code != http.StatusOK {
		t.Fatalf("GET /instant/channels: %d %s", code, body)
	}
	health := strings.Replace(strings.TrimSuffix(channels.WebsocketURL, "/connection/websocket"), "ws://", "http://", 1) + "/health"
	if resp, err := http.Get(health); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("centrifugo %s: %v", health, err)
	} else {
		resp.Body.Close()
	}

	// The config Centrifugo runs with lets the site's origin in.
	conf, err := os.ReadFile(filepath.Join(dir, "state", centrifugoConfigFile))
	if err != nil || !strings.Contains(string(conf), `"`+base+`"`) {
		t.Errorf("centrifugo config does not allow %s: %v", base, err)
	}
	if info, err := os.Stat(filepath.Join(dir, "state", secretsFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secrets file: %v", err)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
	if !strings.Contains(stdout.String(), "stopped.") {
		t.Errorf("no stop message:\n%s", stdout.String())
	}
	if _, err := http.Get(health); err == nil {
		t.Error("centrifugo still answers after the demo stopped")
	}
	if _, err := http.Get(base + "/login"); err == nil {
		t.Error("the site still answers after the demo stopped")
	}
}

func TestBannerNamesTakenPorts(t *testing.T) {
	var out bytes.Buffer
	printBanner(&out, banner{URL: "http://127.0.0.1:1234", Notes: []string{"port 8080 was taken, so the site uses 1234"}, Accounts: demoAccounts()})
	for _, want := range []string{"http://127.0.0.1:1234/", "note        port 8080 was taken", "admin-demo", "Ctrl-C"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
}
