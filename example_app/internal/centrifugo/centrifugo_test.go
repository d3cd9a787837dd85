package centrifugo

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

func TestFindReportsWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "centrifugo")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable() // a Go binary, but not Centrifugo
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ path, want string }{
		"missing":        {filepath.Join(dir, "nope"), "no centrifugo binary at"},
		"directory":      {dir, "not an executable file"},
		"not executable": {notExec, "not an executable file"},
		"another binary": {self, "not Centrifugo v6"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Find(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line holding %q", err, tc.want)
			}
		})
	}
}

func TestFindDefaultsToTheTestBinary(t *testing.T) {
	want := centrifugotest.Require(t)
	if Version != centrifugotest.Version || Module != centrifugotest.Module {
		t.Errorf("Version %s of %s, the tests run %s of %s", Version, Module, centrifugotest.Version, centrifugotest.Module)
	}
	if os.Getenv("CENTRIFUGO_BIN") == "" { // else the harness's may be elsewhere
		if got, err := Find(""); err != nil || got != want {
			t.Errorf("Find(\"\") = %q, %v; want %q", got, err, want)
		}
	}
	if got, err := Find(want); err != nil || got != want {
		t.Errorf("Find(%q) = %q, %v", want, got, err)
	}
}

// testServer writes the config of an app's Centrifugo into dir and
// returns the app, the config's path and the server's URL.
func testServer(t *testing.T, dir string) (*instant.Instant, string, string) {
	t.Helper()
	port, err := centrifugotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	inst, err := instant.New(instant.Config{
		APIURL:      url + "/api",
		APIKey:      "the-api-key-of-the-config-file",
		TokenSecret: "the-token-secret-of-the-config-file-0123456789",
		SiteOrigin:  "http://127.0.0.1:8080", // Check asks whether Centrifugo allows it
	})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := inst.CentrifugoConfig(instant.CentrifugoOptions{Port: port, LogLevel: "info", AllowedOrigins: []string{"http://127.0.0.1:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	return inst, path, url
}

func TestStartAndStop(t *testing.T) {
	bin := centrifugotest.Require(t)
	dir := t.TempDir()
	_, conf, url := testServer(t, dir)
	logFile := filepath.Join(dir, "centrifugo.log")
	s, err := Start(context.Background(), Options{Binary: bin, Config: conf, URL: url, LogFile: logFile})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	resp, err := http.Get(url + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %v", err)
	}
	resp.Body.Close()
	if s.Err() != nil {
		t.Errorf("Err while running: %v", s.Err())
	}

	start := time.Now()
	var wg sync.WaitGroup
	for range 3 { // Stop from several goroutines: each returns once it has exited
		wg.Go(func() {
			s.Stop()
			select {
			case <-s.Done():
			default:
				t.Error("Stop returned before the process exited")
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("stopping took %v: SIGTERM was not enough", d)
	}
	if _, err := http.Get(url + "/health"); err == nil {
		t.Error("centrifugo still answers after Stop")
	}
	s.Stop() // once more is harmless
	if info, err := os.Stat(logFile); err != nil || info.Size() == 0 || info.Mode().Perm() != 0o600 {
		t.Errorf("the log file: %v", err)
	}
}

// TestStartWithoutCentrifugoVariables: Centrifugo is started without the
// CENTRIFUGO_ variables of the site's environment, so it warns of none
// (CENTRIFUGO_BIN, say, which the harness reads) and none overrides the
// config file (a developer's CENTRIFUGO_HTTP_API_KEY, for their own app):
// the app whose config it is passes Check.
func TestStartWithoutCentrifugoVariables(t *testing.T) {
	bin := centrifugotest.Require(t)
	t.Setenv("CENTRIFUGO_BIN", bin)
	t.Setenv("CENTRIFUGO_HTTP_API_KEY", "another-api-key")
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "another-token-secret-0123456789abcdef")
	t.Setenv("CENTRIFUGO_NOT_A_SETTING", "x")
	dir := t.TempDir()
	inst, conf, url := testServer(t, dir)
	logFile := filepath.Join(dir, "centrifugo.log")
	s, err := Start(context.Background(), Options{Binary: bin, Config: conf, URL: url, LogFile: logFile})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := inst.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	s.Stop()
	log, _ := os.ReadFile(logFile)
	if strings.Contains(string(log), "unknown var") || !strings.Contains(string(log), "starting Centrifugo") {
		t.Errorf("centrifugo's log:\n%s", log)
	}
}

func TestEnviron(t *testing.T) {
	env := []string{"PATH=/bin", "CENTRIFUGO_BIN=/x", "HOME=/h", "CENTRIFUGO_HTTP_API_KEY=k", "INSTANT_API_URL=u", "XCENTRIFUGO_A=1"}
	if got := Environ(env); !slices.Equal(got, []string{"PATH=/bin", "HOME=/h", "INSTANT_API_URL=u", "XCENTRIFUGO_A=1"}) {
		t.Errorf("Environ = %q", got)
	}
}

func TestStartWithABadConfigFailsClearly(t *testing.T) {
	bin := centrifugotest.Require(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(conf, []byte(`{"http_server": {"port": "not a port"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	port, _ := centrifugotest.FreePort()
	_, err := Start(context.Background(), Options{Binary: bin, Config: conf, URL: "http://127.0.0.1:" + strconv.Itoa(port),
		LogFile: filepath.Join(dir, "centrifugo.log"), StartLimit: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "centrifugo exited before it was ready") || !strings.Contains(err.Error(), "it said:") {
		t.Errorf("err = %v", err)
	}
}

func TestStartEndsWithTheContext(t *testing.T) {
	bin := centrifugotest.Require(t)
	dir := t.TempDir()
	_, conf, _ := testServer(t, dir)
	port, _ := centrifugotest.FreePort() // not where it listens: never healthy
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Start(ctx, Options{Binary: bin, Config: conf, URL: "http://127.0.0.1:" + strconv.Itoa(port)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Start took %v after its context ended", d)
	}
	if _, err := Start(ctx, Options{Binary: bin}); err == nil {
		t.Error("Start without Config and URL")
	}
}
