package main

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// ruleChannelPage runs in a tab: the page's own use of client.js for a
// rule's channel, as a user's page would write it, with presence on it.
const ruleChannelPage = `(async () => {
	const { Instant } = await import('/instant/client.js');
	const rule = new Instant(window.Centrifuge, { presence: ['$project-7'] });
	rule.subscribe('$project-7');
	rule.log = [];
	rule.on('event', (ev, channel) => rule.log.push(channel + ' ' + ev.message));
	// The README's presence example, as written.
	rule.here('$project-7', (members) => { rule.names = members.map((m) => m.info.name ?? m.user).sort().join(', '); });
	window.__rule = rule;
	await rule.start();
	return 0;
})()`

// TestEndToEndRuleChannel: pages subscribe to a rule's channel with
// live.subscribe('$project-7'). Visitors the rule allows receive its
// events and see who is there; a visitor it refuses finds it under
// denied. A page pays the app one request for the list of channels and
// ONE for the connection and every private channel's token, the rule's
// included.
func TestEndToEndRuleChannel(t *testing.T) {
	t.Parallel()
	e := startE2E(t, serverEmbedded, "e2e-rule", 60*time.Second, 0, 0)
	err := e.site.inst.Authorize("$project-{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
		return u != nil && (u.Username == "editor" || u.Username == "staff") && p["id"] == "7", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each page opened alone, so that the requests counted are its own.
	openWithRule := func(name, username string, granted bool) *e2ePage {
		p := e.open(name, username)
		p.waitLive()
		channels, auths := e.hitsOf("/instant/channels"), e.hitsOf("/instant/auth")
		p.eval(ruleChannelPage, chromedp.EvalAwaitPromise)
		if granted {
			p.waitFor("the subscription to $project-7", `window.__rule.state === 'connected' &&
				window.__rule.channels.some((c) => c.name === '$project-7' && c.level === 'rule') &&
				window.__rule.client.getSubscription('$project-7').state === 'subscribed'`)
		} else {
			p.waitFor("$project-7 under denied", `window.__rule.state === 'connected' && window.__rule.denied.includes('$project-7') &&
				!window.__rule.channels.some((c) => c.name === '$project-7')`)
		}
		if c, a := e.hitsOf("/instant/channels")-channels, e.hitsOf("/instant/auth")-auths; c != 1 || a != 1 {
			t.Errorf("%s: the helper's start cost %d requests to channels and %d to auth, want 1 and 1", name, c, a)
		}
		return p
	}
	editor := openWithRule("editor", "editor", true)
	staff := openWithRule("staff", "staff", true)
	user := openWithRule("plain user", "user", false)
	if n := e.hitsOf("/instant/connection_token") + e.hitsOf("/instant/subscription_token"); n != 0 {
		t.Errorf("the pages asked the one-token routes %d times, want none (the batch route serves them)", n)
	}

	// Presence on the rule's channel, by the names the users' Info carry.
	editor.waitFor("both users on $project-7", `window.__rule.names === 'Ed Editor, Stef Staff'`)
	editor.snap("rule-presence")

	// An event on the rule's channel reaches the pages the rule allows.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.site.inst.Broadcast(ctx, instant.Event{ID: "p7-1", Channel: "$project-7", Message: "Project 7 news"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*e2ePage{editor, staff} {
		p.waitFor("the rule channel's event", `window.__rule.log.join('|') === '$project-7 Project 7 news'`)
	}
	time.Sleep(300 * time.Millisecond) // room for an event that should not come
	if got := user.strings(`window.__rule.log`); len(got) != 0 {
		t.Errorf("the refused visitor received %q", got)
	}
	user.snap("rule-denied")

	// The demo page's own helper takes the channel too: it is listed on
	// the page and its events shown there.
	auths := e.hitsOf("/instant/auth")
	editor.eval(`window.instantDemo.live.subscribe('$project-7'); 0`)
	editor.waitFor("$project-7 on the page", `(() => {
		const li = document.querySelector('#channels .channel[data-channel="$project-7"]');
		return !!li && li.dataset.state === 'subscribed';
	})()`)
	if a := e.hitsOf("/instant/auth") - auths; a != 1 {
		t.Errorf("subscribing to one channel cost %d requests to auth, want 1", a)
	}
	if err := e.site.inst.Broadcast(ctx, instant.Event{ID: "p7-2", Channel: "$project-7", Message: "Shown on the page"}); err != nil {
		t.Fatal(err)
	}
	editor.waitFor("the event on the page", `[...document.querySelectorAll('#events .event-message')].some((m) => m.textContent === 'Shown on the page')`)
	editor.snap("rule-page")

	// The staff member's page unsubscribes: the editor sees them leave.
	staff.eval(`window.__rule.unsubscribe('$project-7'); 0`)
	editor.waitFor("the staff member leaving $project-7", `window.__rule.names === 'Ed Editor'`)
}
