package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant/internal/centrifugotest"
)

// tokenStatus asks the subscription token route for channel, as the
// browser's page would, and returns the status.
func (b *browser) tokenStatus(channel string) int {
	b.t.Helper()
	return b.do(http.MethodPost, "/instant/subscription_token", strings.NewReader(`{"channel":"`+channel+`"}`), map[string]string{
		"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json",
	}).status
}

// TestAdminIsForSuperusersOnly: the admin page and its actions send an
// anonymous visitor to log in (401 to a POST), refuse every other user
// with 403 and change nothing.
func TestAdminIsForSuperusersOnly(t *testing.T) {
	st, srv := startSite(t, noCentrifugo)
	before := st.users.accounts()
	anon := newBrowser(t, srv)
	if r := anon.get("/admin"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?next=%2Fadmin" {
		t.Errorf("anonymous GET /admin: %d to %q, want 303 to the login page", r.status, r.header.Get("Location"))
	}
	if r := anon.postForm("/admin/staff", url.Values{"username": {"staff"}, "staff": {"false"}}); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous POST /admin/staff: %d, want 401", r.status)
	}
	for _, name := range []string{"user", "editor", "staff"} {
		b := browserAs(t, srv, name)
		if r := b.get("/admin"); r.status != http.StatusForbidden {
			t.Errorf("%s: GET /admin: %d, want 403", name, r.status)
		}
		if r := b.get("/"); strings.Contains(r.body, `href="/admin"`) {
			t.Errorf("%s: the menu links to the admin page", name)
		}
		if r := b.postForm("/admin/staff", url.Values{"username": {name}, "staff": {"true"}}); r.status != http.StatusForbidden {
			t.Errorf("%s: POST /admin/staff: %d, want 403", name, r.status)
		}
		if r := b.postForm("/admin/group", url.Values{"username": {name}, "group": {"reviewers"}}, "Accept", "application/json"); r.status != http.StatusForbidden || !strings.Contains(r.body, `"error"`) {
			t.Errorf("%s: POST /admin/group: %d %s, want 403 with a JSON error", name, r.status, r.body)
		}
	}
	if after := st.users.accounts(); !reflect.DeepEqual(after, before) {
		t.Errorf("refused requests changed the users:\n%+v\nwas\n%+v", after, before)
	}
	admin := browserAs(t, srv, "admin")
	r := admin.get("/admin")
	if r.status != http.StatusOK || !strings.Contains(r.body, `href="/admin" aria-current="page"`) {
		t.Fatalf("admin: GET /admin: %d, or no menu link", r.status)
	}
	for _, want := range []string{`data-username="staff"`, `data-action="demote"`, `data-action="promote"`, `<option value="reviewers">`, `<option value="editors" selected>`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the admin page lacks %s", want)
		}
	}
}

// TestAdminRefusesBadInput: an unknown user, group or staff value, and a
// superuser's demotion, are 400 with a message, and change nothing.
func TestAdminRefusesBadInput(t *testing.T) {
	st, srv := startSite(t, noCentrifugo)
	before := st.users.accounts()
	admin := browserAs(t, srv, "admin")
	cases := []struct {
		path string
		form url.Values
		msg  string
	}{
		{"/admin/staff", url.Values{"username": {"nobody"}, "staff": {"true"}}, "There is no such user."},
		{"/admin/staff", url.Values{"staff": {"true"}}, "There is no such user."},
		{"/admin/staff", url.Values{"username": {"user"}, "staff": {"yes"}}, "Say staff=true or staff=false."},
		{"/admin/staff", url.Values{"username": {"user"}}, "Say staff=true or staff=false."},
		{"/admin/staff", url.Values{"username": {"admin"}, "staff": {"false"}}, "A superuser is always staff."},
		{"/admin/group", url.Values{"username": {"user"}, "group": {"admins"}}, "There is no such group."},
		{"/admin/group", url.Values{"username": {"user"}, "group": {"Editors"}}, "There is no such group."},
		{"/admin/group", url.Values{"username": {"nobody"}, "group": {"editors"}}, "There is no such user."},
		{"/admin/group", url.Values{"username": {"user"}, "group": {"editors"}, "x": {strings.Repeat("x", maxFormBytes)}}, "There is no such"},
	}
	for _, tc := range cases {
		r := admin.postForm(tc.path, tc.form)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, tc.msg) || !strings.Contains(r.body, `id="users"`) {
			t.Errorf("POST %s %.80s: %d, want 400 and the admin page saying %q", tc.path, tc.form.Encode(), r.status, tc.msg)
		}
		r = admin.postForm(tc.path, tc.form, "Accept", "application/json")
		var got struct{ Error string }
		if r.status != http.StatusBadRequest || json.Unmarshal([]byte(r.body), &got) != nil || !strings.HasPrefix(got.Error, tc.msg) {
			t.Errorf("POST %s %.80s as JSON: %d %s, want 400 {error: %q}", tc.path, tc.form.Encode(), r.status, r.body, tc.msg)
		}
	}
	if after := st.users.accounts(); !reflect.DeepEqual(after, before) {
		t.Errorf("refused changes changed the users:\n%+v\nwas\n%+v", after, before)
	}
}

// reauthorizePushes counts the pushes Reauthorize sent to the personal
// channel of the user with this ID.
func reauthorizePushes(t *testing.T, st *site, apiURL, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pubs, err := history(ctx, apiURL, st.inst.UserChannel(id))
	if err != nil {
		t.Fatalf("history of %s: %v", st.inst.UserChannel(id), err)
	}
	n := 0
	for _, p := range pubs {
		var ev struct {
			EventClass string `json:"event_class"`
		}
		if json.Unmarshal(p, &ev) == nil && ev.EventClass == "instant.reauthorized" {
			n++
		}
	}
	return n
}

// TestAdminChangesTakeEffect, against a real Centrifugo: each change is in
// the store at once, so that the sessions of the user changed (filled by
// LoadUser) get the channels and tokens of the new roles on their next
// request, and Reauthorize is called for that user (its push reaches their
// personal channel, and no one else's).
func TestAdminChangesTakeEffect(t *testing.T) {
	cent := centrifugotest.Start(t, centrifugoConfigFor(1))
	st, srv := startSite(t, cent.APIURL)
	admin := browserAs(t, srv, "admin")
	staff, editor := browserAs(t, srv, "staff"), browserAs(t, srv, "editor")
	if staff.tokenStatus("$site_staff") != http.StatusOK || editor.tokenStatus("$site_staff") != http.StatusForbidden {
		t.Fatal("before any change, the staff user gets no $site_staff token, or the editor gets one")
	}

	post := func(path string, form url.Values, want string) {
		t.Helper()
		r := admin.postForm(path, form)
		if r.status != http.StatusOK || !strings.Contains(r.body, want) {
			t.Fatalf("POST %s %s: %d, want 200 saying %q; body:\n%s", path, form.Encode(), r.status, want, r.body)
		}
	}
	channels := func(b *browser) []string { _, names := b.channels(); return names }

	post("/admin/staff", url.Values{"username": {"staff"}, "staff": {"false"}}, "staff is now plain user.")
	if got := channels(staff); slices.Contains(got, "$site_staff") {
		t.Errorf("the demoted staff user's session still reads %v", got)
	}
	if s := staff.tokenStatus("$site_staff"); s != http.StatusForbidden {
		t.Errorf("the demoted staff user's $site_staff token: %d, want 403", s)
	}
	if n := reauthorizePushes(t, st, cent.APIURL, "3"); n != 1 {
		t.Errorf("%d Reauthorize pushes to the staff user, want 1", n)
	}

	post("/admin/staff", url.Values{"username": {"editor"}, "staff": {"true"}}, "editor is now staff, member of the editors group.")
	if s := editor.tokenStatus("$site_staff"); s != http.StatusOK {
		t.Errorf("the promoted editor's $site_staff token: %d, want 200", s)
	}
	post("/admin/group", url.Values{"username": {"editor"}, "group": {"reviewers"}}, "editor is now staff, member of the reviewers group.")
	if got, want := channels(editor), []string{"site_public", "$site_users", "$site_reviewers", "$site_staff", "$site_user:2"}; !slices.Equal(got, want) {
		t.Errorf("the moved editor reads %v, want %v", got, want)
	}
	if editor.tokenStatus("$site_editors") != http.StatusForbidden || editor.tokenStatus("$site_reviewers") != http.StatusOK {
		t.Error("the moved editor still gets a token for $site_editors, or none for $site_reviewers")
	}
	if n := reauthorizePushes(t, st, cent.APIURL, "2"); n != 2 {
		t.Errorf("%d Reauthorize pushes to the editor, want 2", n)
	}
	if n := reauthorizePushes(t, st, cent.APIURL, "1"); n != 0 {
		t.Errorf("%d Reauthorize pushes to the user no one changed, want 0", n)
	}
	// The same change again is harmless: the forms set, not toggle.
	post("/admin/group", url.Values{"username": {"editor"}, "group": {"reviewers"}}, "editor is now staff, member of the reviewers group.")
	post("/admin/group", url.Values{"username": {"editor"}, "group": {""}}, "editor is now staff.")
	if got := channels(editor); slices.Contains(got, "$site_reviewers") || slices.Contains(got, "$site_editors") {
		t.Errorf("the editor in no group reads %v", got)
	}
	// The login page shows the roles as they are now.
	body := newBrowser(t, srv).get("/login").body
	_, row, _ := strings.Cut(body, `<tr data-username="staff">`)
	if row, _, _ = strings.Cut(row, "</tr>"); !strings.Contains(row, "<td>plain user</td>") {
		t.Errorf("the login page shows the staff user as %q, want a plain user now", row)
	}
}

// TestAdminWithoutCentrifugo: when Reauthorize fails, the change stands
// (the site's routes follow it) and the admin is told, with 502.
func TestAdminWithoutCentrifugo(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	admin, staff := browserAs(t, srv, "admin"), browserAs(t, srv, "staff")
	r := admin.postForm("/admin/staff", url.Values{"username": {"staff"}, "staff": {"false"}})
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "staff is now plain user.") || !strings.Contains(r.body, "Centrifugo did not answer") {
		t.Errorf("demotion without Centrifugo: %d, want 502 saying so; body:\n%s", r.status, r.body)
	}
	if _, got := staff.channels(); slices.Contains(got, "$site_staff") {
		t.Errorf("the demoted staff user's session still reads %v", got)
	}
}
