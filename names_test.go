package instant_test

// Names and IDs that Centrifugo accepts: every channel name the plugin
// lets in (config, Authorize, routes, Broadcast) is one a Centrifugo v6.9.1
// client may subscribe to, every valid user ID has a personal channel that
// works end to end, and every config CentrifugoConfig writes starts.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// namesAnyUser is a rule granting every logged-in user.
func namesAnyUser(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
	return u != nil, nil
}

// namesStartLive starts Centrifugo with the config CentrifugoConfig writes
// for cfg, once setup (rules) has run on the Instant.
func namesStartLive(t *testing.T, cfg instant.Config, setup func(*instant.Instant) error) *liveSetup {
	t.Helper()
	ls := &liveSetup{}
	ls.srv, ls.inst, ls.cfg = startCentrifugo(t, func(c *instant.Config) {
		*c = cfg
		c.PublishTimeout = livePublishTimeout
	}, setup, instant.CentrifugoOptions{})
	ls.app = newRouter(ls.inst)
	return ls
}

// namesAwait waits until every channel in want received message.
func namesAwait(t *testing.T, lc *liveClient, message string, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := map[string]bool{}
		lc.mu.Lock()
		for _, p := range lc.got {
			if p["message"] == message {
				ch, _ := p["channel"].(string)
				seen[ch] = true
			}
		}
		lc.mu.Unlock()
		var missing []string
		for _, ch := range want {
			if !seen[ch] {
				missing = append(missing, ch)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never arrived on %q", message, missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkconfig runs the real server's strict config check on raw.
func checkconfig(t *testing.T, raw []byte) error {
	t.Helper()
	bin := centrifugotest.Require(t)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "checkconfig", "--strict", "-c", path).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestNonASCIIChannelsAreRefusedWhereTheyEnter: Centrifugo refuses
// "$café" to clients (107), so the plugin refuses it everywhere a name
// comes in, instead of publishing events nobody can receive.
func TestNonASCIIChannelsAreRefusedWhereTheyEnter(t *testing.T) {
	if err := channelNameError("$café"); !errors.Is(err, instant.ErrInvalidChannel) {
		t.Errorf("$café: %v, want ErrInvalidChannel", err)
	}
	cfg := testConfig()
	cfg.StaffChannels = []string{"$café"}
	if _, err := instant.New(cfg); !errors.Is(err, instant.ErrConfig) || !errors.Is(err, instant.ErrInvalidChannel) {
		t.Errorf("New with StaffChannels [$café] = %v, want ErrConfig wrapping ErrInvalidChannel", err)
	}
	inst := newInstant(t, testConfig())
	for _, p := range []string{"$café:{id}", "$rooms:café-{id}", "$é{id}"} {
		if err := inst.Authorize(p, namesAnyUser); !errors.Is(err, instant.ErrInvalidPattern) {
			t.Errorf("Authorize(%q) = %v, want ErrInvalidPattern", p, err)
		}
	}
	_ = inst.Authorize("$rooms:*", namesAnyUser) // would grant "$rooms:café" but for the name check
	b := newBrowser(t, newRouter(inst)).as(&alice)
	for _, ch := range []string{"$café", "$rooms:café"} {
		if status, body := b.postJSON("/instant/subscription_token", map[string]any{"channel": ch}); status != http.StatusBadRequest || body["error"] == nil || body["token"] != nil {
			t.Errorf("subscription_token %s: %d %v, want 400 with an error", ch, status, body)
		}
		if status, body := b.postJSON("/instant/auth", map[string]any{"channels": []string{"$site_users", ch}}); status != http.StatusBadRequest {
			t.Errorf("auth [$site_users %s]: %d %v, want 400", ch, status, body)
		}
		if inst.Allowed(nil, &alice, ch) {
			t.Errorf("Allowed(alice, %s)", ch)
		}
	}
	// The API URL answers nothing: an error other than ErrInvalidChannel
	// would mean Broadcast tried to send.
	for _, ev := range []instant.Event{
		{Channel: "$café", Message: "lost"},
		{Channels: []string{"$site_users", "$rooms:café"}, Message: "lost"},
		{Channel: "$ab:x", Channels: []string{"$a:x"}, Message: "lost"},
	} {
		if err := inst.Broadcast(context.Background(), ev); !errors.Is(err, instant.ErrInvalidChannel) {
			t.Errorf("Broadcast(%v) = %v, want ErrInvalidChannel", ev, err)
		}
		if err := inst.BroadcastBatch(context.Background(), []instant.Event{{Channel: "$site_users"}, ev}); !errors.Is(err, instant.ErrInvalidChannel) {
			t.Errorf("BroadcastBatch(..., %v) = %v, want ErrInvalidChannel", ev, err)
		}
	}
}

// TestNamesCentrifugoCannotServeAreRefused: configured channels whose
// namespace Centrifugo refuses to declare (so it would not start), and
// rules whose namespace is not literal (so their channels are unknown to
// it, 102), are refused when they are made.
func TestNamesCentrifugoCannotServeAreRefused(t *testing.T) {
	for name, mod := range map[string]func(*instant.Config){
		"one-letter namespace":  func(c *instant.Config) { c.StaffChannels = []string{"$a:x"} },
		"@ in a namespace":      func(c *instant.Config) { c.UsersChannels = []string{"$team@acme:x"} },
		"non-ASCII namespace":   func(c *instant.Config) { c.SuperuserChannels = []string{"équipe:x"} },
		"public namespace":      func(c *instant.Config) { c.PublicChannels = []string{"a:b"} },
		"group namespace":       func(c *instant.Config) { c.GroupChannels = map[string][]string{"g": {"$x:y"}} },
		"$ in a namespace":      func(c *instant.Config) { c.StaffChannels = []string{"$$ab:x"} },
		"personal namespace":    func(c *instant.Config) { c.StaffChannels = []string{"$site_user:x"} },
		"its public twin":       func(c *instant.Config) { c.PublicChannels = []string{"site_user:x"} },
		"shop's personal space": func(c *instant.Config) { c.SiteSlug = "shop"; c.UsersChannels = []string{"shop_user:all"} },
	} {
		cfg := testConfig()
		mod(&cfg)
		if _, err := instant.New(cfg); !errors.Is(err, instant.ErrConfig) {
			t.Errorf("%s: New = %v, want ErrConfig", name, err)
		}
	}

	inst := newInstant(t, testConfig())
	for _, p := range []string{
		"$chat*",                  // matches $chat:x and $chatroom:y
		"${team}:board",           // a namespace per team
		"$x{a}:b",                 // the same
		"$p-{a}/{b}:x",            // the same
		"$a:{x}",                  // one letter
		"$team@acme:{x}",          // '@'
		"$équipe:{x}",             // non-ASCII
		"$$ab:{x}",                // '$' in the namespace
		"$*",                      // any namespace at all
		"$site_user:{id}:private", // the users' own channels
		"$site_user:*",
		"$site_user:",
	} {
		err := inst.Authorize(p, namesAnyUser)
		if !errors.Is(err, instant.ErrInvalidPattern) {
			t.Errorf("Authorize(%q) = %v, want ErrInvalidPattern", p, err)
		} else if !strings.Contains(err.Error(), "namespace") && !strings.Contains(err.Error(), "non-ASCII") {
			t.Errorf("Authorize(%q): %v does not say what is wrong with the namespace", p, err)
		}
	}
	for p, ch := range map[string]string{
		"$chat:*":        "$chat:lobby",
		"$project-{id}":  "$project-7", // no ':' possible: no namespace
		"${team}":        "$blue",
		"$:{x}":          "$:free", // an empty namespace is none
		"$room:{id}:log": "$room:7:log",
	} {
		if err := inst.Authorize(p, namesAnyUser); err != nil {
			t.Errorf("Authorize(%q): %v", p, err)
		} else if !inst.Allowed(nil, &alice, ch) {
			t.Errorf("%q does not grant %q", p, ch)
		}
	}
	// With another slug, "site_user" is a namespace like any other.
	cfg := testConfig()
	cfg.SiteSlug = "shop"
	shop := newInstant(t, cfg)
	if err := shop.Authorize("$site_user:{id}", namesAnyUser); err != nil {
		t.Errorf("shop: Authorize($site_user:{id}): %v", err)
	}
	if err := shop.Authorize("$shop_user:{id}:private", namesAnyUser); !errors.Is(err, instant.ErrInvalidPattern) {
		t.Errorf("shop: Authorize($shop_user:{id}:private) = %v, want ErrInvalidPattern", err)
	}
}

// namesIDs are user IDs whose personal channels must work: readable ones,
// non-ASCII, punctuation that would make names ambiguous, and the longest.
var namesIDs = map[string]string{
	"42":        "42",
	"josé":      "josé",
	"5:private": "5:private",
	"with #,/":  "a#b,c/d",
	"245 bytes": strings.Repeat("x", 245),
	"250 bytes": strings.Repeat("7", 250),
	"255 bytes": strings.Repeat("é", 127) + "x",
	"tilde":     "~x",
}

// TestPersonalChannelNames: every valid user ID gets a personal channel
// Centrifugo serves, no two IDs share one, and only its user reads it.
func TestPersonalChannelNames(t *testing.T) {
	inst := newInstant(t, testConfig())
	if got := inst.UserChannel("42"); got != "$site_user:42" {
		t.Errorf("UserChannel(42) = %q: a plain ID stays readable", got)
	}
	if got := inst.UserChannel("a.B-9_z"); got != "$site_user:a.B-9_z" {
		t.Errorf("UserChannel(a.B-9_z) = %q", got)
	}
	ids := []string{"5", "5:private", "josé", "jose", "~x", "x", "a#b", "a,b", "a/b", "a:b", "A", "a",
		strings.Repeat("x", 244), strings.Repeat("x", 245), strings.Repeat("x", 255), strings.Repeat("é", 127) + "x"}
	// An ID spelled as another's encoded form must not take its channel.
	ids = append(ids, strings.TrimPrefix(inst.UserChannel("josé"), "$site_user:"))
	seen := map[string]string{}
	for _, id := range ids {
		ch := inst.UserChannel(id)
		if err := channelNameError(ch); err != nil || !strings.HasPrefix(ch, "$site_user:") {
			t.Errorf("UserChannel(%q) = %q: %v", id, ch, err)
			continue
		}
		if other, dup := seen[ch]; dup {
			t.Errorf("users %q and %q share %q", other, id, ch)
		}
		seen[ch] = id
		if !inst.Allowed(nil, &instant.User{ID: id}, ch) {
			t.Errorf("user %q may not read their own %q", id, ch)
		}
	}
	for ch, id := range seen {
		for _, other := range ids {
			if other != id && inst.Allowed(nil, &instant.User{ID: other}, ch) {
				t.Errorf("user %q may read %q, which is %q's", other, ch, id)
			}
		}
	}
	// Neither user 5 nor user "5:private" reads UserChannel("5")+":private".
	shadow := inst.UserChannel("5") + ":private"
	for _, id := range []string{"5", "5:private"} {
		if inst.Allowed(nil, &instant.User{ID: id}, shadow) {
			t.Errorf("user %q may read %q", id, shadow)
		}
	}
	if inst.UserChannel("5:private") == shadow {
		t.Errorf("user 5:private's channel is %q", shadow)
	}
	for _, bad := range []string{"", "a b", "\xff", strings.Repeat("x", 256)} {
		if got := inst.UserChannel(bad); got != "" {
			t.Errorf("UserChannel(%q) = %q, want \"\" for an invalid ID", bad, got)
		}
	}
	// GET channels lists the encoded name for its user.
	b := newBrowser(t, newRouter(inst)).as(&instant.User{ID: "josé"})
	if _, body := b.get("/instant/channels"); !hasChannel(body, inst.UserChannel("josé"), "personal") {
		t.Errorf("GET channels for josé: %v", body["channels"])
	}
}

// TestLiveChannelNamesAtTheEdge: Centrifugo refuses to clients the names
// the plugin refuses, and the longest names with every character it
// allows really work, private and public.
func TestLiveChannelNamesAtTheEdge(t *testing.T) {
	t.Parallel()
	const punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	fill := func(s string) string {
		s += punct + "ABCXYZabcxyz0189"
		return s + strings.Repeat("z", 255-len(s))
	}
	private, public := fill("$edge.ns-1_x:"), fill("edge.pub:")
	cfg := testConfig()
	cfg.PublicChannels = []string{"site_public", public}
	ls := namesStartLive(t, cfg, func(inst *instant.Instant) error { return inst.Authorize("$edge.ns-1_x:*", namesAnyUser) })
	for _, ch := range []string{private, public} {
		if len(ch) != 255 || channelNameError(ch) != nil {
			t.Fatalf("%q: %d bytes, %v", ch, len(ch), channelNameError(ch))
		}
	}
	user, anon := ls.connect(t, &alice), ls.connect(t, nobody)
	if !user.subscribe(private, true, "") {
		t.Fatalf("Centrifugo refused %q to a user with a token: code %d", private, user.refusal)
	}
	if !anon.subscribe(public, false, "") {
		t.Fatalf("Centrifugo refused %q to an anonymous client: code %d", public, anon.refusal)
	}
	if err := ls.inst.Broadcast(context.Background(), instant.Event{Channels: []string{private, public}, Message: "edge"}); err != nil {
		t.Fatal(err)
	}
	namesAwait(t, user, "edge", []string{private})
	namesAwait(t, anon, "edge", []string{public})

	// What the plugin refuses, Centrifugo refuses to clients: non-ASCII
	// and over 255 bytes (107 bad request), a namespace it cannot declare
	// (102 unknown channel).
	for ch, code := range map[string]uint32{"café": 107, public + "z": 107, "a:x": 102} {
		if channelNameError(ch) == nil {
			t.Errorf("%q taken for a channel", ch)
		}
		if anon.subscribe(ch, false, "") || anon.refusal != code {
			t.Errorf("Centrifugo on %q: refusal %d, want %d", ch, anon.refusal, code)
		}
	}
}

// TestLivePersonalChannelsForEveryID: for every kind of valid user ID,
// the user gets a token for their UserChannel from the route, subscribes
// with it, and receives an event sent with Event.Users; another user is
// refused the token.
func TestLivePersonalChannelsForEveryID(t *testing.T) {
	t.Parallel()
	ls := namesStartLive(t, testConfig(), nil)
	other := newBrowser(t, ls.app).as(&alice)
	for name, id := range namesIDs {
		own := ls.inst.UserChannel(id)
		lc := ls.connect(t, &instant.User{ID: id})
		status, body := lc.b.postJSON("/instant/subscription_token", map[string]any{"channel": own})
		if status != http.StatusOK {
			t.Errorf("%s: subscription_token for %q: %d %v", name, own, status, body)
			continue
		}
		if !lc.subscribe(own, true, "") {
			t.Errorf("%s: Centrifugo refused %q: code %d", name, own, lc.refusal)
			continue
		}
		msg := "for " + name
		if err := ls.inst.Broadcast(context.Background(), instant.Event{Users: []string{id}, Message: msg}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		namesAwait(t, lc, msg, []string{own})
		if status, _ := other.postJSON("/instant/subscription_token", map[string]any{"channel": own}); status != http.StatusForbidden {
			t.Errorf("%s: alice asked for %q: %d, want 403", name, own, status)
		}
	}
	// User 5 cannot read what was the channel of user "5:private".
	five := newBrowser(t, ls.app).as(&instant.User{ID: "5"})
	if status, _ := five.postJSON("/instant/subscription_token", map[string]any{"channel": ls.inst.UserChannel("5") + ":private"}); status != http.StatusForbidden {
		t.Errorf("user 5 asked for %s:private: %d, want 403", ls.inst.UserChannel("5"), status)
	}
}

// namesConfigs are configs that New accepts, each with names at the edges
// of what Centrifugo takes.
var namesConfigs = map[string]func(*instant.Config){
	"defaults": func(*instant.Config) {},
	"namespaced": func(c *instant.Config) {
		c.PublicChannels = []string{"site_public", "news:front", ":top"}
		c.UsersChannels = []string{"$ab:all", "$x.y-z_9:all"}
		c.StaffChannels = []string{"$ops.team:alerts#1,2/3"}
		c.SuperuserChannels = []string{"$Admin-2:root"}
		c.GroupChannels = map[string][]string{"équipe": {"$eq-1:room"}, "ops": {"$ops.team:room"}}
	},
	"short slug": func(c *instant.Config) {
		c.SiteSlug = "a"
		c.DisallowAnonymous = true
	},
	"long slug": func(c *instant.Config) { c.SiteSlug = strings.Repeat("s.-_", 16) },
}

// namesRules are the rules Authorize accepts, each with a channel it
// grants to every logged-in user.
var namesRules = map[string]string{
	"$chat:*":          "$chat:lobby",
	"$orders:{id}":     "$orders:42",
	"$project-{id}":    "$project-7",
	"$dm:{a},{b}":      "$dm:ann,bob",
	"$:free-{x}":       "$:free-1",
	"$a.b-c_d:{x}/{y}": "$a.b-c_d:1/2",
	"$room:{id}:log":   "$room:7:log",
	"$t.{team}":        "$t.blue",
	"$Team.9:{x}#{y}":  "$Team.9:x#y",
}

// TestLiveConfigsAndRulesCentrifugoAccepts: what New and Authorize accept,
// Centrifugo accepts: every generated config passes checkconfig --strict,
// and every configured channel, personal channel and rule example gets a
// token a real client subscribes with (no 102 unknown channel).
func TestLiveConfigsAndRulesCentrifugoAccepts(t *testing.T) {
	t.Parallel()
	addRules := func(inst *instant.Instant) error {
		for p := range namesRules {
			if err := inst.Authorize(p, namesAnyUser); err != nil {
				return fmt.Errorf("Authorize(%q): %w", p, err)
			}
		}
		return nil
	}
	for name, mod := range namesConfigs {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			mod(&cfg)
			inst := newInstant(t, cfg)
			if err := addRules(inst); err != nil {
				t.Fatal(err)
			}
			for _, o := range []instant.CentrifugoOptions{{}, {Presence: true, HistorySize: 10, HistoryTTL: time.Minute, ProxyURL: "http://127.0.0.1:8080/instant"}} {
				raw, err := inst.CentrifugoConfig(o)
				if err != nil {
					t.Fatal(err)
				}
				if err := checkconfig(t, raw); err != nil {
					t.Fatalf("checkconfig --strict: %v\n%s", err, raw)
				}
			}

			ls := namesStartLive(t, cfg, addRules)
			lc := ls.connect(t, &root) // reads every role channel
			var want []string
			for _, c := range listedChannels(t, lc.b) {
				want = append(want, c.Name)
			}
			for _, ch := range namesRules {
				want = append(want, ch)
			}
			for _, ch := range want {
				if !lc.subscribe(ch, privateChannel(ch), "") {
					t.Errorf("Centrifugo refused %q: code %d", ch, lc.refusal)
				}
			}
			if t.Failed() {
				return
			}
			if err := ls.inst.Broadcast(context.Background(), instant.Event{Channels: want, Message: "all"}); err != nil {
				t.Fatal(err)
			}
			namesAwait(t, lc, "all", want)
		})
	}
}

// TestValidChannel: the names the plugin takes for a channel.
func TestValidChannel(t *testing.T) {
	cases := map[string]bool{
		"site_public":                  true,
		"$orders:42":                   true,
		"$чат":                         false, // Centrifugo refuses non-ASCII names to clients (107)
		"$café":                        false,
		"":                             false,
		strings.Repeat("a", 255):       true,
		strings.Repeat("a", 256):       false,
		"$" + strings.Repeat("a", 254): true,
		"$:x":                          true, // an empty namespace: none
		"$ab:x":                        true,
		"$a:x":                         false, // namespaces have two characters or more
		"a:x":                          false,
		"$team@acme:x":                 false,
		"$équipe:x":                    false,
		"$$ab:x":                       false, // namespace "$ab"
		"$a.b-c_d:x:y:z":               true,
		"$ab:x#y,z/{w}*!\"~":           true, // any printable ASCII after the namespace
		"has space":                    false,
		"tab\there":                    false,
		"nl\n":                         false,
		"nul\x00":                      false,
		"del\x7f":                      false,
		"bad\xffutf8":                  false,
		"nbsp\u00a0":                   false,
		"line\u2028sep":                false,
		"c1\u0085":                     false,
		"emoji-🎉":                      false,
	}
	for name, ok := range cases {
		err := channelNameError(name)
		if (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, instant.ErrInvalidChannel) {
			t.Errorf("%q: error %v does not wrap ErrInvalidChannel", name, err)
		}
	}
}
