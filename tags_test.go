package instant_test

// "To others" on the server: Broadcast, BroadcastBatch and BroadcastTx tag
// each publication of an event with its Origin, the generated Centrifugo
// config lets subscribers filter on tags (allow_tags_filter), and client.js
// subscribes with "origin not mine", so the tab that caused an event is not
// sent it at all. Against a real Centrifugo, but for the first test.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// TestPublishTagsTheOrigin: a publication of an event with an Origin
// carries the tag "origin" (the same string as the payload's "origin");
// one without carries no tags.
func TestPublishTagsTheOrigin(t *testing.T) {
	inst, f := fakeInstant(t)
	ctx := context.Background()
	odd := "tab_3-Q"
	if err := inst.Broadcast(ctx, instant.Event{Channels: []string{"a", "b"}, Origin: "tab-1"}); err != nil {
		t.Fatal(err)
	}
	if err := inst.Broadcast(ctx, instant.Event{Channel: "a"}); err != nil {
		t.Fatal(err)
	}
	batch := []instant.Event{{Channel: "a"}, {Channels: []string{"a", "b"}, Origin: odd}, {Channel: "b"}, {Channel: "c", Origin: "tab-2"}}
	if err := inst.BroadcastBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := inst.BroadcastBatch(ctx, []instant.Event{{Channel: "a"}, {Channel: "b"}}); err != nil {
		t.Fatal(err)
	}
	oddTag := odd
	want := [][]string{{"tab-1", "tab-1"}, {""}, {"", oddTag, oddTag, "", "tab-2"}, {"", ""}}
	for req, origins := range want {
		if len(f.requests[req]) != len(origins) {
			t.Fatalf("request %d: %d publications, want %d", req, len(f.requests[req]), len(origins))
		}
		for k, cmd := range f.requests[req] {
			params := cmd["params"].(map[string]any)
			data := params["data"].(map[string]any)
			tags, hasTags := params["tags"].(map[string]any)
			switch {
			case origins[k] == "" && (hasKey(params, "tags") || hasKey(data, "origin")):
				t.Errorf("request %d, publication %d: tags %v, origin %v, want none", req, k, params["tags"], data["origin"])
			case origins[k] != "" && (!hasTags || len(tags) != 1 || tags["origin"] != origins[k] || data["origin"] != origins[k]):
				t.Errorf("request %d, publication %d: tags %v, origin %q, want %q in both", req, k, params["tags"], data["origin"], origins[k])
			}
		}
	}
}

// filtered subscribes lc to channel asking Centrifugo for the publications
// whose tag "origin" is not origin, and counts those it is sent, by the
// first word of their message. It returns the counts, and Centrifugo's
// refusal code (0 when it took the subscription).
func filtered(t *testing.T, lc *liveClient, channel, origin string, withToken bool) (*wireCounts, uint32) {
	t.Helper()
	cfg := centrifuge.SubscriptionConfig{TagsFilter: centrifuge.FilterNeq("origin", origin)}
	if withToken {
		cfg.GetToken = func(centrifuge.SubscriptionTokenEvent) (string, error) {
			return lc.token("/instant/subscription_token", map[string]any{"channel": channel})
		}
	}
	sub, err := lc.c.NewSubscription(channel, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &wireCounts{n: map[string]int{}}
	sub.OnPublication(func(e centrifuge.PublicationEvent) {
		var p struct{ Message string }
		_ = json.Unmarshal(e.Data, &p)
		w.mu.Lock()
		w.n[strings.Fields(p.Message + " ?")[0]]++
		w.mu.Unlock()
	})
	ok, code := awaitSubscribe(t, sub)
	if !ok {
		// Refused: the client may still hold it as subscribing (it retries
		// some refusals); unsubscribed first, it can be removed, and the
		// channel subscribed to again.
		_ = sub.Unsubscribe()
		if err := lc.c.RemoveSubscription(sub); err != nil {
			t.Fatalf("removing the refused subscription to %s: %v", channel, err)
		}
		return nil, code
	}
	return w, 0
}

type wireCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (w *wireCounts) get(word string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n[word]
}

// waitMark waits until every one of ws received the publication whose
// message is mark (sent after the others: a channel keeps its order).
func waitMark(t *testing.T, mark string, ws ...*wireCounts) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, w := range ws {
		for w.get(mark) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s never arrived", mark)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestLiveToOthers: two connections of one user, each subscribed with the
// filter of its own origin to a private channel without a namespace, one
// of a rule's namespace and a public one. 100 events of tab A's origin
// through Broadcast and a mixed BroadcastBatch: Centrifugo sends tab A none
// of them and tab B all; events without an origin go to both.
func TestLiveToOthers(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	a, b := ls.connect(t, &alice), ls.connect(t, &alice)
	channels := []string{"$site_users", "$orders:o1", "site_public"}
	var wa, wb []*wireCounts
	for _, ch := range channels {
		w, code := filtered(t, a, ch, "tab-a", ch[0] == '$')
		if w == nil {
			t.Fatalf("tab A, %s: refused with %d", ch, code)
		}
		wa = append(wa, w)
		if w, code = filtered(t, b, ch, "tab-b", ch[0] == '$'); w == nil {
			t.Fatalf("tab B, %s: refused with %d", ch, code)
		}
		wb = append(wb, w)
	}
	ctx := context.Background()
	for k := range 100 {
		if err := ls.inst.Broadcast(ctx, instant.Event{Channels: channels, Message: fmt.Sprint("mine ", k), Origin: "tab-a"}); err != nil {
			t.Fatal(err)
		}
	}
	var batch []instant.Event
	for k := range 20 {
		ev := instant.Event{Channels: channels, Message: fmt.Sprint("batch-nobody ", k)}
		if k%2 == 0 {
			ev.Origin, ev.Message = "tab-a", fmt.Sprint("batch-mine ", k)
		}
		batch = append(batch, ev)
	}
	batch = append(batch, instant.Event{Channels: channels, Message: "end"})
	if err := ls.inst.BroadcastBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	waitMark(t, "end", append(wa, wb...)...)
	for k, ch := range channels {
		gotA := []int{wa[k].get("mine"), wa[k].get("batch-mine"), wa[k].get("batch-nobody")}
		gotB := []int{wb[k].get("mine"), wb[k].get("batch-mine"), wb[k].get("batch-nobody")}
		if !slices.Equal(gotA, []int{0, 0, 10}) || !slices.Equal(gotB, []int{100, 10, 10}) {
			t.Errorf("%s: tab A was sent %v, tab B %v (its own, its own in a batch, nobody's): want [0 0 10] and [100 10 10]", ch, gotA, gotB)
		}
		t.Logf("%s: of 100 events of its own, tab A was sent %d, tab B %d", ch, gotA[0], gotB[0])
	}
}

// withoutTagsFilter is a config CentrifugoConfig wrote, made as one
// written before allow_tags_filter was: without it anywhere.
func withoutTagsFilter(t *testing.T, raw []byte) []byte {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	ch := cfg["channel"].(map[string]any)
	delete(ch["without_namespace"].(map[string]any), "allow_tags_filter")
	for _, ns := range ch["namespaces"].([]any) {
		delete(ns.(map[string]any), "allow_tags_filter")
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("allow_tags_filter")) {
		t.Fatal("allow_tags_filter left in the config")
	}
	return out
}

// TestLiveTagsFilterWithoutTheOption: a Centrifugo whose namespace has no
// allow_tags_filter refuses a subscription with a filter (107, bad
// request), and takes it without: what client.js falls back on.
func TestLiveTagsFilterWithoutTheOption(t *testing.T) {
	t.Parallel()
	srv, inst, _ := startCentrifugo(t, nil, nil, instant.CentrifugoOptions{}, func(raw []byte) ([]byte, error) { return withoutTagsFilter(t, raw), nil })
	ls := &liveSetup{srv: srv, inst: inst, app: newRouter(inst)}
	lc := ls.connect(t, &alice)
	if w, code := filtered(t, lc, "$site_users", "tab-a", true); w != nil || code != 107 {
		t.Fatalf("a filter where the namespace has no allow_tags_filter: refused with %d, want 107", code)
	}
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("refused without a filter too")
	}
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "tagged", Origin: "tab-a"}); err != nil {
		t.Fatalf("a tagged publication to a server without the option: %v", err)
	}
	lc.waitFor("tagged")
}

// TestLiveBroadcastTxTagsTheOrigin: the outbox rows carry the tag too:
// through Centrifugo's outbox consumer, tab A is sent none of its own
// events, tab B all.
func TestLiveBroadcastTxTagsTheOrigin(t *testing.T) {
	t.Parallel()
	o := startOutbox(t)
	ls := o.node(t, true)
	a, b := ls.connect(t, &alice), ls.connect(t, &alice)
	wa, code := filtered(t, a, "$site_users", "tab-a", true)
	if wa == nil {
		t.Fatalf("tab A refused with %d", code)
	}
	wb, code := filtered(t, b, "$site_users", "tab-b", true)
	if wb == nil {
		t.Fatalf("tab B refused with %d", code)
	}
	ctx := context.Background()
	send := func(ev instant.Event) {
		tx, err := o.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ls.inst.BroadcastTx(ctx, tx, ev); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for k := range 20 {
		send(instant.Event{Channel: "$site_users", Message: fmt.Sprint("mine ", k), Origin: "tab-a"})
	}
	send(instant.Event{Channel: "$site_users", Message: "end"})
	waitMark(t, "end", wa, wb)
	if a, b := wa.get("mine"), wb.get("mine"); a != 0 || b != 20 {
		t.Errorf("of 20 events of tab A through the outbox, tab A was sent %d, tab B %d: want 0 and 20", a, b)
	}
}

// TestClientJSLiveToOthers runs the "to others" part of
// testdata/clientjs_live.mjs: client.js with the real centrifuge-js under
// Node, two tabs of one user, against a real Centrifugo with the generated
// config ("tags") and with one written before allow_tags_filter
// ("untagged"). Tab A causes 100 events on each of three channels.
func TestClientJSLiveToOthers(t *testing.T) {
	t.Parallel()
	node, flags, centrifugeJS := liveNode(t)
	for _, phase := range []string{"tags", "untagged"} {
		t.Run(phase, func(t *testing.T) {
			got := runToOthers(t, node, flags, centrifugeJS, phase)
			text := func(k string) string { b, _ := json.Marshal(got[k]); return string(b) }
			t.Logf("%s: tab A's own events on the wire %s, handed to the page %s, dropped by the helper %v; tab B's %s; by channel %s",
				phase, text("wireA"), text("gotA"), got["droppedA"], text("wireB"), text("byChannelA"))
			t.Logf("%s: after a new origin: on the wire %s, handed to the page %s; tab B %s", phase, text("wireA2"), text("gotA2"), text("wireB2"))
			want := map[string]string{
				// The page sees nothing of its own, the other tab everything.
				"gotA":         `{"mine":0,"nobody":30}`,
				"gotB":         `{"mine":300,"nobody":30}`,
				"wireB":        `{"mine":300,"nobody":30}`,
				"gotA2":        `{"again":0,"fresh":0,"old":0}`,
				"wireB2":       `{"again":30,"fresh":30,"old":30}`,
				"newOrigin":    `true`,
				"unsubscribed": `0`, // the fallback shows the page no refusal
				"wireA":        `{"mine":0,"nobody":30}`,
				"droppedA":     `0`,
				// A new origin is filtered from the next subscribe on.
				"wireA2": `{"again":0,"fresh":30,"old":0}`,
			}
			if phase == "untagged" {
				// Centrifugo sends everything; the helper drops this tab's.
				want["wireA"] = `{"mine":300,"nobody":30}`
				want["droppedA"] = `300`
				want["wireA2"] = `{"again":30,"fresh":30,"old":30}`
			}
			for k, w := range want {
				if text(k) != w {
					t.Errorf("%s: %s, want %s", k, text(k), w)
				}
			}
		})
	}
}

// runToOthers starts Centrifugo (without allow_tags_filter for
// "untagged") and the app, runs the script's phase, broadcasting as it
// asks, and returns its result.
func runToOthers(t *testing.T, node string, flags []string, centrifugeJS, phase string) map[string]any {
	var edits []func([]byte) ([]byte, error)
	if phase == "untagged" {
		edits = append(edits, func(raw []byte) ([]byte, error) { return withoutTagsFilter(t, raw), nil })
	}
	cent, inst, _ := startCentrifugo(t, func(c *instant.Config) { c.PublishTimeout = livePublishTimeout }, func(inst *instant.Instant) error {
		return inst.Authorize("$team:{id}", func(_ *gin.Context, u *instant.User, p map[string]string) (bool, any) {
			return u != nil && p["id"] == u.ID, nil
		})
	}, instant.CentrifugoOptions{}, edits...)
	app := newRouter(inst)
	ann := instant.User{ID: "1", Username: "ann"}
	cookie := newBrowser(t, app).as(&ann).cookieHeader().Get("Cookie")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /as/1/... is the app as ann sees it: both tabs share her session.
		if rest, ok := strings.CutPrefix(r.URL.Path, "/as/1/"); ok {
			r.URL.Path = "/" + rest
			r.Header.Set("Cookie", cookie)
		}
		app.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	return runLiveScript(t, node, flags, centrifugeJS, srv.URL, phase, func(ctx context.Context, msg liveMsg, reply func(any)) {
		switch msg.Do {
		case "burst":
			var err error
			for k := 0; k < msg.N && err == nil; k++ {
				text := fmt.Sprint(msg.Message, " ", k)
				err = broadcastLive(ctx, inst, instant.Event{ID: text, Channel: msg.Channel, Message: text, Origin: msg.Origin})
			}
			if err != nil {
				t.Errorf("broadcast: %v", err)
			}
			reply(map[string]any{"ok": err == nil})
		case "restart":
			cent.Restart(t)
			reply(map[string]any{"ok": true})
		}
	})
}
