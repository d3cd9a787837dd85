package instant_test

// Events that fail safe: no channel is no send, a size Centrifugo
// delivers, a checked origin.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// countingExecer stands in for a transaction in unit tests of what
// BroadcastTx refuses before it writes: it counts the statements run.
type countingExecer struct{ n atomic.Int32 }

func (e *countingExecer) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	e.n.Add(1)
	return nil, errors.New("no database here")
}

// TestEventWithoutChannelIsRefused: an event that names no channel, no
// Users and no Target level was published to the public channel (an empty
// variable sent a "salary report" to anonymous visitors). It is
// ErrNoChannel on every path, and nothing is sent; a chosen level still
// reaches its first channel.
func TestEventWithoutChannelIsRefused(t *testing.T) {
	inst, f := fakeInstant(t)
	ctx := context.Background()
	for _, ev := range []instant.Event{
		{Message: "salary report", Data: map[string]int{"salary": 150000}},
		{Message: "salary report", Users: []string{}, Channels: []string{}},
		{},
	} {
		if err := inst.Broadcast(ctx, ev); !errors.Is(err, instant.ErrNoChannel) {
			t.Errorf("Broadcast(%+v) = %v, want ErrNoChannel", ev, err)
		}
		err := inst.BroadcastBatch(ctx, []instant.Event{{Channel: "a", Message: "fine"}, ev})
		if !errors.Is(err, instant.ErrNoChannel) || !strings.Contains(err.Error(), "event 1") {
			t.Errorf("BroadcastBatch with %+v = %v, want ErrNoChannel naming event 1", ev, err)
		}
		var tx countingExecer
		if err := inst.BroadcastTx(ctx, &tx, ev); !errors.Is(err, instant.ErrNoChannel) || tx.n.Load() != 0 {
			t.Errorf("BroadcastTx(%+v) = %v after %d statements, want ErrNoChannel and none", ev, err, tx.n.Load())
		}
	}
	for _, target := range []instant.Level{instant.LevelPersonal, instant.Level(-1), instant.Level(42)} {
		if err := inst.Broadcast(ctx, instant.Event{Message: "x", Target: target}); !errors.Is(err, instant.ErrNoChannel) {
			t.Errorf("Target %v: %v, want ErrNoChannel", target, err)
		}
	}
	if sent := f.sent(); sent != 0 {
		t.Fatalf("%d requests sent for events with no channel", sent)
	}

	// The level, when chosen, still picks its first channel.
	if err := inst.Broadcast(ctx, instant.Event{Message: "hello all", Target: instant.LevelPublic}); err != nil {
		t.Fatal(err)
	}
	if chans, payloads := f.published(t, 0); strings.Join(chans, ",") != "site_public" || payloads[0]["message"] != "hello all" {
		t.Errorf("Target LevelPublic went to %v: %v", chans, payloads)
	}
	if err := inst.BroadcastBatch(ctx, []instant.Event{{Message: "staff", Target: instant.LevelStaff}}); err != nil {
		t.Fatal(err)
	}
	if chans, _ := f.published(t, 1); strings.Join(chans, ",") != "$site_staff" {
		t.Errorf("Target LevelStaff in a batch went to %v", chans)
	}
}

// TestZeroLevelIsNone: the levels start at 1, so that a zero Target means
// none; their names and order are unchanged.
func TestZeroLevelIsNone(t *testing.T) {
	var zero instant.Level
	if zero.String() != "none" {
		t.Errorf("Level(0).String() = %q, want none", zero.String())
	}
	names := []string{"public", "users", "groups", "staff", "superuser", "personal"}
	levels := []instant.Level{instant.LevelPublic, instant.LevelUsers, instant.LevelGroups, instant.LevelStaff, instant.LevelSuperuser, instant.LevelPersonal}
	for k, l := range levels {
		if int(l) != k+1 || l.String() != names[k] {
			t.Errorf("level %d is %d %q, want %d %q", k, int(l), l.String(), k+1, names[k])
		}
	}
	if got := instant.Level(7).String(); got != "Level(7)" {
		t.Errorf("Level(7).String() = %q", got)
	}
	inst := newInstant(t, testConfig())
	if levelChannels(inst, zero) != nil || levelChannels(inst, instant.LevelPersonal) != nil {
		t.Error("Channels lists channels of no level, or personal ones")
	}
	if got := levelChannels(inst, instant.LevelPublic); strings.Join(got, ",") != "site_public" {
		t.Errorf("Channels at LevelPublic: %v", got)
	}
	// GET channels names the levels as before.
	_, body := newBrowser(t, newRouter(inst)).as(&gina).get("/instant/channels")
	var levelsSeen []string
	for _, c := range body["channels"].([]any) {
		levelsSeen = append(levelsSeen, c.(map[string]any)["level"].(string))
	}
	if got := strings.Join(levelsSeen, ","); got != "public,users,groups,personal" {
		t.Errorf("GET channels levels %s", got)
	}
}

// TestEventOriginCharacters: Event.Origin is checked as Origin(c) checks
// the header (1 to 64 letters, digits, '-' and '_'), not only its length.
func TestEventOriginCharacters(t *testing.T) {
	inst, f := fakeInstant(t)
	ctx := context.Background()
	for _, o := range []string{"a b", "<script>", "tab\"1", "\u00e9t\u00e9", "tab\n1", "tab/1", strings.Repeat("o", 65)} {
		ev := instant.Event{Channel: "news", Origin: o}
		if err := inst.Broadcast(ctx, ev); !errors.Is(err, instant.ErrInvalidEvent) {
			t.Errorf("Origin %q: %v, want ErrInvalidEvent", o, err)
		}
		if err := inst.BroadcastBatch(ctx, []instant.Event{ev}); !errors.Is(err, instant.ErrInvalidEvent) {
			t.Errorf("Origin %q in a batch: %v, want ErrInvalidEvent", o, err)
		}
	}
	if sent := f.sent(); sent != 0 {
		t.Fatalf("%d requests sent for bad origins", sent)
	}
	for _, o := range []string{"", "t", "tab-1_A", strings.Repeat("x", 64)} {
		if err := inst.Broadcast(ctx, instant.Event{Channel: "news", Origin: o}); err != nil {
			t.Errorf("Origin %q: %v", o, err)
		}
	}
}

// eventBound is the largest publication Event's doc promises: 1 MiB less
// 4 KiB.
const eventBound = 1_044_480

// boundedEvent returns an event to channel whose payload is exactly
// eventBound+over bytes when its date has nanoseconds of 9 digits, and
// 0 to 10 bytes less when the date is shorter (RFC3339Nano drops trailing
// zeros: 20 to 30 characters).
func boundedEvent(channel, id string, over int) instant.Event {
	skeleton, _ := json.Marshal(map[string]string{
		"id": id, "channel": channel, "message": "", "event_class": "big", "site": "site",
		"date": "2006-01-02T15:04:05.123456789Z",
	})
	return instant.Event{ID: id, Channel: channel, EventClass: "big", Message: strings.Repeat("m", eventBound+over-len(skeleton))}
}

// TestLiveEventSizeBound: Broadcast had no size bound (a 64 MiB message
// went through). An event over the bound is refused before anything is
// sent, on every path; one at the bound is delivered by the real
// Centrifugo to a real client. And the bound is Centrifugo's: a
// publication of exactly the bound, sent straight to its API, arrives,
// one of 1 MiB does not (Centrifugo drops the subscriber as slow).
func TestLiveEventSizeBound(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{})
	ctx := context.Background()
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("alice could not subscribe")
	}

	// Over the bound, whatever the date's length: refused, nothing sent.
	over := boundedEvent("$site_users", "over", 11)
	huge := instant.Event{Channel: "$site_users", Message: "huge", Data: json.RawMessage(bytes.Repeat([]byte("1"), 8<<20))}
	for name, ev := range map[string]instant.Event{"just over": over, "8 MiB of data": huge} {
		err := ls.inst.Broadcast(ctx, ev)
		if !errors.Is(err, instant.ErrInvalidEvent) || !strings.Contains(err.Error(), "1044480") {
			t.Errorf("%s: Broadcast = %.300v, want ErrInvalidEvent naming the bound", name, err)
		}
		if err := ls.inst.BroadcastBatch(ctx, []instant.Event{{Channel: "$site_users", Message: "first"}, ev}); !errors.Is(err, instant.ErrInvalidEvent) {
			t.Errorf("%s: BroadcastBatch = %.300v, want ErrInvalidEvent", name, err)
		}
		var tx countingExecer
		if err := ls.inst.BroadcastTx(ctx, &tx, ev); !errors.Is(err, instant.ErrInvalidEvent) || tx.n.Load() != 0 {
			t.Errorf("%s: BroadcastTx = %.300v after %d statements", name, err, tx.n.Load())
		}
	}
	// A long Message or Users fan-out over the bound, too.
	if err := ls.inst.Broadcast(ctx, instant.Event{Users: []string{"1", "2"}, Message: strings.Repeat("m", eventBound)}); !errors.Is(err, instant.ErrInvalidEvent) {
		t.Errorf("a message of the bound alone: %v", err)
	}

	// From here on, a drop of the connection is recorded.
	dropped := make(chan uint32, 1)
	drop := func(code uint32) {
		select {
		case dropped <- code:
		default:
		}
	}
	lc.c.OnDisconnected(func(e centrifuge.DisconnectedEvent) { drop(e.Code) })
	lc.c.OnConnecting(func(e centrifuge.ConnectingEvent) { drop(e.Code) })

	// At the bound (0 to 10 bytes under it, with the date's length): sent
	// and received whole.
	at := boundedEvent("$site_users", "at", 0)
	if err := ls.inst.Broadcast(ctx, at); err != nil {
		t.Fatalf("an event at the bound: %v", err)
	}
	got := lc.waitFor(at.Message)
	for _, p := range got {
		if p["message"] == "first" || p["id"] == "over" {
			t.Errorf("a refused event was delivered: %.100v", p)
		}
	}

	// The bound is what Centrifugo delivers: straight to its API, a
	// publication of exactly the bound arrives and the subscriber stays;
	// one of 1 MiB makes Centrifugo drop the subscriber as slow (3008),
	// whether or not the publication was written out first.
	raw := func(message string, size int) []byte {
		head := `{"message":"` + message + `","pad":"`
		return []byte(head + strings.Repeat("p", size-len(head)-2) + `"}`)
	}
	publish := func(data []byte) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"channel": "$site_users", "data": json.RawMessage(data)})
		req, _ := http.NewRequest(http.MethodPost, ls.srv.APIURL+"/publish", bytes.NewReader(body))
		req.Header.Set("Authorization", "apikey "+testAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := centrifugotest.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		reply, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(reply, []byte(`"result"`)) {
			t.Fatalf("publish of %d bytes: %d %.200s", len(data), resp.StatusCode, reply)
		}
	}
	publish(raw("raw at the bound", eventBound))
	lc.waitFor("raw at the bound")
	if err := ls.inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "after the bound"}); err != nil {
		t.Fatal(err)
	}
	lc.waitFor("after the bound")
	select {
	case code := <-dropped:
		t.Fatalf("publications at the bound dropped the subscriber (code %d)", code)
	default:
	}
	publish(raw("raw of 1 MiB", 1<<20))
	select {
	case code := <-dropped:
		if code != 3008 {
			t.Errorf("a 1 MiB publication dropped the subscriber with code %d, want 3008 (slow)", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("a 1 MiB publication did not drop the subscriber: the bound may be too low for this Centrifugo")
	}
}

// TestBoundedEventSizes: at and over the bound exactly, through a
// stand-in that records what it receives: the payload of each channel is
// counted, the longest channel name included.
func TestBoundedEventSizes(t *testing.T) {
	inst, f := fakeInstant(t)
	ctx := context.Background()
	// Whatever the date's length, 11 bytes over is over.
	if err := inst.Broadcast(ctx, boundedEvent("$site_users", "over", 11)); !errors.Is(err, instant.ErrInvalidEvent) {
		t.Errorf("just over the bound: %v", err)
	}
	// The same event fits one channel but not a longer one beside it.
	ev := boundedEvent("$site_users", "two", 0)
	ev.Channels = []string{"$site_users_and_more"}
	if err := inst.Broadcast(ctx, ev); !errors.Is(err, instant.ErrInvalidEvent) {
		t.Errorf("an event over the bound on its second channel: %v", err)
	}
	// Each publication fits, but 5,000 copies of 100 KB (500 MB) are more
	// than one event may add up to: refused before they are encoded.
	users := make([]string, 5_000)
	for k := range users {
		users[k] = fmt.Sprint(k)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := inst.Broadcast(ctx, instant.Event{Users: users, Message: strings.Repeat("m", 100<<10)})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, instant.ErrInvalidEvent) || !strings.Contains(err.Error(), "256 MiB") {
		t.Errorf("5,000 publications of 100 KB: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("refusing 500 MB of publications allocated %d MiB", alloc>>20)
	}
	if sent := f.sent(); sent != 0 {
		t.Fatalf("%d requests sent for events over the bound", sent)
	}
	if err := inst.Broadcast(ctx, boundedEvent("$site_users", "at", 0)); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	f.mu.Lock()
	data, _ := json.Marshal(f.requests[0][0]["params"].(map[string]any)["data"])
	f.mu.Unlock()
	if n := len(data); n > eventBound || n < eventBound-10 {
		t.Errorf("the payload at the bound is %d bytes, want %d less 0 to 10", n, eventBound)
	}
}

// TestBroadcastToManyUsers: 3,000 users in one event (past the few that
// are deduplicated by scanning, with duplicates) is one request of one
// publication each, once each, in the order given.
func TestBroadcastToManyUsers(t *testing.T) {
	inst, f := fakeInstant(t)
	users := make([]string, 0, 3_001)
	for k := range 3_000 {
		users = append(users, fmt.Sprint(k))
	}
	users = append(users, "7")
	if err := inst.Broadcast(context.Background(), instant.Event{Channels: []string{"a", "a"}, Users: users, Message: "m"}); err != nil {
		t.Fatal(err)
	}
	chans, payloads := f.published(t, 0)
	if len(chans) != 3_001 || chans[0] != "a" || chans[1] != inst.UserChannel("0") || chans[3_000] != inst.UserChannel("2999") {
		t.Fatalf("%d channels, first %v, last %v", len(chans), chans[:2], chans[len(chans)-1])
	}
	for k, p := range payloads {
		if p["channel"] != chans[k] || p["id"] != payloads[0]["id"] {
			t.Fatalf("payload %d: %v", k, p)
		}
	}
}

// nested returns n arrays one inside the other: JSON n levels deep.
func nested(n int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", n) + "1" + strings.Repeat("]", n))
}

// nestedMap returns n maps one inside the other: Data n levels deep as
// json.Marshal encodes it.
func nestedMap(n int) any {
	var v any = 1
	for range n {
		v = map[string]any{"a": v}
	}
	return v
}

// refusedEverywhere checks that ev (its Channel set) is refused with
// ErrInvalidEvent by Broadcast, by BroadcastBatch as the event of index 1
// after a good one, and by BroadcastTx before any statement, with an error
// holding want.
func refusedEverywhere(t *testing.T, inst *instant.Instant, name string, ev instant.Event, want string) {
	t.Helper()
	ctx := context.Background()
	if err := inst.Broadcast(ctx, ev); !errors.Is(err, instant.ErrInvalidEvent) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: Broadcast = %.300v, want ErrInvalidEvent saying %q", name, err, want)
	}
	err := inst.BroadcastBatch(ctx, []instant.Event{{Channel: ev.Channel, Message: "good"}, ev, {Channel: ev.Channel, Message: "good too"}})
	if !errors.Is(err, instant.ErrInvalidEvent) || !strings.Contains(err.Error(), "event 1") || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: BroadcastBatch = %.300v, want ErrInvalidEvent naming event 1", name, err)
	}
	var tx countingExecer
	if err := inst.BroadcastTx(ctx, &tx, ev); !errors.Is(err, instant.ErrInvalidEvent) || tx.n.Load() != 0 {
		t.Errorf("%s: BroadcastTx = %.300v after %d statements, want ErrInvalidEvent and none", name, err, tx.n.Load())
	}
}

// TestEventsMustBeUTF8: bytes that are not UTF-8 in Data (a
// json.RawMessage passes json.Valid) went to Centrifugo, which sends them
// in a websocket text frame: every browser on the channel dropped its
// connection, and with history again at each reconnect. Every field of an
// event is refused with ErrInvalidEvent on every path before anything is
// sent (a string field too, rather than json.Marshal's U+FFFD; an ID
// above all: two cleaned IDs would be one idempotency key), and valid
// UTF-8 of every width still goes out as it is.
func TestEventsMustBeUTF8(t *testing.T) {
	inst, f := fakeInstant(t)
	for name, ev := range map[string]instant.Event{
		"raw data":              {Data: json.RawMessage("{\"name\":\"\xff\"}")},
		"raw data, a key":       {Data: json.RawMessage("{\"\xc3\x28\":1}")},
		"raw data, cut rune":    {Data: json.RawMessage("[\"\xe2\x98\"]")},
		"raw data, surrogate":   {Data: json.RawMessage("\"\xed\xa0\x80\"")}, // CESU-8, not UTF-8
		"raw data inside a map": {Data: map[string]any{"nested": json.RawMessage("\"\xff\xfe\"")}},
		"message":               {Message: "caf\xe9"},
		"event class":           {EventClass: "order.\xff"},
		"site":                  {Site: "\xfeshop"},
		"id":                    {ID: "order-7-\xff"},
	} {
		ev.Channel = "$site_users"
		refusedEverywhere(t, inst, name, ev, "UTF-8")
	}
	// Two IDs that would clean to the same one are both refused.
	for _, id := range []string{"e-\xff", "e-\xfe"} {
		if err := inst.Broadcast(context.Background(), instant.Event{ID: id, Channel: "$site_users"}); !errors.Is(err, instant.ErrInvalidEvent) {
			t.Errorf("ID %q: %v", id, err)
		}
	}
	if n := f.sent(); n != 0 {
		t.Fatalf("%d requests sent for events that are not UTF-8", n)
	}

	ok := instant.Event{ID: "été-☃-🎉", Channel: "$site_users", Message: "café ☃ 🎉", EventClass: "ünï", Site: "Ṡite",
		Data: json.RawMessage(`{"s":"é ☃ 🎉 \ud83c\udf89","ü":[1]}`)}
	if err := inst.Broadcast(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	_, payloads := f.published(t, 0)
	p := payloads[0]
	if p["id"] != ok.ID || p["message"] != ok.Message || p["event_class"] != ok.EventClass || p["site"] != ok.Site || mustJSON(p["data"]) != `{"s":"é ☃ 🎉 🎉","ü":[1]}` {
		t.Errorf("valid UTF-8 changed on the way: %v", p)
	}
}

// TestEventDepthBound: JSON nested about 10,000 deep passed json.Valid,
// and Centrifugo's decoder refused the request (HTTP 400, the good events
// of a batch with it) or skipped the outbox row after the commit. Data
// nests at most 64 levels, as a json.RawMessage or as json.Marshal
// encodes it; deeper is refused before anything is sent, and a batch names
// the event.
func TestEventDepthBound(t *testing.T) {
	inst, f := fakeInstant(t)
	ctx := context.Background()
	for name, data := range map[string]any{"raw": nested(64), "map": nestedMap(64), "object": json.RawMessage(`{"a":` + string(nested(63)) + `}`)} {
		if err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: "at the bound " + name, Data: data}); err != nil {
			t.Errorf("%s 64 deep: %v", name, err)
		}
	}
	if n := f.sent(); n != 3 {
		t.Fatalf("%d requests for 3 events at the bound", n)
	}
	for name, data := range map[string]any{
		"raw 65":           nested(65),
		"map 65":           nestedMap(65),
		"raw 9,999":        nested(9999),
		"map 9,999":        nestedMap(9999),
		"in a key's value": json.RawMessage(`{"a":{"b":` + string(nested(64)) + `}}`),
	} {
		refusedEverywhere(t, inst, name, instant.Event{Channel: "$site_users", Message: "deep", Data: data}, "64")
	}
	// A batch with one deep event among good ones sends none and says which.
	batch := []instant.Event{{Channel: "$site_users", Message: "a"}, {Channel: "site_public", Message: "b"}, {Channel: "$site_users", Data: nested(9999)}, {Channel: "$site_users", Message: "d"}}
	if err := inst.BroadcastBatch(ctx, batch); !errors.Is(err, instant.ErrInvalidEvent) || !strings.Contains(err.Error(), "event 2") {
		t.Errorf("BroadcastBatch = %.300v, want ErrInvalidEvent naming event 2", err)
	}
	if n := f.sent(); n != 3 {
		t.Fatalf("%d requests after the refused events, want the 3 before", n)
	}
}

// TestLiveBadEventsNeverReachSubscribers: against Centrifugo with history,
// an event that is not UTF-8 or too deep is refused and never published
// (nothing in the history for a reconnect to recover), a batch holding
// one sends none of its events and names it, and the subscriber stays
// connected and receives the next good event. Centrifugo itself refuses
// the deep event's request (HTTP 400), which is why it must never go out,
// and takes JSON deeper than the bound: the bound is well below its own.
func TestLiveBadEventsNeverReachSubscribers(t *testing.T) {
	t.Parallel()
	ls := startLive(t, withHistory())
	ctx := context.Background()
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("alice could not subscribe")
	}
	dropped := make(chan uint32, 8)
	lc.c.OnDisconnected(func(e centrifuge.DisconnectedEvent) { dropped <- e.Code })
	lc.c.OnConnecting(func(e centrifuge.ConnectingEvent) { dropped <- e.Code })

	bad := instant.Event{ID: "bad-bytes", Channel: "$site_users", Message: "bad bytes", Data: json.RawMessage("{\"name\":\"Ren\xe9\"}")}
	deep := instant.Event{ID: "deep", Channel: "$site_users", Message: "deep", Data: nested(9999)}
	for _, ev := range []instant.Event{bad, deep} {
		if err := ls.inst.Broadcast(ctx, ev); !errors.Is(err, instant.ErrInvalidEvent) {
			t.Errorf("Broadcast(%s) = %.300v, want ErrInvalidEvent", ev.Message, err)
		}
	}
	err := ls.inst.BroadcastBatch(ctx, []instant.Event{{Channel: "$site_users", Message: "batch 0"}, {Channel: "$site_users", Message: "batch 1"}, deep, bad})
	if !errors.Is(err, instant.ErrInvalidEvent) || !strings.Contains(err.Error(), "event 2") {
		t.Errorf("BroadcastBatch = %.300v, want ErrInvalidEvent naming event 2", err)
	}
	if err := ls.inst.Broadcast(ctx, instant.Event{ID: "good", Channel: "$site_users", Message: "good"}); err != nil {
		t.Fatal(err)
	}
	lc.waitFor("good")
	quiet()
	if msgs, _ := uniqueMessages(lc); !slices.Equal(msgs, []string{"good"}) {
		t.Errorf("alice received %q, want only the good event", msgs)
	}
	if h := historyOf(t, ls.cfg, "$site_users"); !slices.Equal(h, []string{"good good"}) {
		t.Errorf("history holds %q, want only the good event", h)
	}
	select {
	case code := <-dropped:
		t.Errorf("alice's connection dropped (code %d)", code)
	default:
	}

	// Centrifugo's own limit, straight to its API: the deep data is a 400,
	// data at twice our bound is published.
	if status, reply := rawPublish(t, ls, "$site_users", json.RawMessage(`{"d":`+string(nested(9999))+`}`)); status != http.StatusBadRequest {
		t.Errorf("Centrifugo took a request nested 10,001 deep: %d %.200s", status, reply)
	}
	if status, reply := rawPublish(t, ls, "$site_users", json.RawMessage(`{"message":"raw 128","d":`+string(nested(127))+`}`)); status != http.StatusOK || !bytes.Contains(reply, []byte(`"result"`)) {
		t.Errorf("Centrifugo refused data 128 deep: %d %.200s", status, reply)
	}
	lc.waitFor("raw 128")
}
