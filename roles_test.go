package instant_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// rulesInstant has the default channels, a group, and two custom rules.
func rulesInstant(t testing.TB) *instant.Instant {
	inst := newInstant(t, testConfig())
	if err := inst.Authorize("$orders:{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && p["id"] == "o"+u.ID, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := inst.Authorize("$chat:*", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && !strings.HasPrefix(p["*"], "secret"), nil
	}); err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestDecisionTable(t *testing.T) {
	inst := rulesInstant(t)
	type row struct {
		channel                         string
		anon, user, group, staff, super bool
	}
	rows := []row{
		{"site_public", true, true, true, true, true},
		{"news", true, true, true, true, true}, // any other public channel
		{"$site_users", false, true, true, true, true},
		{"$site_editors", false, false, true, false, false},
		{"$site_staff", false, false, false, true, true},
		{"$site_admin", false, false, false, false, true},
		{"$private_chan", false, false, false, false, false}, // deny by default
		{"$site_public", false, false, false, false, false},
		{"$orders:o1", false, true, false, false, false}, // alice is user 1
		{"$orders:o4", false, false, false, false, true},
		{"$orders:", false, false, false, false, false},
		{"$orders:o1:x", false, false, false, false, false},
		{"$chat:lobby", false, true, true, true, true},
		{"$chat:secret-room", false, false, false, false, false},
	}
	users := []*instant.User{nobody, &alice, &gina, &sam, &root}
	for _, r := range rows {
		want := []bool{r.anon, r.user, r.group, r.staff, r.super}
		for k, u := range users {
			name := "anonymous"
			if u != nil {
				name = u.Username
			}
			if got := inst.Allowed(nil, u, r.channel); got != want[k] {
				t.Errorf("%s reading %q: allowed=%v, want %v", name, r.channel, got, want[k])
			}
		}
	}
}

func TestDisallowAnonymousDeniesEverything(t *testing.T) {
	cfg := testConfig()
	cfg.DisallowAnonymous = true
	inst := newInstant(t, cfg)
	if inst.Allowed(nil, nil, "site_public") {
		t.Error("anonymous allowed site_public with DisallowAnonymous")
	}
	if !inst.Allowed(nil, &alice, "site_public") {
		t.Error("user denied site_public")
	}
	if got := inst.ChannelsFor(nil); len(got) != 0 {
		t.Errorf("ChannelsFor(nil) = %v, want none", got)
	}
}

func TestChannelsFor(t *testing.T) {
	inst := newInstant(t, testConfig())
	names := func(u *instant.User) string {
		var out []string
		for _, c := range inst.ChannelsFor(u) {
			out = append(out, c.Name+"="+c.Level.String())
		}
		return strings.Join(out, " ")
	}
	cases := map[string]struct {
		u    *instant.User
		want string
	}{
		"anonymous": {nil, "site_public=public"},
		"user":      {&alice, "site_public=public $site_users=users $site_user:1=personal"},
		"group":     {&gina, "site_public=public $site_users=users $site_editors=groups $site_user:2=personal"},
		"staff":     {&sam, "site_public=public $site_users=users $site_staff=staff $site_user:3=personal"},
		"superuser": {&root, "site_public=public $site_users=users $site_staff=staff $site_admin=superuser $site_user:4=personal"},
	}
	for name, c := range cases {
		if got := names(c.u); got != c.want {
			t.Errorf("%s: got %q, want %q", name, got, c.want)
		}
	}
}

func TestChannelNamesGetPrivatePrefix(t *testing.T) {
	cfg := testConfig()
	cfg.SiteSlug = "shop"
	cfg.StaffChannels = []string{"back_office"}
	cfg.GroupChannels = map[string][]string{"ops": {"ops_room", "$ops_alerts"}}
	inst := newInstant(t, cfg)
	if got := inst.ChannelsAt(instant.LevelStaff); len(got) != 1 || got[0] != "$back_office" {
		t.Errorf("staff channels %v, want [$back_office]", got)
	}
	if got := inst.ChannelsAt(instant.LevelGroups); strings.Join(got, ",") != "$ops_room,$ops_alerts" {
		t.Errorf("group channels %v", got)
	}
	if got := inst.ChannelsAt(instant.LevelPublic); got[0] != "shop_public" {
		t.Errorf("public channels %v, want [shop_public]", got)
	}
	if got := inst.ChannelsAt(instant.LevelSuperuser); got[0] != "$shop_admin" {
		t.Errorf("superuser channels %v, want [$shop_admin]", got)
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
		err := instant.ValidChannel(name)
		if (err == nil) != ok {
			t.Errorf("ValidChannel(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, instant.ErrInvalidChannel) {
			t.Errorf("ValidChannel(%q) error %v does not wrap ErrInvalidChannel", name, err)
		}
	}
}

func TestChannelsListsEveryLevel(t *testing.T) {
	cfg := testConfig()
	cfg.GroupChannels = map[string][]string{"b": {"$shared", "$b_only"}, "a": {"$shared"}}
	var got []string
	for _, c := range newInstant(t, cfg).Channels() {
		got = append(got, c.Name+"="+c.Level.String()+":"+c.Group)
	}
	want := "site_public=public: $site_users=users: $shared=groups:a $b_only=groups:b $site_staff=staff: $site_admin=superuser:"
	if strings.Join(got, " ") != want {
		t.Errorf("Channels() = %s\nwant %s", strings.Join(got, " "), want)
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
