package instant_test

import (
	"testing"

	"github.com/gin-instant/instant"
)

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
	if got := listedChannels(t, newBrowser(t, newRouter(inst))); len(got) != 0 {
		t.Errorf("GET channels for anonymous lists %v, want none", got)
	}
}
