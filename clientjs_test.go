package instant_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// TestClientJSLogic runs client.js's unit tests, testdata/clientjs_unit.mjs,
// under `node --test`: client.js's own logic against stand-ins for
// centrifuge-js (keeping tokens as centrifuge-js 5 does) and for the site,
// with pushes, replies and clocks moved by hand. Each failing case is
// reported by its name with node's diagnostics; every case of the file
// must have run and passed. Node comes with npm, which `make test` needs
// anyway.
func TestClientJSLogic(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		needTool(t, "node is not installed (it comes with npm; .ci/run installs it)")
	}
	const script = "testdata/clientjs_unit.mjs"
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	cases := len(regexp.MustCompile(`(?m)^test\(`).FindAll(src, -1))
	out, err := exec.Command(node, "--test", "--test-reporter=tap", script).CombinedOutput()
	// TAP: "ok N - name" or "not ok N - name" a case, at the left margin,
	// then its diagnostics, indented, up to "  ...".
	passed, failed := 0, 0
	lines := strings.Split(string(out), "\n")
	for k, line := range lines {
		name, bad := strings.CutPrefix(line, "not ok ")
		if !bad {
			if strings.HasPrefix(line, "ok ") {
				passed++
			}
			continue
		}
		failed++
		end := k + 1
		for end < len(lines) && lines[end] != "  ..." {
			end++
		}
		t.Errorf("client.js: %s\n%s", name, strings.Join(lines[k+1:min(end+1, len(lines))], "\n"))
	}
	if err != nil && failed == 0 || passed+failed != cases {
		t.Fatalf("node --test %s: %v; %d of the %d cases passed, %d failed:\n%s", script, err, passed, cases, failed, out)
	}
	t.Logf("node --test %s: %d cases passed", script, passed)
}

// TestClientJSLive runs testdata/clientjs_live.mjs: client.js with the
// real centrifuge-js (example_app's node_modules, which `make test`
// installs) under Node, against a real Centrifugo and the app's routes. A
// page holds five channels, four of them private: two listed, two rule
// channels it subscribed to itself; a third rule channel is refused. The
// test counts what the page asks the app for: when it starts, when
// Centrifugo restarts while the tokens are valid ("valid"), and after an
// outage longer than the tokens live ("expired"). The members of the four
// private channels come from the app (POST presence) each time they are
// subscribed anew, apart from the tokens.
func TestClientJSLive(t *testing.T) {
	t.Parallel()
	clientJSLive(t, "valid", 0)
}

// TestClientJSLiveExpired is TestClientJSLive's "expired" phase: its
// tokens live 5 s, Centrifugo stays down 6.5 s and the page then stays
// connected 8 s. The longest test of the package in real time, so a test
// of its own and not a subtest: those wait for a slot behind every other
// parallel test.
func TestClientJSLiveExpired(t *testing.T) {
	t.Parallel()
	clientJSLive(t, "expired", 5*time.Second)
}

// clientJSLive runs phase with tokens that live ttl (0: the defaults) and
// checks what the page asked for.
func clientJSLive(t *testing.T, phase string, ttl time.Duration) {
	node, flags, centrifugeJS := liveNode(t)
	got := runClientJSLive(t, node, flags, centrifugeJS, phase, ttl)
	// hits are the requests of got[k] for the list and the tokens;
	// presence, the presence requests among them.
	hits := func(k string) string {
		m, _ := got[k].(map[string]any)
		b, _ := json.Marshal(maps.Collect(func(yield func(string, any) bool) {
			for key, v := range m {
				if !strings.HasPrefix(key, "presence") && !yield(key, v) {
					return
				}
			}
		}))
		return string(b)
	}
	presence := func(k string, most float64) {
		t.Helper()
		m, _ := got[k].(map[string]any)
		var named []string
		for key := range m {
			if rest, ok := strings.CutPrefix(key, "presence "); ok {
				named = append(named, strings.Split(rest, "+")...)
			}
		}
		slices.Sort(named)
		named = slices.Compact(named)
		n, _ := m["presence"].(float64)
		if n < 1 || n > most || strings.Join(named, " ") != "$project-7 $project-8 $site_user:1 $site_users" {
			t.Errorf("%s: presence requests %v, want 1 to %v for the four private channels", k, m, most)
		}
		t.Logf("%s: %v presence requests", k, n)
	}
	if got["held"] != "site_public $site_users $site_user:1 $project-7 $project-8" || got["denied"] != "$project-9" {
		t.Errorf("held %v, denied %v", got["held"], got["denied"])
	}
	// One request for the list, ONE for the connection and the
	// four tokens
	// (the refused one in it too)
	if h := hits("start"); h != `{"auth":1,"auth connection+$project-7+$project-8+$project-9+$site_user:1+$site_users":1,"channels":1}` {
		t.Errorf("requests to start: %s, want one to channels and one to auth", h)
	}
	// The subscriptions are confirmed together: one request for
	// their members (two if the confirmations straddle the wait).
	presence("start", 2)
	t.Logf("%s: requests to start %s; on the restart %s, every channel back after %v ms", phase, hits("start"), hits("restart"), got["resubscribedMs"])
	switch phase {
	case "valid":
		if h := hits("restart"); h != `{}` {
			t.Errorf("requests on a restart with valid tokens: %s, want none", h)
		}
		presence("restart", 2)
		want := map[string]string{
			"members":    `1 {"name":"Ann"}, 2 {}`,
			"bobMembers": `1 {"name":"Ann"}, 2 {}`, // ann from the app's snapshot
			"events":     "$project-7 project news, $project-8 second project",
			"bobEvents":  "$project-7 project news, $project-7 caused by ann",
			"stopped":    "disconnected ",
			"restarted":  "site_public $site_users $site_user:1 $project-7 $project-8",
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %v, want %s", k, got[k], w)
			}
		}
		if people, _ := got["people"].(string); !strings.Contains(people, `joining 2 {}`) || !strings.Contains(people, "leaving 2") || !strings.HasSuffix(people, "here Ann") {
			t.Errorf("presence of $project-7 as ann saw it: %s", people)
		}
		// The tokens are valid: only the refused channel is asked
		// about again.
		if h := hits("startAgain"); h != `{"auth":1,"auth $project-9":1,"channels":1}` {
			t.Errorf("requests to start again: %s, want the list and the refused channel", h)
		}
		presence("startAgain", 2)
	case "expired":
		if h := hits("restart"); h != `{"auth":1,"auth connection+$project-7+$project-8+$site_user:1+$site_users":1}` {
			t.Errorf("requests on a restart after the tokens expired: %s, want one to auth", h)
		}
		// Each subscription comes back on its own backoff: up to a
		// request each for the members.
		presence("restart", 4)
		// The connection's and the four subscriptions' 5 s tokens,
		// renewed for 8 s: a request each time, not one a token.
		var renewals map[string]float64
		_ = json.Unmarshal([]byte(hits("renewals")), &renewals)
		if renewals["auth"] < 1 || renewals["auth"] > 3 || renewals["auth connection+$project-7+$project-8+$site_user:1+$site_users"] != renewals["auth"] || got["stillConnected"] != "connected" {
			t.Errorf("renewals in 8 s: %s (%v), want 1 to 3 requests to auth, each for every token", hits("renewals"), got["stillConnected"])
		}
		t.Logf("renewals of 5 s tokens in 8 s: %s", hits("renewals"))
	}
}

// runClientJSLive starts Centrifugo and the app, runs the script's phase
// and answers its requests, and returns its result.
func runClientJSLive(t *testing.T, node string, flags []string, centrifugeJS, phase string, ttl time.Duration) map[string]any {
	cent, inst, _ := startCentrifugo(t, func(c *instant.Config) {
		c.PublishTimeout = livePublishTimeout
		c.ConnectionTokenTTL, c.SubscriptionTokenTTL = ttl, ttl
	}, func(inst *instant.Instant) error {
		return inst.Authorize("$project-{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
			return u != nil && (p["id"] == "7" || p["id"] == "8"), nil
		})
	}, instant.CentrifugoOptions{Presence: true})
	app := newRouter(inst)
	ann := instant.User{ID: "1", Username: "ann", Info: map[string]any{"name": "Ann"}}
	bob := instant.User{ID: "2", Username: "bob"} // no Info
	cookies := map[string]string{
		"1": newBrowser(t, app).as(&ann).cookieHeader().Get("Cookie"),
		"2": newBrowser(t, app).as(&bob).cookieHeader().Get("Cookie"),
	}
	// /as/<id>/... is the app as user id sees it.
	var mu sync.Mutex
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/as/"); ok {
			id, path, _ := strings.Cut(rest, "/")
			r.URL.Path = "/" + path
			r.Header.Set("Cookie", cookies[id])
		}
		route := strings.TrimPrefix(r.URL.Path, "/instant/")
		var asked string // what an auth or presence request asks for
		if route == "auth" || route == "presence" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req struct {
				Channels   []string
				Connection bool
			}
			_ = json.Unmarshal(body, &req)
			slices.Sort(req.Channels)
			if req.Connection {
				req.Channels = append([]string{"connection"}, req.Channels...)
			}
			asked = route + " " + strings.Join(req.Channels, "+")
		}
		mu.Lock()
		hits[route]++
		if asked != "" {
			hits[asked]++
		}
		mu.Unlock()
		app.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	return runLiveScript(t, node, flags, centrifugeJS, srv.URL, phase, func(ctx context.Context, msg liveMsg, reply func(any)) {
		switch msg.Do {
		case "hits":
			mu.Lock()
			reply(map[string]any{"hits": maps.Clone(hits)})
			mu.Unlock()
		case "broadcast":
			err := broadcastLive(ctx, inst, instant.Event{ID: msg.ID, Channel: msg.Channel, Message: msg.Message, Origin: msg.Origin})
			if err != nil {
				t.Errorf("broadcast: %v", err)
			}
			reply(map[string]any{"ok": err == nil})
		case "restart", "start":
			cent.Restart(t)
			reply(map[string]any{"ok": true})
		case "stop":
			cent.Stop()
			reply(map[string]any{"ok": true})
		}
	})
}

// TestClientJSLiveRefusals runs testdata/clientjs_live.mjs's "refusals":
// client.js with the real centrifuge-js under Node against a real
// Centrifugo, which refuses (a) the connection of an app whose token
// secret is not its own, and (b) a channel of a namespace its config does
// not declare (a rule added after the config was written, "$ghost:1"):
// the page gets an 'error' event with Centrifugo's code and reason each
// time, and the channel moves to denied.
func TestClientJSLiveRefusals(t *testing.T) {
	t.Parallel()
	node, flags, centrifugeJS := liveNode(t)
	cent, inst, _ := startCentrifugo(t, nil, nil, instant.CentrifugoOptions{})
	// The config is written: this rule's namespace is not in it.
	if err := inst.Authorize("$ghost:{id}", allowAll); err != nil {
		t.Fatal(err)
	}
	wrongCfg := testConfig()
	wrongCfg.APIURL, wrongCfg.TokenSecret = cent.APIURL, strings.Repeat("w", 40)
	apps := map[string]http.Handler{"1": newRouter(inst), "wrong": newRouter(newInstant(t, wrongCfg))}
	ann := newBrowser(t, apps["1"]).as(&instant.User{ID: "1", Username: "ann"}).cookieHeader().Get("Cookie")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, path, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/as/"), "/")
		app, ok := apps[who]
		if !ok {
			http.NotFound(w, r)
			return
		}
		r.URL.Path = "/" + path
		if who == "1" {
			r.Header.Set("Cookie", ann)
		}
		app.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	got := runLiveScript(t, node, flags, centrifugeJS, srv.URL, "refusals", func(context.Context, liveMsg, func(any)) {})
	t.Logf("what the pages were told:\n%v\n%v", got["wrongSecretSays"], got["ghostSays"])
	checkAnswers(t, got, map[string]any{
		"wrongSecret":     "3500 invalid token",
		"wrongSecretSays": got["wrongSecretSays"],
		"wrongStates":     "connecting | disconnected (invalid token)",
		"ghost":           "102 unknown channel",
		"ghostSays":       got["ghostSays"],
		"ghostHeld":       "site_public $site_users $site_user:1",
		"ghostDenied":     "$ghost:1",
		"annTold":         float64(1),
	})
	for k, want := range map[string]string{"wrongSecretSays": "TokenSecret", "ghostSays": "centrifugo-config"} {
		if s, _ := got[k].(string); !strings.Contains(s, want) {
			t.Errorf("%s: %q, want the fix (%s)", k, s, want)
		}
	}
}
