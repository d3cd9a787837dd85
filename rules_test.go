package instant_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// TestAmbiguousPatternsAreRefused: a pattern whose parameters could split
// a channel name more than one way is refused; separated by ':', '#', ','
// or '/', parameters read one way only.
func TestAmbiguousPatternsAreRefused(t *testing.T) {
	inst := newInstant(t, testConfig())
	allow := func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }
	for _, p := range []string{"$dm:{a}-{b}", "$dm:{a}.{b}", "$x:{a}_", "$x:{a}*", "$x:{a}-end"} {
		if err := inst.Authorize(p, allow); !errors.Is(err, instant.ErrInvalidPattern) {
			t.Errorf("Authorize(%q): %v, want ErrInvalidPattern", p, err)
		}
	}
	var got map[string]string
	err := inst.Authorize("$dm:{a},{b}", func(_ *gin.Context, _ *instant.User, p map[string]string) (bool, any) {
		got = p
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	u := &instant.User{ID: "1"}
	if !inst.Allowed(nil, u, "$dm:alice,bob") || got["a"] != "alice" || got["b"] != "bob" {
		t.Errorf("$dm:alice,bob: params %v", got)
	}
	got = nil
	for _, ch := range []string{"$dm:alice,bob,carol", "$dm:alice", "$dm:,bob", "$dm:alice,"} {
		if inst.Allowed(nil, u, ch) || got != nil {
			t.Errorf("%s matched $dm:{a},{b} with %v", ch, got)
		}
	}
	if err := inst.Authorize("$room:{id}:log", allow); err != nil {
		t.Fatal(err)
	}
	if !inst.Allowed(nil, u, "$room:7:log") || inst.Allowed(nil, u, "$room:7:8:log") {
		t.Error("$room:{id}:log matched wrongly")
	}
}

func TestAuthorizeParamsAndInfo(t *testing.T) {
	inst := newInstant(t, testConfig())
	var got map[string]string
	err := inst.Authorize("$shop:{shop}:order:{id}", func(_ *gin.Context, _ *instant.User, p map[string]string) (bool, any) {
		got = p
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !inst.Allowed(nil, &alice, "$shop:s-9:order:77") {
		t.Fatal("not allowed")
	}
	if got["shop"] != "s-9" || got["id"] != "77" || len(got) != 2 {
		t.Errorf("params %v", got)
	}
	if inst.Allowed(nil, &alice, "$shop:s:9:order:77") {
		t.Error("a parameter matched across ':'")
	}
}

func TestAuthorizeRejectsBadPatterns(t *testing.T) {
	inst := newInstant(t, testConfig())
	allow := func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }
	for _, p := range []string{"", "$ab:{", "$ab:}", "$ab:{}", "$ab:*:b", "$ab:{x}{y}", "$ab:{x}:{x}", "$ab b", "$ab\x00"} {
		if err := inst.Authorize(p, allow); !errors.Is(err, instant.ErrInvalidPattern) {
			t.Errorf("Authorize(%q) = %v, want ErrInvalidPattern", p, err)
		}
	}
	if err := inst.Authorize("$ok:{id}", nil); !errors.Is(err, instant.ErrInvalidPattern) {
		t.Errorf("nil func: %v", err)
	}
}

func TestRulesCannotWidenRoleChannels(t *testing.T) {
	cfg := testConfig()
	cfg.StaffChannels = []string{"$chat:staff"}
	inst := newInstant(t, cfg)
	anyone := func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }
	for _, p := range []string{"$chat:*", "$chat:{x}", "${x}", "$site_admin"} {
		if err := inst.Authorize(p, anyone); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []string{"$chat:staff", "$site_admin", "$site_users"} {
		if inst.Allowed(nil, nil, ch) {
			t.Errorf("a rule granted the role channel %s to anonymous", ch)
		}
	}
	if inst.Allowed(nil, &alice, "$chat:staff") || !inst.Allowed(nil, &sam, "$chat:staff") {
		t.Error("$chat:staff not decided by the staff level")
	}
	if !inst.Allowed(nil, nil, "$chat:lobby") {
		t.Error("the rule did not grant an unconfigured channel")
	}
}

func TestAuthorizeRefusesPublicPatterns(t *testing.T) {
	inst := newInstant(t, testConfig())
	anyone := func(*gin.Context, *instant.User, map[string]string) (bool, any) { return false, nil }
	for _, p := range []string{"chat:{room}", "*", "secret_{id}"} {
		if err := inst.Authorize(p, anyone); !errors.Is(err, instant.ErrInvalidPattern) {
			t.Errorf("Authorize(%q) = %v: a rule on a public channel protects nothing", p, err)
		}
	}
}

// TestLiveRuleInfoMustBeSafe: a rule's info went into the token as the
// rule gave it: a json.RawMessage that is not UTF-8 (Centrifugo hands it
// to the channel's members in their joins and presence, in text frames
// their browsers drop), or one nested too deep. No token is signed: the
// routes answer 500 (the auth batch a 500 for that channel), with one log
// line naming the rule's pattern, as for a rule that panics; a rule's
// good info still reaches the token and Centrifugo's presence.
func TestLiveRuleInfoMustBeSafe(t *testing.T) {
	t.Parallel()
	logger, logs := newLogger()
	infos := map[string]any{
		"raw":     json.RawMessage("{\"nick\":\"Ren\xe9\"}"),
		"inmap":   map[string]any{"nick": json.RawMessage("\"\xff\"")},
		"deep":    nested(65),
		"deepmap": nestedMap(65),
		"ok":      map[string]any{"nick": "René", "d": nested(63)},
	}
	ls := startPresence(t, func(c *instant.Config) { c.Logger = logger }, func(inst *instant.Instant) {
		_ = inst.Authorize("$info:{kind}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
			return u != nil, infos[p["kind"]]
		})
	})
	annC := ls.connect(t, &ann)
	bad := []string{"raw", "inmap", "deep", "deepmap"}
	for _, kind := range bad {
		ch := "$info:" + kind
		if tok, err := ls.inst.SubscriptionToken(nil, &ann, ch); !ruleFailed(err) || tok.Token != "" {
			t.Errorf("%s: SubscriptionToken = %q, %v; want no token and the rule's failure", ch, tok.Token, err)
		}
		if status, body := annC.b.postJSON("/instant/subscription_token", map[string]any{"channel": ch}); status != http.StatusInternalServerError || body["token"] != nil || body["error"] == nil {
			t.Errorf("%s: subscription_token answered %d %v, want 500 with an error and no token", ch, status, body)
		}
		status, body := annC.b.postJSON("/instant/auth", map[string]any{"channels": []string{ch, "$info:ok"}})
		list, _ := body["channels"].([]any)
		if status != http.StatusOK || len(list) != 2 {
			t.Fatalf("%s: auth answered %d %v", ch, status, body)
		}
		first, _ := list[0].(map[string]any)
		second, _ := list[1].(map[string]any)
		if first["status"] != float64(500) || first["token"] != nil || second["token"] == nil {
			t.Errorf("%s: auth answered %v, want a 500 for it and a token for $info:ok", ch, list)
		}
	}
	named := 0
	for _, line := range strings.Split(logs.all(), "\n") {
		if strings.Contains(line, "$info:{kind}") {
			named++
		}
	}
	if named != 3*len(bad) || len(logs.errors()) != 3*len(bad) {
		t.Errorf("%d log lines name the rule, %d errors logged, want %d of each:\n%s", named, len(logs.errors()), 3*len(bad), logs.all())
	}

	// The good info: in the token, and what another member sees.
	tok, err := ls.inst.SubscriptionToken(nil, &ann, "$info:ok")
	if err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(parseToken(t, tok.Token)["info"]); got != `{"d":`+string(nested(63))+`,"nick":"René"}` {
		t.Errorf("the token's info: %s", got)
	}
	bobC := ls.connect(t, &bob)
	_, watch := watchedSub(t, bobC, "$info:ok")
	watchedSub(t, annC, "$info:ok")
	eventually(t, "bob was told of ann's join", func() bool { return watch.has(&watch.joined, ann.ID) })
	if _, got := presenceRoute(t, bobC.b, "$info:ok"); !slices.ContainsFunc(membersOf(got["$info:ok"]), func(m string) bool { return strings.HasPrefix(m, "11 ") && strings.Contains(m, "René") }) {
		t.Errorf("the presence route on $info:ok: %v", got["$info:ok"])
	}
}

// TestLiveTypedNilRuleInfoIsNoInfo: a rule that granted with a typed nil
// (a nil map, slice or pointer, a nil json.RawMessage, JSON null) put the
// user's whole User.Info into the channel's token, for every member to
// see. Only a rule that gives no info (an untyped nil) falls back to
// User.Info; any other info that encodes as null is no info: the token
// carries none, and the other members see none.
func TestLiveTypedNilRuleInfoIsNoInfo(t *testing.T) {
	t.Parallel()
	infos := map[string]any{
		"map":    map[string]any(nil),
		"slice":  []string(nil),
		"ptr":    (*struct{ Nick string })(nil),
		"null":   json.RawMessage("null"),
		"spaced": json.RawMessage(" null "),
		"rawnil": json.RawMessage(nil),
		"none":   nil,
	}
	ls := startPresence(t, nil, func(inst *instant.Instant) {
		_ = inst.Authorize("$nil:{kind}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
			return u != nil, infos[p["kind"]]
		})
	})
	x := instant.User{ID: "42", Info: map[string]any{"email": "x@y"}}
	y := instant.User{ID: "43", Info: map[string]any{"email": "z@w"}}
	for kind := range infos {
		ch := "$nil:" + kind
		tok, err := ls.inst.SubscriptionToken(nil, &x, ch)
		if err != nil {
			t.Fatalf("%s: %v", ch, err)
		}
		info, has := parseToken(t, tok.Token)["info"]
		switch {
		case kind == "none" && mustJSON(info) != `{"email":"x@y"}`:
			t.Errorf("%s: a rule that gives no info: the token's info is %s, want User.Info", ch, mustJSON(info))
		case kind != "none" && has:
			t.Errorf("%s: the token carries info %s, want none", ch, mustJSON(info))
		}
	}
	xC, yC := ls.connect(t, &x), ls.connect(t, &y)
	_, watch := watchedSub(t, yC, "$nil:map")
	watchedSub(t, xC, "$nil:map")
	eventually(t, "y was told of x's join", func() bool { return watch.has(&watch.joined, x.ID) })
	watch.mu.Lock()
	for _, ci := range watch.infos {
		if ci.User == x.ID && (len(ci.ChanInfo) != 0 || len(ci.ConnInfo) != 0) {
			t.Errorf("y was pushed x's join with chan_info %s, conn_info %s; want none", ci.ChanInfo, ci.ConnInfo)
		}
	}
	watch.mu.Unlock()
	if _, got := presenceRoute(t, yC.b, "$nil:map"); !slices.Equal(membersOf(got["$nil:map"]), []string{"42 ", "43 "}) {
		t.Errorf("the presence route on $nil:map: %v, want both members with no info", membersOf(got["$nil:map"]))
	}
	members, err := ls.inst.Presence(context.Background(), "$nil:map")
	if err != nil || len(members) != 2 || len(members[0].Info) != 0 {
		t.Errorf("Instant.Presence($nil:map) = %+v, %v", members, err)
	}
}

// TestUserInfoMustBeSafe: User.Info reaches Centrifugo in tokens as the
// rules' info does, so the same holds: JSON that is not UTF-8 (a
// json.RawMessage inside Info) or nests more than 64 deep is no token. A
// LoadUser user with such Info is refused (500, logged); a logged-in
// user's and one handed to SubscriptionToken get no token. 64 deep is
// fine.
func TestUserInfoMustBeSafe(t *testing.T) {
	deep := map[string]any{"a": nestedMap(64)} // 65 deep
	bad := map[string]any{"nick": json.RawMessage("\"Ren\xe9\"")}
	fine := map[string]any{"d": nested(63)} // 64 deep
	for name, info := range map[string]map[string]any{"deep": deep, "not UTF-8": bad} {
		inst := newInstant(t, testConfig())
		if tok, err := inst.SubscriptionToken(nil, &instant.User{ID: "1", Info: info}, "$site_users"); err == nil || tok.Token != "" {
			t.Errorf("%s: SubscriptionToken = %q, %v; want no token", name, tok.Token, err)
		}
		loaded, logs := loggedInstant(t, func(c *instant.Config) {
			c.LoadUser = func(*gin.Context) (*instant.User, error) { return &instant.User{ID: "1", Info: info}, nil }
		})
		status, body := newBrowser(t, newRouter(loaded)).postJSON("/instant/subscription_token", map[string]any{"channel": "$site_users"})
		if status != http.StatusInternalServerError || body["token"] != nil || len(logs.errors()) != 1 || !strings.Contains(logs.all(), "Info") {
			t.Errorf("%s: LoadUser's user: %d %v, logged %q; want 500, no token, one line", name, status, body, logs.all())
		}
	}
	// Login keeps Info as JSON (bytes that are not UTF-8 become U+FFFD
	// there); a depth over the bound is still no token.
	inst, logs := loggedInstant(t, nil)
	status, body := newBrowser(t, newRouter(inst)).as(&instant.User{ID: "1", Info: deep}).postJSON("/instant/subscription_token", map[string]any{"channel": "$site_users"})
	if status != http.StatusInternalServerError || body["token"] != nil || len(logs.errors()) != 1 {
		t.Errorf("a logged-in user with Info 65 deep: %d %v, logged %q; want 500 and no token", status, body, logs.all())
	}
	tok, err := inst.SubscriptionToken(nil, &instant.User{ID: "1", Info: fine}, "$site_users")
	if err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(parseToken(t, tok.Token)["info"]); got != `{"d":`+string(nested(63))+`}` {
		t.Errorf("Info 64 deep: the token carries %s", got)
	}
}
