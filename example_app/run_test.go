package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
	"golang.org/x/crypto/bcrypt"
)

// TestRunServesAndStops runs the whole demo, as `go run .` does, on free
// ports, on each server, then stops it as Ctrl-C would. It prints what
// instant.Check says of its server: it fits. On the embedded server (the
// default) the site serves the websocket itself, at the path the channels
// route names. On Centrifugo, the CENTRIFUGO_ variables of the demo's
// environment reach Centrifugo no more: it warns of none (CENTRIFUGO_BIN),
// and none overrides its config (a token secret another app of the
// developer's uses, which Check would find).
func TestRunServesAndStops(t *testing.T) {
	t.Setenv("CENTRIFUGO_BIN", centrifugotest.Require(t))
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "the-secret-of-another-app-0123456789abcdef")
	defer func(cost int) { defaultBcryptCost = cost }(defaultBcryptCost)
	defaultBcryptCost = bcrypt.MinCost
	for _, server := range []string{serverEmbedded, serverCentrifugo} {
		t.Run(server, func(t *testing.T) { runServesAndStops(t, server) })
	}
}

func runServesAndStops(t *testing.T, server string) {
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
		done <- run(ctx, []string{"-server", server, "-port", "0", "-centrifugo-port", "0", "-dir", filepath.Join(dir, "state"), "-centrifuge-js", js}, &stdout, &stderr)
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
	if !strings.Contains(stdout.String(), "\n  check       ok: the realtime server fits the site (instant.Check)\n") {
		t.Errorf("the banner does not say that Check passed:\n%s", stdout.String())
	}
	for _, a := range demoAccounts() {
		if !strings.Contains(stdout.String(), a.User.Username) || !strings.Contains(stdout.String(), a.Password) {
			t.Errorf("the banner does not show the account %s with its password", a.User.Username)
		}
	}

	get := func(path string) (int, string) {
		resp, err := centrifugotest.HTTP.Get(base + path)
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

	health := ""
	if server == serverEmbedded {
		if !strings.Contains(stdout.String(), "served by the site's own process") || strings.Contains(stdout.String(), "centrifugo  ") {
			t.Errorf("the banner does not say the site serves realtime itself:\n%s", stdout.String())
		}
		if channels.WebsocketURL != "/instant/connection/websocket" {
			t.Errorf("websocket_url %q, want the site's own /instant/connection/websocket", channels.WebsocketURL)
		}
		if status := websocketHandshake(t, base+channels.WebsocketURL, base); status != http.StatusSwitchingProtocols {
			t.Errorf("a websocket handshake from the site's pages: %d, want 101", status)
		}
		if _, err := os.Stat(filepath.Join(dir, "state", centrifugoConfigFile)); err == nil {
			t.Error("a Centrifugo config was written for the embedded server")
		}
	} else {
		health = strings.Replace(strings.TrimSuffix(channels.WebsocketURL, "/connection/websocket"), "ws://", "http://", 1) + "/health"
		if resp, err := centrifugotest.HTTP.Get(health); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("centrifugo %s: %v", health, err)
		} else {
			resp.Body.Close()
		}
		// The config Centrifugo runs with lets the site's origin in.
		conf, err := os.ReadFile(filepath.Join(dir, "state", centrifugoConfigFile))
		if err != nil || !strings.Contains(string(conf), `"`+base+`"`) {
			t.Errorf("centrifugo config does not allow %s: %v", base, err)
		}
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
	if health != "" {
		if _, err := centrifugotest.HTTP.Get(health); err == nil {
			t.Error("centrifugo still answers after the demo stopped")
		}
		if log, err := os.ReadFile(filepath.Join(dir, "state", centrifugoLogFile)); err != nil || strings.Contains(string(log), "unknown var") {
			t.Errorf("centrifugo's log (%v):\n%s", err, log)
		}
	}
	if _, err := centrifugotest.HTTP.Get(base + "/login"); err == nil {
		t.Error("the site still answers after the demo stopped")
	}
}

// websocketHandshake sends a websocket handshake to url with the Origin
// header origin, and returns the HTTP status of the answer.
func websocketHandshake(t *testing.T, url, origin string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Origin", origin)
	resp, err := centrifugotest.HTTP.Do(req)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestListenLoopbackFallsBackOnlyWhenAllowed(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port

	ln, err := listenLoopback(port, true)
	if err != nil {
		t.Fatalf("with fallback: %v", err)
	}
	if got := ln.Addr().(*net.TCPAddr); got.Port == port || !got.IP.IsLoopback() {
		t.Errorf("fell back to %v", got)
	}
	ln.Close()

	if _, err := listenLoopback(port, false); err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(port)+" on 127.0.0.1 is taken") {
		t.Errorf("without fallback: %v", err)
	}
	if p, err := pickPort(0, false); err != nil || p == 0 {
		t.Errorf("pickPort(0) = %d, %v", p, err)
	}
}

// TestBannerSaysWhatCheckFound: the banner prints every problem
// instant.Check finds, each with its fix, here against a Centrifugo that
// holds another token secret and does not allow the site's origin.
func TestBannerSaysWhatCheckFound(t *testing.T) {
	other := testSecrets
	other.TokenSecret = strings.Repeat("o", 64)
	cent := centrifugotest.Start(t, func(port int) ([]byte, error) {
		inst, err := instant.New(instant.Config{APIURL: "http://127.0.0.1:" + strconv.Itoa(port) + "/api", APIKey: other.APIKey, TokenSecret: other.TokenSecret})
		if err != nil {
			return nil, err
		}
		return inst.CentrifugoConfig(instant.CentrifugoOptions{Port: port})
	})
	st := newTestSite(t, cent.APIURL, 8080)
	var out bytes.Buffer
	printBanner(&out, banner{URL: "http://127.0.0.1:8080", Check: st.inst.Check(context.Background()), Accounts: demoAccounts()})
	for _, want := range []string{
		"  check       instant.Check found 2 problems, each with its fix:\n",
		"\n              " + instant.ErrTokenSecret.Error() + ": ", "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY",
		"\n              " + instant.ErrStaleConfig.Error() + ": ", "http://127.0.0.1:8080",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	printCheck(&out, nil)
	if out.String() != "  check       ok: the realtime server fits the site (instant.Check)\n" {
		t.Errorf("a passing check: %q", out.String())
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

// TestServerCutsSlowAndIdleClients serves the site with short timeouts:
// a client that sends its body too slowly, and a kept-alive connection
// left idle, are closed within the timeouts rather than held.
func TestServerCutsSlowAndIdleClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	st := newTestSite(t, noCentrifugo, port)
	short := timeouts{ReadHeader: 300 * time.Millisecond, Read: 500 * time.Millisecond, Write: 2 * time.Second, Idle: 500 * time.Millisecond}
	srv := newServer(st.Handler(), slog.New(slog.NewTextHandler(io.Discard, nil)), short)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	host := "127.0.0.1:" + strconv.Itoa(port)

	// closedWithin reads conn until the server closes it, and fails when
	// that takes longer than limit.
	closedWithin := func(name string, conn net.Conn, limit time.Duration) {
		t.Helper()
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(limit))
		_, err := io.Copy(io.Discard, conn)
		if took := time.Since(start); err != nil || took >= limit {
			t.Errorf("%s: the connection is still open after %v (%v)", name, took.Round(time.Millisecond), err)
		}
	}
	dial := func() net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	// A body announced as 1,000 bytes that never comes.
	slow := dial()
	fmt.Fprintf(slow, "POST /login HTTP/1.1\r\nHost: %s\r\nSec-Fetch-Site: same-origin\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nusername=adm", host)
	closedWithin("slow body", slow, short.Read+3*time.Second)

	// A request answered, then nothing.
	idle := dial()
	fmt.Fprintf(idle, "GET /login HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /login: %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	start := time.Now()
	_ = idle.SetReadDeadline(start.Add(short.Idle + 3*time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v after %v, want EOF", err, time.Since(start).Round(time.Millisecond))
	} else if took := time.Since(start); took < short.Idle/2 {
		t.Errorf("idle connection closed after %v, before IdleTimeout %v", took, short.Idle)
	}
}

// TestSiteTimeoutsAreSet: the demo's server bounds reading, writing and
// idling, and lets a broadcast (PublishTimeout, 5 s) finish.
func TestSiteTimeoutsAreSet(t *testing.T) {
	srv := newServer(http.NotFoundHandler(), slog.Default(), siteTimeouts())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout < srv.ReadHeaderTimeout || srv.IdleTimeout <= 0 || srv.IdleTimeout > 30*time.Second {
		t.Errorf("read header %v, read %v, idle %v: want all set, idle under 30 s", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout)
	}
	if srv.WriteTimeout < 2*(5*time.Second) {
		t.Errorf("write timeout %v would cut a broadcast short (PublishTimeout %v)", srv.WriteTimeout, 5*time.Second)
	}
}
