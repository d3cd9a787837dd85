package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-instant/instant"
)

// adminAct submits a form of the admin page's row of username, as the
// admin's click does (after choosing group, when not empty), and waits
// for the page that answers to say want.
func adminAct(p *e2ePage, username, action, group, want string) {
	p.t.Helper()
	row := `#users tr[data-username="` + username + `"] `
	// The flash of the previous change goes, so that the wait below
	// sees the answer to this one.
	p.eval(`document.querySelector('#admin-changed')?.remove(); document.querySelector('#admin-error')?.remove(); 0`)
	if group != "" {
		p.do(chromedp.SetValue(chromedp.CSS(row+`select[name="group"]`), group))
	}
	p.do(
		chromedp.Click(chromedp.CSS(row+`button[data-action="`+action+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#admin-changed, #admin-error`)),
	)
	if got := p.strings(`[document.querySelector('#admin-changed, #admin-error').textContent]`); got[0] != want {
		p.t.Fatalf("%s %s: the admin page says %q, want %q", action, username, got[0], want)
	}
}

// TestEndToEndAdminPage: the admin changes users on the admin page, and
// the open pages of the users changed follow without a reload: the
// demoted staff user's page moves $site_staff to "Not for you"; the
// promoted editor's page subscribes to it and shows its next event; the
// editor moved to the reviewers group reads $site_reviewers, and
// $site_editors moves to "Not for you".
func TestEndToEndAdminPage(t *testing.T) {
	t.Parallel()
	e := startE2E(t, serverEmbedded, "e2e-admin", 90*time.Second, 0, 0)
	staff := e.open("demoted staff", "staff")
	editor := e.open("promoted editor", "editor")
	if got := staff.waitLive(); !slices.Contains(got, "$site_staff") {
		t.Fatalf("the staff page holds %v", got)
	}
	if got := editor.waitLive(); slices.Contains(got, "$site_staff") || !slices.Contains(got, "$site_editors") {
		t.Fatalf("the editor page holds %v", got)
	}
	// Marks that a reload would lose.
	staff.eval(`window.__sameLoad = true`)
	editor.eval(`window.__sameLoad = true`)
	admin := e.open("admin page", "admin")
	admin.do(chromedp.Navigate(e.srv.URL+"/admin"), chromedp.WaitVisible(chromedp.ID("users")))

	adminAct(admin, "staff", "demote", "", "staff is now plain user. Their open pages follow now.")
	staff.waitFor("$site_staff to move to Not for you", `(() => {
		const names = sel => [...document.querySelectorAll(sel)].map(li => li.dataset.channel).join(' ');
		return names('#channels .channel') === 'site_public $site_users $site_user:3' &&
			names('#denied .channel').includes('$site_staff') &&
			document.querySelectorAll('#channels [data-state="unsubscribed"]').length === 0;
	})()`)
	// The header follows: the role, and no Broadcast link.
	staff.waitFor("the header to say plain user", `document.querySelector('#whoami').textContent === 'staff (plain user)' &&
		!document.querySelector('.topbar nav a[href="/broadcast"]')`)
	staff.snap("demoted")

	adminAct(admin, "editor", "promote", "", "editor is now staff, member of the editors group. Their open pages follow now.")
	editor.waitFor("$site_staff to be subscribed", `(() => {
		const li = document.querySelector('#channels .channel[data-channel="$site_staff"]');
		return !!li && li.dataset.state === 'subscribed' && !document.querySelector('#denied .channel[data-channel="$site_staff"]');
	})()`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.site.inst.Broadcast(ctx, instant.Event{Channel: "$site_staff", Message: "Welcome to the staff", EventClass: "promotion"}); err != nil {
		t.Fatal(err)
	}
	editor.waitFor("the staff event", `[...document.querySelectorAll('#events .event .event-message')].some(e => e.textContent === 'Welcome to the staff')`)
	editor.waitFor("the header to say staff", `document.querySelector('#whoami').textContent === 'editor (staff)' &&
		!!document.querySelector('.topbar nav a[href="/broadcast"]')`)
	editor.snap("promoted")

	adminAct(admin, "editor", "move", "reviewers", "editor is now staff, member of the reviewers group. Their open pages follow now.")
	editor.waitFor("$site_reviewers to be subscribed and $site_editors denied", `(() => {
		const li = document.querySelector('#channels .channel[data-channel="$site_reviewers"]');
		return !!li && li.dataset.state === 'subscribed' &&
			!document.querySelector('#channels .channel[data-channel="$site_editors"]') &&
			!!document.querySelector('#denied .channel[data-channel="$site_editors"]') &&
			!document.querySelector('#denied .channel[data-channel="$site_reviewers"]');
	})()`)
	if err := e.site.inst.Broadcast(ctx, instant.Event{Channel: "$site_reviewers", Message: "Please review", EventClass: "review"}); err != nil {
		t.Fatal(err)
	}
	editor.waitFor("the reviewers' event", `[...document.querySelectorAll('#events .event .event-message')].some(e => e.textContent === 'Please review')`)
	editor.snap("moved")
	admin.snap("changed")

	if msgs := staff.messages(); slices.Contains(msgs, "Welcome to the staff") {
		t.Errorf("the demoted page shows the staff event: %v", msgs)
	}
	for _, p := range []*e2ePage{staff, editor} {
		if v := p.eval(`window.__sameLoad === true`); v != true {
			t.Errorf("%s: the page was reloaded", p.name)
		}
	}
}
