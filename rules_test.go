package instant_test

import (
	"errors"
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
