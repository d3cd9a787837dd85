package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-instant/instant"
)

// TestEndToEndInChromium drives the real site in headless Chromium, on the
// embedded server and on a real Centrifugo: every role in its own browser
// context (its own cookies), logged in through the form; the superuser
// broadcasts from the broadcast page, and each page must show exactly the
// events of the channels its user may read.
func TestEndToEndInChromium(t *testing.T) {
	t.Parallel()
	for _, server := range []string{serverEmbedded, serverCentrifugo} {
		t.Run(server, func(t *testing.T) {
			t.Parallel()
			endToEnd(t, server)
		})
	}
}

func endToEnd(t *testing.T, server string) {
	started := time.Now()
	// Subscription tokens last 3 s, connection tokens the default: a
	// login that ends shows in the next subscription token refused, with
	// the connection left alone.
	const subTTL = 3 * time.Second
	e := startE2E(t, server, "e2e", 120*time.Second, 0, subTTL)
	srv, open := e.srv, e.open
	admin := open("superuser", "admin")
	staff := open("staff", "staff")
	editor := open("editor", "editor")
	user := open("plain user", "user")
	anon := open("anonymous", "")
	login := e.newPage(nil, "login page")
	login.do(chromedp.Navigate(srv.URL+"/login"), chromedp.WaitVisible(chromedp.ID("accounts")))

	wantChannels := map[*e2ePage][]string{
		admin:  {"site_public", "$site_users", "$site_staff", "$site_admin", "$site_user:4"},
		staff:  {"site_public", "$site_users", "$site_staff", "$site_user:3"},
		editor: {"site_public", "$site_users", "$site_editors", "$site_user:2"},
		user:   {"site_public", "$site_users", "$site_user:1"},
		anon:   {"site_public"},
	}
	for _, p := range []*e2ePage{admin, staff, editor, user, anon} {
		if got := p.waitLive(); !slices.Equal(got, wantChannels[p]) {
			t.Errorf("%s holds %v, want %v", p.name, got, wantChannels[p])
		}
	}
	// Presence: every logged-in page lists the four users on $site_users,
	// live, by the names their Info carries; the anonymous page has no list.
	everyone := []string{"Ada Admin", "Ed Editor", "Stef Staff", "Una User"}
	for _, p := range []*e2ePage{admin, staff, editor, user} {
		p.waitFor("the four users on $site_users", fmt.Sprintf(`(() => {
			const names = [...document.querySelectorAll('#here .member-name')].map(e => e.textContent).sort();
			return JSON.stringify(names) === JSON.stringify(%s) && document.querySelector('#here-count').textContent === '4';
		})()`, jsArray(everyone)))
		p.snap("live")
	}
	if n := anon.eval(`document.querySelectorAll('#here').length`); n != float64(0) {
		t.Errorf("the anonymous page shows a presence list")
	}
	anon.snap("live")
	if denied := user.strings(`[...document.querySelectorAll('#denied .channel')].map(li => li.dataset.channel)`); !slices.Equal(denied, []string{"$site_editors", "$site_reviewers", "$site_staff", "$site_admin"}) {
		t.Errorf("the plain user's page lists %v as not granted", denied)
	}
	// Personal channels: the plain user (1) may not read the editor's (2).
	if status := user.eval(`fetch('/instant/subscription_token', {method: 'POST', headers: {'Content-Type': 'application/json'},
		body: JSON.stringify({channel: '$site_user:2'})}).then(r => r.status)`, chromedp.EvalAwaitPromise); status != float64(http.StatusForbidden) {
		t.Errorf("the plain user asked for the editor's personal channel: %v, want 403", status)
	}
	// The plain user's browser cannot get a token for the superuser channel.
	if status := user.eval(`fetch('/instant/subscription_token', {method: 'POST', headers: {'Content-Type': 'application/json'},
		body: JSON.stringify({channel: '$site_admin'})}).then(r => r.status)`, chromedp.EvalAwaitPromise); status != float64(http.StatusForbidden) {
		t.Errorf("the plain user asked for a $site_admin token: %v, want 403", status)
	}

	// The superuser broadcasts from the broadcast page, in a second tab of
	// the same browser context (same session).
	bpage := e.newPage(admin, "broadcast page")
	bpage.do(chromedp.Navigate(srv.URL+"/broadcast"), chromedp.WaitVisible(chromedp.ID("broadcast-form")))
	bpage.waitLive()

	type sent struct{ message, target, class, data string }
	events := []sent{
		{"For superusers only", "$site_admin", "secret", `{"level": "admin"}`},
		{"Hello, logged-in users", "level:users", "notice", ""},
		{"Editors: new draft", "$site_editors", "draft", `{"doc": 7}`},
		{"Staff meeting at noon", "level:staff", "meeting", ""},
		{"Hello, everyone", "site_public", "announcement", `{"n": 1, "tags": ["demo"]}`},
	}
	for _, ev := range events {
		// SetValue cannot set an empty value (the empty argument
		// arrives as undefined), nor Clear empty a textarea.
		setData := chromedp.Evaluate[chromedp.Void](`document.getElementById('data').value = ''`)
		if ev.data != "" {
			setData = chromedp.SetValue(chromedp.ID("data"), ev.data)
		}
		bpage.do(
			chromedp.SendKeys(chromedp.ID("message"), ev.message),
			chromedp.SetValue(chromedp.ID("target"), ev.target),
			chromedp.SetValue(chromedp.ID("event_class"), ev.class),
			setData,
			chromedp.Click(chromedp.ID("broadcast-submit")),
		)
		bpage.waitFor("the broadcast of "+ev.message, fmt.Sprintf(`(() => {
			const r = document.querySelector('#broadcast-result');
			if (r.dataset.status === 'error') throw new Error(r.textContent);
			return r.dataset.status === 'sent' && r.dataset.message === %q;
		})()`, ev.message))
	}

	want := map[*e2ePage][]string{
		admin:  {"For superusers only", "Hello, logged-in users", "Staff meeting at noon", "Hello, everyone"},
		staff:  {"Hello, logged-in users", "Staff meeting at noon", "Hello, everyone"},
		editor: {"Hello, logged-in users", "Editors: new draft", "Hello, everyone"},
		user:   {"Hello, logged-in users", "Hello, everyone"},
		anon:   {"Hello, everyone"},
	}
	for _, p := range []*e2ePage{admin, staff, editor, user, anon} {
		p.waitFor("the events", fmt.Sprintf(`(() => {
			const shown = [...document.querySelectorAll('#events .event-message')].map(e => e.textContent);
			return %s.every(m => shown.includes(m));
		})()`, jsArray(want[p])))
	}
	time.Sleep(300 * time.Millisecond) // room for an event that should not come
	for _, p := range []*e2ePage{admin, staff, editor, user, anon} {
		got := p.messages()
		slices.Sort(got)
		exp := slices.Clone(want[p])
		slices.Sort(exp)
		if !slices.Equal(got, exp) {
			t.Errorf("%s shows %q, want exactly %q", p.name, got, exp)
		}
	}

	// To everyone but the sender: the broadcast page (the superuser's
	// second tab) sent the events with its origin, so Centrifugo did not
	// send them to it (client.js subscribes with the tags filter "origin
	// not mine"): its helper had none to drop, and its table shows each
	// once, from the site's answers; the superuser's first tab received
	// them.
	sentIDs := bpage.strings(`[...new Set([...document.querySelectorAll('#recent-events tr.recent-event')].map(tr => tr.dataset.id))]`)
	if len(sentIDs) != len(events) {
		t.Errorf("the broadcast page's table holds events %v, want %d", sentIDs, len(events))
	}
	ownBack := bpage.strings(`window.instantDemo.received.filter(id => ` + jsArray(sentIDs) + `.includes(id))`)
	dropped := bpage.eval(`window.instantDemo.live.droppedOwn`)
	if len(ownBack) != 0 || dropped.(float64) != 0 {
		t.Errorf("the sending tab got its own events back: %v (dropped by the helper: %v)", ownBack, dropped)
	}
	if rows := bpage.eval(`(() => { const seen = new Set(); for (const tr of document.querySelectorAll('#recent-events tr.recent-event')) { const k = tr.dataset.id + ' ' + tr.dataset.channel; if (seen.has(k)) return false; seen.add(k); } return true; })()`); rows != true {
		t.Error("the sending tab shows an event twice")
	}
	if got := admin.strings(`window.instantDemo.received.filter(id => ` + jsArray(sentIDs) + `.includes(id))`); len(got) < 4 {
		t.Errorf("the superuser's other tab received %d of the events sent from the broadcast page", len(got))
	}
	bpage.snap("sent")
	admin.snap("received")

	// An event shows its time, channel, class, message and data, and
	// keeps its id.
	row := admin.strings(`(() => {
		const li = [...document.querySelectorAll('#events .event')].find(e => e.querySelector('.event-message').textContent === 'Hello, everyone');
		return [li.dataset.channel, li.querySelector('.event-channel').textContent, li.querySelector('.event-class').textContent,
			li.querySelector('.event-data').textContent, li.querySelector('.event-time').textContent, li.dataset.id];
	})()`)
	if row[0] != "site_public" || row[1] != "site_public" || row[2] != "announcement" || row[3] != `{"n":1,"tags":["demo"]}` || row[4] == "" || len(row[5]) != 24 {
		t.Errorf("the public event is shown as %q", row)
	}

	// The broadcast page counts the events per channel, live.
	bpage.waitFor("the counts", `(() => {
		const count = ch => Number(document.querySelector('#channel-counts tr[data-channel="' + ch + '"] .count').textContent);
		return count('$site_admin') === 1 && count('$site_users') === 1 && count('$site_editors') === 1 &&
			count('$site_staff') === 1 && count('site_public') === 1;
	})()`)

	// A bad JSON data field is refused with the server's message.
	bpage.do(
		chromedp.SendKeys(chromedp.ID("message"), "broken"),
		chromedp.SetValue(chromedp.ID("target"), "site_public"),
		chromedp.SetValue(chromedp.ID("data"), `{"oops":`),
		chromedp.Click(chromedp.ID("broadcast-submit")),
	)
	bpage.waitFor("the refusal", `(() => {
		const r = document.querySelector('#broadcast-result');
		return r.dataset.status === 'error' && r.textContent.includes('not valid JSON');
	})()`)

	// The server closes the plain user's connection (as on a logout
	// elsewhere, or a role change): the page shows that it reconnects,
	// then is connected again with every subscription back.
	user.eval(`(() => {
		const el = document.querySelector('#state');
		window.__states = [];
		// Each record holds the value before its change: the values
		// after are the next records' old values, then the current one.
		new MutationObserver(records => {
			for (let k = 1; k < records.length; k++) window.__states.push(records[k].oldValue);
			window.__states.push(el.dataset.state);
		}).observe(el, {attributes: true, attributeFilter: ['data-state'], attributeOldValue: true});
		return 0;
	})()`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := e.site.inst.Disconnect(ctx, "1") // the demo account "user"
	cancel()
	if err != nil {
		t.Fatalf("disconnecting the plain user: %v", err)
	}
	user.waitFor("the reconnection", `(() => {
		const s = window.__states, el = document.querySelector('#state');
		const i = s.indexOf('reconnecting');
		return i >= 0 && s.indexOf('connected', i) > i && el.dataset.state === 'connected' && el.textContent === 'connected';
	})()`)
	if got := user.waitLive(); !slices.Equal(got, wantChannels[user]) {
		t.Errorf("after reconnecting the plain user holds %v, want %v", got, wantChannels[user])
	}
	user.snap("reconnected")
	t.Logf("the plain user's page went through %v", user.strings(`window.__states`))

	// Event ids come from whoever broadcasts, and may equal the page's own
	// element ids ("count" against #event-count). One event sent to two
	// channels is shown once, listing both. This also shows that the
	// reconnected page receives private events again.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ch := range []string{"site_public", "$site_users"} {
		ev := instant.Event{ID: "count", Channel: ch, Message: "An event whose id is count", EventClass: "collision"}
		if err := e.site.inst.Broadcast(ctx, ev); err != nil {
			t.Fatalf("broadcast to %s: %v", ch, err)
		}
	}
	for p, channels := range map[*e2ePage]string{user: "$site_users, site_public", anon: "site_public"} {
		p.waitFor("the event with the id count", fmt.Sprintf(`(() => {
			const items = [...document.querySelectorAll('#events .event')];
			const hits = items.filter(li => li.dataset.id === 'count');
			const channels = hits.length === 1 ? hits[0].querySelector('.event-channel').textContent.split(', ').sort().join(', ') : '';
			return hits.length === 1 && channels === %q &&
				document.querySelector('#event-count').textContent === String(items.length);
		})()`, channels))
	}

	// Logging out through the header button leaves an anonymous page that
	// reads the public channel only. The logout also closes the visitor's
	// connection in another tab: that tab asks the site again, lists its
	// private channels under "Not for you", shows an anonymous header and
	// connects again.
	loggedOut := e.open("logged out", "user")
	loggedOut.waitLive()
	elsewhere := e.newPage(loggedOut, "logged out elsewhere")
	elsewhere.do(chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("events")))
	if got := elsewhere.waitLive(); !slices.Equal(got, wantChannels[user]) {
		t.Errorf("the second tab holds %v, want %v", got, wantChannels[user])
	}
	loggedOut.do(chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login-link")))
	if got := loggedOut.waitLive(); !slices.Equal(got, []string{"site_public"}) {
		t.Errorf("after logout the page holds %v, want [site_public]", got)
	}
	elsewhere.waitFor("the private channels to move to Not for you", `(() => {
		const names = sel => [...document.querySelectorAll(sel)].map(li => li.dataset.channel).join(' ');
		const state = document.querySelector('#state').dataset.state;
		return state === 'connected' && names('#channels .channel') === 'site_public' &&
			names('#channels .channel[data-state="subscribed"]') === 'site_public' &&
			names('#denied .channel') === '$site_users $site_editors $site_reviewers $site_staff $site_admin $site_user:1' &&
			document.querySelectorAll('[data-state="unsubscribed"]').length === 0 &&
			document.querySelector('#whoami').dataset.user === '' && !!document.querySelector('#login-link') &&
			!document.querySelector('#logout');
	})()`)

	// A login that ends without the page knowing (it expired, say): the
	// editor's next subscription token is refused, so the page asks the
	// site again and moves its private channels to "Not for you", on the
	// same connection. (The denied list keeps its order within a level:
	// $site_reviewers came with the page, $site_editors joins after it.)
	editor.eval(`window.__connectedCount = 0; window.instantDemo.centrifuge.on('connected', () => window.__connectedCount++); 0`)
	e.site.logins.endAll()
	editor.waitFor("the refused channels to move to Not for you", `(() => {
		const names = sel => [...document.querySelectorAll(sel)].map(li => li.dataset.channel).join(' ');
		return names('#channels .channel') === 'site_public' &&
			names('#channels .channel[data-state="subscribed"]') === 'site_public' &&
			names('#denied .channel') === '$site_users $site_reviewers $site_editors $site_staff $site_admin $site_user:2' &&
			document.querySelectorAll('[data-state="unsubscribed"]').length === 0;
	})()`)
	editor.snap("refused")
	if state := editor.strings(`[document.querySelector('#state').dataset.state, String(window.__connectedCount)]`); !slices.Equal(state, []string{"connected", "0"}) {
		t.Errorf("the editor's state and reconnections: %v, want connected without a reconnection", state)
	}
	t.Logf("end-to-end run took %v", time.Since(started).Round(time.Millisecond))
}

// TestEndToEndTokensAreRefreshed runs with two-second tokens: the page
// must fetch new ones from the site and keep receiving private events
// without losing its connection.
func TestEndToEndTokensAreRefreshed(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	e := startE2E(t, serverEmbedded, "e2e-refresh", 45*time.Second, ttl, ttl)
	user := e.open("plain user", "user")
	user.waitLive()
	auths := e.hitsOf("/instant/auth")
	// Mark the page: a reload or a lost connection would show.
	user.eval(`window.__connectedCount = 0; window.instantDemo.centrifuge.on('connected', () => window.__connectedCount++); 0`)

	time.Sleep(3*ttl + time.Second) // every token has expired at least twice

	// Every token comes from the batched auth route: the connection's and
	// the channels' together, a request a round of refreshes.
	if got := e.hitsOf("/instant/auth"); got < auths+2 {
		t.Errorf("token requests: %d after the start, want refreshes", got-auths)
	}
	if got := e.hitsOf("/instant/connection_token") + e.hitsOf("/instant/subscription_token"); got != 0 {
		t.Errorf("the single-token routes were asked %d times; client.js batches through auth", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.site.inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "after the refresh"}); err != nil {
		t.Fatal(err)
	}
	user.waitFor("the event after the refresh", `[...document.querySelectorAll('#events .event-message')].some(e => e.textContent === 'after the refresh')`)
	if state := user.strings(`[document.querySelector('#state').dataset.state, String(window.__connectedCount)]`); !slices.Equal(state, []string{"connected", "0"}) {
		t.Errorf("state and reconnections after the refresh: %v, want connected without a reconnection", state)
	}

	// The login ends without the page knowing (it expired, say). Here the
	// connection token is refreshed too: Centrifugo closes a connection
	// whose new token names no user ("invalid token"), and whichever comes
	// first, that or the refused subscription token, the page asks the
	// site again, moves its private channel to "Not for you" and ends up
	// connected, anonymous.
	e.site.logins.endAll()
	user.waitFor("the page to carry on anonymous", `(() => {
		const names = sel => [...document.querySelectorAll(sel)].map(li => li.dataset.channel).join(' ');
		return names('#channels .channel') === 'site_public' &&
			names('#channels .channel[data-state="subscribed"]') === 'site_public' &&
			names('#denied .channel') === '$site_users $site_editors $site_reviewers $site_staff $site_admin $site_user:1' &&
			document.querySelectorAll('[data-state="unsubscribed"]').length === 0 &&
			document.querySelector('#state').dataset.state === 'connected';
	})()`)
	user.snap("anonymous-again")
}
