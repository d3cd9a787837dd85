package instant_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

func TestBroadcastPayload(t *testing.T) {
	inst, f := fakeInstant(t)
	err := inst.Broadcast(context.Background(), instant.Event{
		Channel: "$private_chan", Message: "Private event",
		Data: map[string]any{"order": 42, "items": []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 1 || f.auth[0] != "apikey "+testAPIKey {
		t.Fatalf("requests %d, auth %q", len(f.requests), f.auth)
	}
	chans, payloads := f.published(t, 0)
	p := payloads[0]
	if chans[0] != "$private_chan" || p["channel"] != "$private_chan" || p["message"] != "Private event" ||
		p["event_class"] != "default" || p["site"] != "Demo" {
		t.Errorf("payload %v", p)
	}
	if data, ok := p["data"].(map[string]any); !ok || data["order"] != float64(42) {
		t.Errorf("data %#v, want a JSON object", p["data"])
	}
	if id, _ := p["id"].(string); len(id) < 16 {
		t.Errorf("id %q", p["id"])
	}
	if d, err := time.Parse(time.RFC3339Nano, p["date"].(string)); err != nil || time.Since(d) > time.Minute {
		t.Errorf("date %v %v", p["date"], err)
	}
	if len(p) != 7 {
		t.Errorf("payload has %d keys: %v", len(p), p)
	}
}

func TestBroadcastManyChannelsIsOneRequest(t *testing.T) {
	inst, f := fakeInstant(t)
	err := inst.Broadcast(context.Background(), instant.Event{
		Channel: "a", Channels: []string{"$b", "a", "c"}, Message: "m", EventClass: "order.created",
		Data: json.RawMessage(`{"raw":true}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 1 {
		t.Fatalf("%d requests, want 1", len(f.requests))
	}
	chans, payloads := f.published(t, 0)
	if strings.Join(chans, ",") != "a,$b,c" {
		t.Errorf("channels %v", chans)
	}
	for k, p := range payloads {
		if p["channel"] != chans[k] || p["id"] != payloads[0]["id"] || p["event_class"] != "order.created" {
			t.Errorf("payload %d: %v", k, p)
		}
		if p["data"].(map[string]any)["raw"] != true {
			t.Errorf("raw data %v", p["data"])
		}
	}
}

func TestBroadcastTargetsAndDefaults(t *testing.T) {
	inst, f := fakeInstant(t)
	cases := []struct {
		ev   instant.Event
		want string
	}{
		{instant.Event{Message: "x", Target: instant.LevelPublic}, "site_public"},
		{instant.Event{Message: "x", Target: instant.LevelUsers}, "$site_users"},
		{instant.Event{Message: "x", Target: instant.LevelStaff}, "$site_staff"},
		{instant.Event{Message: "x", Target: instant.LevelSuperuser}, "$site_admin"},
		{instant.Event{Message: "x", Target: instant.LevelGroups}, "$site_editors"},
	}
	for k, c := range cases {
		if err := inst.Broadcast(context.Background(), c.ev); err != nil {
			t.Fatal(err)
		}
		chans, payloads := f.published(t, k)
		if chans[0] != c.want {
			t.Errorf("target %v went to %v, want %s", c.ev.Target, chans, c.want)
		}
		if _, has := payloads[0]["data"]; has {
			t.Errorf("nil data was sent: %v", payloads[0])
		}
	}
	var nilMap map[string]int
	for k, data := range []any{json.RawMessage(nil), json.RawMessage{}, json.RawMessage(" null "), nilMap, (*int)(nil)} {
		if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a", Data: data}); err != nil {
			t.Fatal(err)
		}
		if _, payloads := f.published(t, len(f.requests)-1); hasKey(payloads[0], "data") {
			t.Errorf("nil data %d was sent: %v", k, payloads[0])
		}
	}
	if err := inst.Broadcast(context.Background(), instant.Event{ID: "retry-1", Channel: "a", Site: "other"}); err != nil {
		t.Fatal(err)
	}
	_, payloads := f.published(t, len(f.requests)-1)
	if payloads[0]["id"] != "retry-1" || payloads[0]["site"] != "other" {
		t.Errorf("given id/site not kept: %v", payloads[0])
	}
}

func TestBroadcastRefusesBadEvents(t *testing.T) {
	inst, f := fakeInstant(t)
	cases := []struct {
		ev   instant.Event
		want error
	}{
		{instant.Event{Channel: "a b"}, instant.ErrInvalidChannel},
		{instant.Event{Channels: []string{"ok", ""}}, instant.ErrInvalidChannel},
		{instant.Event{Channel: "a", Data: json.RawMessage(`{broken`)}, instant.ErrInvalidEvent},
		{instant.Event{Channel: "a", Data: func() {}}, instant.ErrInvalidEvent},
		{instant.Event{Target: instant.Level(42)}, instant.ErrNoChannel},
	}
	for _, c := range cases {
		if err := inst.Broadcast(context.Background(), c.ev); !errors.Is(err, c.want) {
			t.Errorf("Broadcast(%+v) = %v, want %v", c.ev, err, c.want)
		}
	}
	cfg := testConfig()
	cfg.PublicChannels = []string{}
	if err := newInstant(t, cfg).Broadcast(context.Background(), instant.Event{Message: "x"}); !errors.Is(err, instant.ErrNoChannel) {
		t.Errorf("no public channel: %v", err)
	}
	if len(f.requests) != 0 {
		t.Errorf("%d requests sent for bad events", len(f.requests))
	}
}

// TestTimeRunningOutDuringARetryKeepsTheAnswer: Centrifugo answered 500,
// and the retry was still waiting for its answer when PublishTimeout ran
// out: the error is the 500 (what Centrifugo said), as when the time runs
// out between attempts, not the bare deadline; and it is a deadline too
// (errors.Is), as PublishError's documentation says.
func TestTimeRunningOutDuringARetryKeepsTheAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "centrifugo is unwell")
			return
		}
		<-release // the retry: no answer before the time is up
	}))
	defer srv.Close()
	defer close(release)
	cfg := testConfig()
	cfg.APIURL = srv.URL + "/api"
	cfg.PublishTimeout = time.Second
	err := newInstant(t, cfg).Broadcast(context.Background(), instant.Event{Channel: "a"})
	var pe *instant.PublishError
	if !errors.As(err, &pe) || pe.StatusCode != http.StatusInternalServerError || pe.Err == nil || !strings.Contains(pe.Err.Error(), "unwell") || n.Load() < 2 {
		t.Errorf("after a 500 and a retry cut short: %v (%d requests), want the 500", err, n.Load())
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "time ran out") {
		t.Errorf("after a 500 and a retry cut short: %v, want it to say the time ran out", err)
	}
}

func testBroadcastHonoursPublishTimeout(t *testing.T) {
	srv := hangingServer(t)
	cfg := testConfig()
	cfg.APIURL = srv.URL + "/api"
	cfg.PublishTimeout = 200 * time.Millisecond
	inst := newInstant(t, cfg)
	start := time.Now()
	err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Broadcast took %v with a 200ms PublishTimeout", d)
	}
}

// TestBroadcastRefusesPublicTwinsOfPrivateChannels: "staff_news" when
// "$staff_news" is a staff channel (or "orders:1" when a rule covers
// "$orders:{id}") would publish a private event to everyone.
func TestBroadcastRefusesPublicTwinsOfPrivateChannels(t *testing.T) {
	f, srv := newFakeAPI(t)
	cfg := testConfig()
	cfg.APIURL = srv.URL + "/api"
	cfg.StaffChannels = []string{"staff_news"} // kept as $staff_news
	inst := newInstant(t, cfg)
	allow := func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }
	if err := inst.Authorize("$orders:{id}", allow); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []instant.Event{
		{Channel: "staff_news"},
		{Channels: []string{"$staff_news", "staff_news"}},
		{Channel: "orders:1"},
		{Channel: "site_users"}, // the default users channel is $site_users
	} {
		if err := inst.Broadcast(context.Background(), ev); !errors.Is(err, instant.ErrInvalidChannel) {
			t.Errorf("Broadcast(%+v): %v, want ErrInvalidChannel", ev, err)
		}
	}
	if len(f.requests) != 0 {
		t.Fatalf("%d requests sent for refused events", len(f.requests))
	}
	for _, ch := range []string{"$staff_news", "site_public", "news", "$orders:1"} {
		if err := inst.Broadcast(context.Background(), instant.Event{Channel: ch}); err != nil {
			t.Errorf("Broadcast to %s: %v", ch, err)
		}
	}
}

// TestBroadcastNeedsAPublishResult: a 200 answer that is not Centrifugo's
// publish result is an error; New refuses an APIURL that is not /api.
func TestBroadcastNeedsAPublishResult(t *testing.T) {
	inst, f := fakeInstant(t)
	for name, body := range map[string]string{
		"empty object":          "{}\n",
		"no reply":              "",
		"replies null":          `{"replies":null}`,
		"no replies":            `{"replies":[]}`,
		"two for one":           batchOf(`{"publish":{}}`, `{"publish":{}}`),
		"an empty reply":        batchOf(`{}`),
		"publish null":          batchOf(`{"publish":null}`),
		"a string result":       batchOf(`{"publish":"ok"}`),
		"a number reply":        `{"replies":[1]}`,
		"info answer":           `{"nodes":[{"uid":"x"}]}` + "\n",
		"an html page":          "<html>ok</html>",
		"cut short":             `{"replies":[{"publish":{}}`,
		"legacy lines":          `{"result":{}}` + "\n",
		"the error of none":     batchOf(`{"error":null}`),
		"an error past the end": batchOf(`{"publish":{}}`, `{"error":{"code":100,"message":"x"}}`),
	} {
		f.answer(nil, func(w http.ResponseWriter, n int) { w.Write([]byte(body)) })
		if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"}); err == nil {
			t.Errorf("%s: Broadcast reported success", name)
		}
	}
	// Centrifugo's answer in another form is still its answer.
	for _, body := range []string{
		" { \"replies\" : [ { \"publish\" : { } } , {\"publish\":{\"offset\":2,\"epoch\":\"x}]\\\"\"}} ] } ",
		`{"replies":[{"publish":{"offset":1}},{"publish":{},"extra":[]}]}`,
		`{"replies":[{"publish":{"epoch":"x}]\"{\\"}},{"publish":{"offset":2}}]}`,
	} {
		f.answer(nil, func(w http.ResponseWriter, n int) { w.Write([]byte(body)) })
		if err := inst.Broadcast(context.Background(), instant.Event{Channels: []string{"a", "b"}}); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	f.answer(nil, nil)
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"}); err != nil {
		t.Errorf("a publish result: %v", err)
	}
	for _, u := range []string{"http://127.0.0.1:8000/api/info", "http://127.0.0.1:8000/health", "http://127.0.0.1:8000/", "http://127.0.0.1:8000", "http://127.0.0.1:8000/api?x=1"} {
		cfg := testConfig()
		cfg.APIURL = u
		if _, err := instant.New(cfg); !errors.Is(err, instant.ErrConfig) || !strings.Contains(err.Error(), "APIURL") {
			t.Errorf("New with APIURL %s: %v", u, err)
		}
	}
}

// TestErrorRepliesAreBoundedAndHoldNoSecret: a 64 MiB error body that
// echoes the request's headers (the API key) and the token secret is cut
// to a few KiB, and no secret reaches an error string or the kept body.
func TestErrorRepliesAreBoundedAndHoldNoSecret(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t)
	cfg := testConfig()
	cfg.APIURL = srv.URL + "/api"
	// A 500 is retried until then: time for an attempt or more to get
	// its answer on a busy machine (300ms was not always, in make test).
	cfg.PublishTimeout = 2 * time.Second
	inst := newInstant(t, cfg)
	echo := []byte("Authorization: apikey " + testAPIKey + " secret " + testSecret + "\n")
	f.answer(func(w http.ResponseWriter, n int) {
		w.WriteHeader(http.StatusInternalServerError)
		for range (64 << 20) / len(echo) {
			if _, err := w.Write(echo); err != nil {
				return // the client stopped reading
			}
		}
	}, nil)
	err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
	var pe *instant.PublishError
	if !errors.As(err, &pe) || pe.StatusCode != 500 || pe.Err == nil {
		t.Fatalf("500 answer: %v", err)
	}
	body := pe.Err.Error()
	if len(body) > 8<<10 {
		t.Errorf("kept %d bytes of the error body", len(body))
	}
	texts := []string{err.Error(), body}
	for _, s := range texts {
		if strings.Contains(s, testAPIKey) || strings.Contains(s, testSecret) {
			t.Errorf("a secret in an error text: %.200q", s)
		}
	}
	if !strings.Contains(body, "[redacted]") || !strings.HasPrefix(body, "http status 500: ") {
		t.Errorf("body kept without the echo: %.200q", body)
	}
	// The same for a 200 reply holding a Centrifugo error that echoes, to
	// an Instant of its own (the 500s may have marked the node down).
	inst = newInstant(t, cfg)
	f.answer(nil, func(w http.ResponseWriter, n int) {
		w.Write([]byte(batchOf(`{"error":{"code":100,"message":"bad key ` + testAPIKey + `"}}`)))
	})
	err = inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
	if !errors.As(err, &pe) || pe.Code != 100 || strings.Contains(err.Error(), testAPIKey) || strings.Contains(pe.Message, testAPIKey) || strings.Contains(pe.Err.Error(), testAPIKey) {
		t.Errorf("API error echoing the key: %v", err)
	}
}

// TestBroadcastToUsersAndOrigin: Users adds the personal channels to the
// same single request; Origin rides in every copy, and is omitted when
// empty.
func TestBroadcastToUsersAndOrigin(t *testing.T) {
	inst, f := fakeInstant(t)
	err := inst.Broadcast(context.Background(), instant.Event{Channel: "news", Users: []string{"7", "8", "7"}, Message: "m", Origin: "tab-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 1 {
		t.Fatalf("%d requests, want one", len(f.requests))
	}
	channels, payloads := f.published(t, 0)
	if strings.Join(channels, " ") != "news $site_user:7 $site_user:8" {
		t.Errorf("channels %v", channels)
	}
	for k, p := range payloads {
		if p["origin"] != "tab-1" || p["channel"] != channels[k] {
			t.Errorf("payload %d: %v", k, p)
		}
	}
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "news"}); err != nil {
		t.Fatal(err)
	}
	if _, payloads := f.published(t, 1); hasKey(payloads[0], "origin") {
		t.Errorf("an empty origin was sent: %v", payloads[0])
	}
	for _, ev := range []instant.Event{{Users: []string{"a b"}}, {Users: []string{""}}} {
		if err := inst.Broadcast(context.Background(), ev); !errors.Is(err, instant.ErrInvalidUser) {
			t.Errorf("Users %q: %v", ev.Users, err)
		}
	}
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "news", Origin: strings.Repeat("o", 65)}); !errors.Is(err, instant.ErrInvalidEvent) {
		t.Errorf("a 65-byte origin: %v", err)
	}
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "site_user:7"}); !errors.Is(err, instant.ErrInvalidChannel) {
		t.Errorf("the public twin of a personal channel: %v", err)
	}
}

func TestBroadcastBatchIsOneRequestInOrder(t *testing.T) {
	inst, f := fakeInstant(t)
	events := []instant.Event{
		{Channel: "a", Message: "first"},
		{Channels: []string{"$b", "c"}, Message: "second", ID: "fixed-id"},
		{Users: []string{"7"}, Message: "third"},
	}
	keep := fmt.Sprint(events)
	if err := inst.BroadcastBatch(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(events) != keep {
		t.Errorf("the caller's events changed: %v", events)
	}
	if len(f.requests) != 1 {
		t.Fatalf("%d requests, want 1", len(f.requests))
	}
	chans, payloads := f.published(t, 0)
	if got := strings.Join(chans, ","); got != "a,$b,c,"+inst.UserChannel("7") {
		t.Fatalf("channels %s", got)
	}
	msgs := []string{"first", "second", "second", "third"}
	for k, p := range payloads {
		if p["channel"] != chans[k] || p["message"] != msgs[k] {
			t.Errorf("publication %d: %v", k, p)
		}
	}
	if payloads[1]["id"] != "fixed-id" || payloads[2]["id"] != "fixed-id" {
		t.Errorf("ids %v %v, want the event's own", payloads[1]["id"], payloads[2]["id"])
	}
	if payloads[0]["id"] == payloads[3]["id"] || payloads[0]["id"] == "" {
		t.Errorf("events share id %v", payloads[0]["id"])
	}
	if got := inst.Stats().Published; got != 3 {
		t.Errorf("Stats().Published = %d, want 3", got)
	}
}

func TestBroadcastBatchRefusesWholeBatchBeforeSending(t *testing.T) {
	inst, f := fakeInstant(t)
	err := inst.BroadcastBatch(context.Background(), []instant.Event{
		{Channel: "a", Message: "fine"},
		{Channel: "a b", Message: "bad name"},
	})
	if !errors.Is(err, instant.ErrInvalidChannel) || !strings.Contains(err.Error(), "event 1") {
		t.Errorf("err = %v, want ErrInvalidChannel naming event 1", err)
	}
	err = inst.BroadcastBatch(context.Background(), []instant.Event{{Channel: "a", Data: json.RawMessage(`{`)}})
	if !errors.Is(err, instant.ErrInvalidEvent) {
		t.Errorf("err = %v, want ErrInvalidEvent", err)
	}
	if err := inst.BroadcastBatch(context.Background(), nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	if len(f.requests) != 0 {
		t.Errorf("%d requests sent", len(f.requests))
	}
	var none *instant.Instant
	if err := none.BroadcastBatch(context.Background(), []instant.Event{{Channel: "a"}}); !errors.Is(err, instant.ErrNotInstalled) {
		t.Errorf("nil Instant: %v", err)
	}
}

func TestBroadcastBatchReportsAFailedPublication(t *testing.T) {
	inst, f := fakeInstant(t)
	f.answer(nil, func(w http.ResponseWriter, n int) {
		w.Write([]byte(batchOf(`{"publish":{}}`, `{"error":{"code":102,"message":"unknown channel"}}`, `{"publish":{}}`)))
	})
	err := inst.BroadcastBatch(context.Background(), []instant.Event{{Channel: "a"}, {Channel: "b"}, {Channel: "c"}})
	var pe *instant.PublishError
	if !errors.As(err, &pe) || pe.Code != 102 || strings.Join(pe.Channels, ",") != "b" {
		t.Fatalf("err = %#v, want a PublishError with code 102 for b", err)
	}
	if len(f.requests) != 1 {
		t.Errorf("%d requests: a refusal must not be retried", len(f.requests))
	}
	if fmt.Sprint(pe.Failed) != "[1]" || !strings.Contains(err.Error(), "(event 1 of 3 not published)") {
		t.Errorf("Failed %v, text %q: want event 1 of 3", pe.Failed, err)
	}
	if got := inst.Stats(); got.Published != 2 || got.Failed != 1 {
		t.Errorf("stats %+v, want the 2 events that went out counted", got)
	}
}

// TestHostileReplyIsCutBeforeDecoding: a 200 answer to a publish of
// millions of tiny replies is cut at a few KiB a publication, before it is
// decoded (it once cost 2 GiB of allocations), answered as an error at
// once and not retried. History keeps its large bound.
func TestHostileReplyIsCutBeforeDecoding(t *testing.T) {
	f, srv := newFakeAPI(t)
	cfg := testConfig()
	cfg.APIURL = srv.URL + "/api"
	inst := newInstant(t, cfg)
	body := bytes.Repeat([]byte("{}\n"), (32<<20)/3)
	f.answer(func(w http.ResponseWriter, n int) { w.Write(body) }, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v, want the reply refused as too large", err)
	}
	// The process's allocations, other goroutines' included: a loose
	// bound, far below the 2.9 GiB this cost before the cut.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 128<<20 {
		t.Errorf("one publish against a hostile reply allocated %d MiB", alloc>>20)
	}
	if s := inst.Stats(); s.Retried != 0 || s.FailedOver != 0 || len(f.requests) != 1 {
		t.Errorf("retried a reply that came: %+v, %d requests", s, len(f.requests))
	}
	// A large presence reply is still read.
	info := `{"m":"` + strings.Repeat("x", 1<<20) + `"}`
	f.answer(func(w http.ResponseWriter, n int) {
		w.Write([]byte(`{"result":{"presence":{"c1":{"client":"c1","user":"u1","chan_info":` + info + `},"c2":{"client":"c2","user":"u2","chan_info":` + info + `}}}}` + "\n"))
	}, nil)
	if got, err := inst.Presence(context.Background(), "$a"); err != nil || len(got) != 2 {
		t.Errorf("presence of 2 MiB: %d members, %v", len(got), err)
	}
}

// testSlowSingleNodeHasAllOfPublishTimeout: with one node there is nowhere
// to fail over to, so an answer within PublishTimeout is taken, however
// slow, and a publish is sent once.
func testSlowSingleNodeHasAllOfPublishTimeout(t *testing.T) {
	f, srv := newFakeAPI(t)
	cfg := testConfig()
	cfg.APIURL = srv.URL + "/api"
	cfg.PublishTimeout = 3 * time.Second
	inst := newInstant(t, cfg)
	f.answer(func(w http.ResponseWriter, n int) {
		time.Sleep(1800 * time.Millisecond) // past any share of the time
		w.Write([]byte(`{"result":{"presence":{}}}` + "\n"))
	}, func(w http.ResponseWriter, n int) {
		time.Sleep(1800 * time.Millisecond)
		w.Write([]byte(batchOf(`{"publish":{}}`)))
	})
	if _, err := inst.Presence(context.Background(), "$a"); err != nil {
		t.Errorf("Presence answered in 1.8s of a 3s PublishTimeout: %v", err)
	}
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "a", Message: "m"}); err != nil {
		t.Errorf("Broadcast answered in 1.8s of a 3s PublishTimeout: %v", err)
	}
	f.mu.Lock()
	n := len(f.requests)
	f.mu.Unlock()
	if s := inst.Stats(); n != 2 || s.Retried != 0 || s.Published != 1 {
		t.Errorf("%d requests, Stats %+v: want 2 requests and no retry", n, s)
	}
}
