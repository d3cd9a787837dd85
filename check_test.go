package instant_test

// Check against real Centrifugo servers, each started from a config that
// CentrifugoConfig wrote, then changed as a test needs; and against a
// stand-in that speaks the websocket protocol badly.

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// checkConfig is testConfig with the SiteOrigin Check sends (without one,
// Check says it cannot tell whether pages may connect).
func checkConfig() instant.Config {
	cfg := testConfig()
	cfg.SiteOrigin = siteOrigin
	return cfg
}

// problems splits Check's joined error into its lines.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestCheckPassesAgainstTheGeneratedConfig(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]instant.CentrifugoOptions{
		"plain":            {},
		"presence+history": {Presence: true, HistorySize: 10, HistoryTTL: time.Minute},
		"proxies":          {ProxyURL: "http://127.0.0.1:1/instant"}, // no app there: Check needs none
	} {
		t.Run(name, func(t *testing.T) {
			cs := startCheck(t, opts, nil)
			if err := cs.app(t, nil).Check(context.Background()); err != nil {
				t.Errorf("Check against the config the app wrote:\n%v\n--- centrifugo ---\n%s", err, cs.srv.Output())
			}
		})
	}
}

// TestCheckOfManyNamespaces: more namespaces than Centrifugo lets one
// connection subscribe to channels (128), and than one of its messages
// holds subscribe commands of.
func TestCheckOfManyNamespaces(t *testing.T) {
	t.Parallel()
	cs := &checkSetup{}
	var inst *instant.Instant
	cs.srv, inst, cs.cfg = startCentrifugo(t, func(c *instant.Config) {
		*c = checkConfig()
		c.PublishTimeout = 30 * time.Second // what it finds, not how soon: a loaded machine took over 5 s
	}, func(inst *instant.Instant) error {
		for k := range 300 {
			if err := inst.Authorize(fmt.Sprintf("$ns%03d:{id}", k), allowAll); err != nil {
				return err
			}
		}
		return nil
	}, instant.CentrifugoOptions{Presence: true, AllowedOrigins: []string{siteOrigin}})
	if err := inst.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := inst.Authorize("$late:{id}", allowAll); err != nil {
		t.Fatal(err)
	}
	if err := inst.Check(context.Background()); !errors.Is(err, instant.ErrStaleConfig) || len(problems(err)) != 1 || !strings.Contains(err.Error(), `"late"`) {
		t.Errorf("Check after one more rule: %v", err)
	}
}

func TestCheckFindsAnotherTokenSecret(t *testing.T) {
	t.Parallel()
	cs := sharedCheck(t)
	err := cs.app(t, func(c *instant.Config) { c.TokenSecret = strings.Repeat("z", 40) }).Check(context.Background())
	if !errors.Is(err, instant.ErrTokenSecret) || len(problems(err)) != 1 {
		t.Fatalf("Check with another token secret: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY") || strings.Contains(msg, "zzzz") || strings.Contains(msg, testSecret) {
		t.Errorf("the message names no fix, or holds a secret: %v", err)
	}
}

func TestCheckFindsAnotherAPIKey(t *testing.T) {
	t.Parallel()
	cs := sharedCheck(t)
	err := cs.app(t, func(c *instant.Config) { c.APIKey = "another-key" }).Check(context.Background())
	if !errors.Is(err, instant.ErrAPIKey) || errors.Is(err, instant.ErrTokenSecret) || len(problems(err)) != 1 {
		t.Fatalf("Check with another API key: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "CENTRIFUGO_HTTP_API_KEY") || strings.Contains(msg, "another-key") {
		t.Errorf("the message names no fix, or holds the key: %v", err)
	}
}

// TestCheckFindsANamespaceNewerThanTheConfig: a rule added after the
// config was written has a namespace the running Centrifugo lacks, seen
// both through the API and through the websocket, and reported once.
func TestCheckFindsANamespaceNewerThanTheConfig(t *testing.T) {
	t.Parallel()
	cs := sharedCheck(t)
	inst := cs.app(t, nil)
	if err := inst.Check(context.Background()); err != nil {
		t.Fatalf("before the new rule: %v", err)
	}
	if err := inst.Authorize("$newns:{id}", allowAll); err != nil {
		t.Fatal(err)
	}
	err := inst.Check(context.Background())
	if !errors.Is(err, instant.ErrStaleConfig) || len(problems(err)) != 1 {
		t.Fatalf("Check after Authorize($newns:{id}): %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`"newns"`, "CentrifugoConfig", cs.srv.APIURL, cs.srv.WebsocketURL} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message lacks %q: %s", want, msg)
		}
	}
}

// TestCheckFindsANamespaceWithOtherOptions: a hand-edited config whose
// namespace has presence (with joins and leaves, as every config
// CentrifugoConfig wrote has it: Check tells presence by the joins) and
// history the others lack.
func TestCheckFindsANamespaceWithOtherOptions(t *testing.T) {
	t.Parallel()
	cs := startCheck(t, instant.CentrifugoOptions{HistorySize: -1, HistoryTTL: -1}, func(m map[string]any) {
		for _, ns := range m["channel"].(map[string]any)["namespaces"].([]any) {
			if ns := ns.(map[string]any); ns["name"] == "orders" {
				ns["presence"], ns["join_leave"], ns["allow_presence_for_subscriber"] = true, true, true
				ns["history_size"], ns["history_ttl"], ns["force_recovery"] = 10, "60s", true
			}
		}
	})
	err := cs.app(t, nil).Check(context.Background())
	if !errors.Is(err, instant.ErrStaleConfig) || len(problems(err)) != 1 {
		t.Fatalf("Check: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`"orders"`, "presence open", "recovery on"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message lacks %q: %s", want, msg)
		}
	}
}

func TestCheckFindsAnOriginNotAllowed(t *testing.T) {
	t.Parallel()
	cs := sharedCheck(t)
	const other = "https://shop.example.com"
	err := cs.app(t, func(c *instant.Config) { c.TrustedOrigins = []string{other} }).Check(context.Background())
	if !errors.Is(err, instant.ErrStaleConfig) || len(problems(err)) != 1 || !strings.Contains(err.Error(), other) {
		t.Fatalf("Check with a trusted origin Centrifugo refuses: %v", err)
	}
	// SiteOrigin refused too: the token is still checked, without an Origin.
	err = cs.app(t, func(c *instant.Config) {
		c.SiteOrigin, c.TokenSecret = "http://localhost:3000", strings.Repeat("z", 40)
	}).Check(context.Background())
	if !errors.Is(err, instant.ErrStaleConfig) || !errors.Is(err, instant.ErrTokenSecret) || !strings.Contains(err.Error(), "http://localhost:3000") {
		t.Errorf("Check with a site origin Centrifugo refuses and another secret: %v", err)
	}
	if err := cs.app(t, func(c *instant.Config) { c.SiteOrigin = "localhost:3000/x" }).Check(context.Background()); !errors.Is(err, instant.ErrConfig) {
		t.Errorf("Check with a SiteOrigin that is no origin: %v", err)
	}
}

// TestCheckFindsNothingListening: both the API and the websocket URL are
// named, at once rather than after PublishTimeout.
func TestCheckFindsNothingListening(t *testing.T) {
	port, err := centrifugotest.FreePort() // closed again: nothing listens
	if err != nil {
		t.Fatal(err)
	}
	cfg := checkConfig()
	cfg.APIURL = fmt.Sprintf("http://127.0.0.1:%d/api", port)
	cfg.PublishTimeout = 10 * time.Second
	inst := newInstant(t, cfg)
	start := time.Now()
	err = inst.Check(context.Background())
	took := time.Since(start)
	if !errors.Is(err, instant.ErrUnreachable) || len(problems(err)) != 2 ||
		!strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d/api", port)) || !strings.Contains(err.Error(), inst.WebsocketURL()) {
		t.Fatalf("Check with nothing listening: %v", err)
	}
	if took > cfg.PublishTimeout/4 {
		t.Errorf("Check took %v with nothing listening, PublishTimeout %v", took, cfg.PublishTimeout)
	}
}

// TestCheckOfEveryNode: a node of APIURLs that nothing answers at is
// named, the others not.
func TestCheckOfEveryNode(t *testing.T) {
	t.Parallel()
	cs := sharedCheck(t)
	port, err := centrifugotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	down := fmt.Sprintf("http://127.0.0.1:%d/api", port)
	err = cs.app(t, func(c *instant.Config) { c.APIURLs = []string{down} }).Check(context.Background())
	if !errors.Is(err, instant.ErrUnreachable) || len(problems(err)) != 1 || !strings.Contains(err.Error(), down) {
		t.Errorf("Check with a second node down: %v", err)
	}
}

// testCheckWithinPublishTimeout: an API that takes the request and never
// answers, and a websocket that upgrades and never speaks, are given up
// at PublishTimeout.
func testCheckWithinPublishTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/connection/websocket" {
			conn := upgrade(t, w, r)
			defer conn.Close()
		}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	cfg := checkConfig()
	cfg.APIURL = srv.URL + "/api"
	cfg.PublishTimeout = 300 * time.Millisecond
	start := time.Now()
	err := newInstant(t, cfg).Check(context.Background())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Check took %v, PublishTimeout 300ms", took)
	}
	if !errors.Is(err, instant.ErrUnreachable) || len(problems(err)) != 2 {
		t.Errorf("Check of a hung server: %v", err)
	}
}

// TestCheckOfAWssURL: a wss WebsocketURL is reached over TLS, verified as
// a browser would, with the system's roots.
func TestCheckOfAWssURL(t *testing.T) {
	t.Parallel()
	api := badWebsocket(t, nil)
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS() // a certificate no root signed
	defer tlsSrv.Close()
	cfg := checkConfig()
	cfg.APIURL = api.URL + "/api"
	cfg.WebsocketURL = "wss://" + tlsSrv.Listener.Addr().String() + "/connection/websocket"
	cfg.PublishTimeout = 30 * time.Second // a TLS handshake under -race on a loaded machine took over 5 s
	err := newInstant(t, cfg).Check(context.Background())
	if !errors.Is(err, instant.ErrUnreachable) || len(problems(err)) != 1 || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Check: %v", err)
	}
}

// upgrade answers a websocket handshake and hands over the connection.
func upgrade(t testing.TB, w http.ResponseWriter, r *http.Request) io.ReadWriteCloser {
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return nil
	}
	fmt.Fprintf(buf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	buf.Flush()
	return conn
}

// badWebsocket is a stand-in for Centrifugo: its API answers every
// command with an empty result, and its websocket answers the first
// frame it reads with script, then closes.
func badWebsocket(t testing.TB, script []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/connection/websocket" {
			sc := bufio.NewScanner(r.Body)
			for sc.Scan() {
				fmt.Fprintln(w, `{"result":{}}`)
			}
			return
		}
		conn := upgrade(t, w, r)
		if conn == nil {
			return
		}
		defer conn.Close()
		var head [2]byte
		if _, err := io.ReadFull(conn, head[:]); err != nil {
			return
		}
		conn.Write(script)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// frame is one server frame: fin, opcode, a length as sent (extended per
// its size) and the payload.
func frame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126, byte(n>>8), byte(n))
	default:
		out = append(out, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, payload...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// hostileFrames are answers to the connect command, each broken in its
// own way (and two that are not broken).
var hostileFrames = map[string][]byte{
	"connect reply":      frame(true, 1, []byte(`{"id":1,"connect":{"client":"x"}}`)),
	"fragmented reply":   cat(frame(false, 1, []byte(`{"id":1,`)), frame(true, 9, []byte("p")), frame(true, 0, []byte(`"error":{"code":109}}`))),
	"close 3500":         frame(true, 8, []byte("\x0d\xacinvalid token")),
	"length 2^63-1":      {0x81, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	"length 2^64-1":      {0x81, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	"length 1 MiB + 1":   {0x81, 127, 0, 0, 0, 0, 0, 0x10, 0, 1},
	"truncated":          {0x81, 126, 0x10},
	"masked":             {0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'},
	"reserved bits":      {0xf1, 0},
	"long ping":          frame(true, 9, make([]byte, 200)),
	"fragmented close":   frame(false, 8, nil),
	"continuation first": frame(true, 0, []byte("{}")),
	"two starts":         cat(frame(false, 1, []byte("{")), frame(true, 1, []byte("}"))),
	"unknown opcode":     frame(true, 3, nil),
	"not json":           frame(true, 1, []byte("<html>")),
	"empty close":        frame(true, 8, nil),
	"close, bad utf-8":   frame(true, 8, []byte{0x0f, 0xa0, 0xff, 0xfe}),
}

// TestCheckAgainstHostileFrames: every broken answer is an error, none a
// panic, each given up within its bounds.
func TestCheckAgainstHostileFrames(t *testing.T) {
	for name, script := range hostileFrames {
		t.Run(name, func(t *testing.T) {
			srv := badWebsocket(t, script)
			cfg := checkConfig()
			cfg.APIURL = srv.URL + "/api"
			cfg.PublishTimeout = 2 * time.Second
			err := newInstant(t, cfg).Check(context.Background())
			if name == "connect reply" {
				// Connected; then the server is gone before the subscriptions.
				if err == nil || errors.Is(err, instant.ErrTokenSecret) {
					t.Errorf("Check: %v", err)
				}
				return
			}
			if err == nil || len(problems(err)) != 1 {
				t.Errorf("Check: %v", err)
			}
			if (name == "close 3500" || name == "fragmented reply") != errors.Is(err, instant.ErrTokenSecret) {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

// TestCheckReadsBoundedFromAHostileWebsocket: a websocket that sends
// without end (pings and fragments of a message that never ends) is read
// up to a few MiB.
func TestCheckReadsBoundedFromAHostileWebsocket(t *testing.T) {
	for name, unit := range map[string][]byte{
		"pings":     frame(true, 9, make([]byte, 125)),
		"fragments": frame(false, 0, make([]byte, 60<<10)),
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/connection/websocket" {
					fmt.Fprintln(w, `{"result":{}}`)
					return
				}
				conn := upgrade(t, w, r)
				if conn == nil {
					return
				}
				defer conn.Close()
				go io.Copy(io.Discard, conn) // pongs
				if _, err := conn.Write(frame(false, 1, []byte("{"))); err != nil {
					return
				}
				for sent := 0; sent < 256<<20; sent += len(unit) {
					if _, err := conn.Write(unit); err != nil {
						return
					}
				}
			}))
			defer srv.Close()
			cfg := checkConfig()
			cfg.APIURL = srv.URL + "/api"
			// Time enough to read the budget on a busy machine (half a
			// second alone, over five while make test runs the three
			// modules' suites at once): what ends Check must be the budget.
			cfg.PublishTimeout = 60 * time.Second
			inst := newInstant(t, cfg)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := inst.Check(context.Background())
			runtime.ReadMemStats(&after)
			if err == nil || errors.Is(err, instant.ErrUnreachable) {
				t.Errorf("Check: %v", err)
			}
			// The whole process's allocations, the server's writes included.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("Check allocated %d MiB against an endless websocket", alloc>>20)
			}
		})
	}
}

func FuzzCheckWebsocket(f *testing.F) {
	for _, script := range hostileFrames {
		f.Add(script)
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		srv := badWebsocket(t, script)
		cfg := checkConfig()
		cfg.APIURL = srv.URL + "/api"
		cfg.PublishTimeout = time.Second
		start := time.Now()
		_ = newInstant(t, cfg).Check(context.Background())
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Check took %v", took)
		}
	})
}

// ==== The missteps of a newcomer, named (issue 20).

// TestCentrifugoConfigRefusesOriginsNoBrowserSends: an allowed origin that
// no browser sends (an unset SiteOrigin written as "", a trailing slash, a
// path, upper case, which Centrifugo compares with the lower-cased Origin)
// is refused with ErrConfig naming it; "*" (any origin, Centrifugo's own
// meaning) and a leading "*." of the host are taken, and the Centrifugo
// that runs them lets the pages they name connect.
func TestCentrifugoConfigRefusesOriginsNoBrowserSends(t *testing.T) {
	t.Parallel()
	inst := newInstant(t, checkConfig())
	for _, bad := range []string{"", " ", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/app", "127.0.0.1:8080",
		"https://App.example.com", "ftp://example.com", "https://a.*.example.com", "https://*example.com", "**", "http://u:p@example.com"} {
		_, err := inst.CentrifugoConfig(instant.CentrifugoOptions{AllowedOrigins: []string{"https://ok.example.com", bad}})
		if !errors.Is(err, instant.ErrConfig) || !strings.Contains(err.Error(), fmt.Sprintf("AllowedOrigins[1] is %q", bad)) {
			t.Errorf("AllowedOrigins %q: %v", bad, err)
		}
	}
	for _, tc := range []struct{ allowed, page string }{
		{"*", "https://anywhere.example.org"},
		{"https://*.example.com", "https://shop.example.com"},
		{"http://[::1]:3000", "http://[::1]:3000"},
	} {
		srv, _, _ := startCentrifugo(t, func(c *instant.Config) { *c = checkConfig() }, nil, instant.CentrifugoOptions{AllowedOrigins: []string{tc.allowed}})
		cfg := checkConfig()
		cfg.APIURL, cfg.SiteOrigin = srv.APIURL, tc.page
		if err := newInstant(t, cfg).Check(context.Background()); err != nil {
			t.Errorf("AllowedOrigins %q, a page from %s: %v", tc.allowed, tc.page, err)
		}
	}
}

// TestCheckSaysNoBrowserOriginAllowed: a Centrifugo that allows none of
// the app's origins (the config of an unset SiteOrigin: [""]) is one
// problem that says so and names them; an app that names no origin is
// told Check cannot tell, rather than that Centrifugo fits.
func TestCheckSaysNoBrowserOriginAllowed(t *testing.T) {
	t.Parallel()
	cs := startCheck(t, instant.CentrifugoOptions{}, func(m map[string]any) {
		m["client"].(map[string]any)["allowed_origins"] = []string{""}
	})
	const other = "https://shop.example.com"
	err := cs.app(t, func(c *instant.Config) { c.TrustedOrigins = []string{other} }).Check(context.Background())
	if !errors.Is(err, instant.ErrStaleConfig) || len(problems(err)) != 1 {
		t.Fatalf("Check against allowed_origins [\"\"]: %v", err)
	}
	for _, want := range []string{"no browser origin allowed", siteOrigin, other, "AllowedOrigins"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message lacks %q: %v", want, err)
		}
	}
	fits := sharedCheck(t)
	err = fits.app(t, func(c *instant.Config) { c.SiteOrigin = "" }).Check(context.Background())
	if !errors.Is(err, instant.ErrConfig) || len(problems(err)) != 1 || !strings.Contains(err.Error(), "no browser origin checked") ||
		!strings.Contains(err.Error(), "INSTANT_SITE_ORIGIN") {
		t.Errorf("Check with neither SiteOrigin nor TrustedOrigins: %v", err)
	}
}

// TestCheckNamesAWrongConfigFile: Centrifugo started with a -c path that
// names no file goes on with its defaults; Check says it runs another
// config than the app's ("wrong -c?") first, both when its environment
// holds other secrets (or none) and when it holds the app's own (one
// environment for both: then the namespaces and the origins tell). One
// setting apart is not called a wrong file.
func TestCheckNamesAWrongConfigFile(t *testing.T) {
	t.Parallel()
	centrifugotest.Require(t)
	for _, tc := range []struct {
		name  string
		env   map[string]string
		signs []string
		is    []error
	}{
		{"defaults", nil, []string{"refuses the app's API key", "refuses the tokens the app signs"},
			[]error{instant.ErrAPIKey, instant.ErrTokenSecret}},
		{"the app's environment", map[string]string{"CENTRIFUGO_HTTP_API_KEY": testAPIKey, "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": testSecret},
			[]string{"declares none of the app's namespaces", "allows none of the app's origins"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, err := centrifugotest.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"CENTRIFUGO_HTTP_SERVER_PORT": fmt.Sprint(port), "CENTRIFUGO_HEALTH_ENABLED": "true"}
			maps.Copy(env, tc.env)
			out := centrifugotest.Run(t, port, filepath.Join(t.TempDir(), "centrifugo.json"), env).Output
			if !strings.Contains(out(), "config file not found") {
				t.Fatalf("centrifugo found a config:\n%s", out())
			}
			cfg := checkConfig()
			cfg.APIURL = fmt.Sprintf("http://127.0.0.1:%d/api", port)
			inst := newInstant(t, cfg)
			if err := inst.Authorize("$orders:{id}", allowAll); err != nil {
				t.Fatal(err)
			}
			err = inst.Check(context.Background())
			first := problems(err)[0]
			if !errors.Is(err, instant.ErrStaleConfig) || !strings.Contains(first, "does not run the config CentrifugoConfig generates (wrong -c?)") {
				t.Fatalf("Check against centrifugo on its defaults:\n%v", err)
			}
			for _, want := range tc.signs {
				if !strings.Contains(first, want) {
					t.Errorf("the first problem lacks %q: %s", want, first)
				}
			}
			for _, is := range tc.is {
				if !errors.Is(err, is) {
					t.Errorf("Check: not %v: %v", is, err)
				}
			}
		})
	}
	// One setting apart: the problem, not a wrong file.
	cs := sharedCheck(t)
	for name, change := range map[string]func(*instant.Config){
		"another token secret": func(c *instant.Config) { c.TokenSecret = strings.Repeat("z", 40) },
		"another API key":      func(c *instant.Config) { c.APIKey = "another-key" },
		"another origin":       func(c *instant.Config) { c.SiteOrigin = "https://elsewhere.example.com" },
		"a secret and the origin": func(c *instant.Config) {
			c.TokenSecret, c.SiteOrigin = strings.Repeat("z", 40), "https://elsewhere.example.com"
		},
	} {
		if err := cs.app(t, change).Check(context.Background()); err == nil || strings.Contains(err.Error(), "wrong -c") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCheckLeavesNoFaultInCentrifugoLog: against the config the app
// wrote, with presence on or off, Check's probe leaves nothing in
// Centrifugo's log (at info level) that reads as a fault: no refused
// command, no warning.
func TestCheckLeavesNoFaultInCentrifugoLog(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]instant.CentrifugoOptions{
		"plain":            {},
		"presence+history": {Presence: true, HistorySize: 10, HistoryTTL: time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			cs := startCheck(t, opts, nil) // log level info
			inst := cs.app(t, nil)
			before := len(cs.srv.Output())
			if err := inst.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			// What Centrifugo logs of the connection's end comes after it.
			deadline := time.Now().Add(500 * time.Millisecond)
			for time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			for _, line := range strings.Split(cs.srv.Output()[before:], "\n") {
				for _, fault := range []string{`"level":"warn"`, `"level":"error"`, "error", "denied", "not available", "invalid", "bad request", "unknown", "permission"} {
					if strings.Contains(line, fault) {
						t.Errorf("Check left a line with %q in centrifugo's log: %s", fault, line)
						break
					}
				}
			}
		})
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
	centrifugotest.Require(t)
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
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out := centrifugotest.Run(t, port, path, env).Output
	if err := inst.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	if strings.Contains(out(), "unknown var") || !strings.Contains(out(), "starting Centrifugo") {
		t.Errorf("centrifugo's log:\n%s", out())
	}

}

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
