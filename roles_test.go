package instant_test

import (
	"strings"
	"testing"

	"github.com/gin-instant/instant"
)

// TestChannelsFor: GET channels lists the channels of each role.
func TestChannelsFor(t *testing.T) {
	inst := newInstant(t, testConfig())
	names := func(u *instant.User) string {
		var out []string
		for _, c := range listedChannels(t, newBrowser(t, newRouter(inst)).as(u)) {
			out = append(out, c.Name+"="+c.Level)
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
	if got := levelChannels(inst, instant.LevelStaff); len(got) != 1 || got[0] != "$back_office" {
		t.Errorf("staff channels %v, want [$back_office]", got)
	}
	if got := levelChannels(inst, instant.LevelGroups); strings.Join(got, ",") != "$ops_room,$ops_alerts" {
		t.Errorf("group channels %v", got)
	}
	if got := levelChannels(inst, instant.LevelPublic); got[0] != "shop_public" {
		t.Errorf("public channels %v, want [shop_public]", got)
	}
	if got := levelChannels(inst, instant.LevelSuperuser); got[0] != "$shop_admin" {
		t.Errorf("superuser channels %v, want [$shop_admin]", got)
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
