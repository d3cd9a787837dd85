package main

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant/internal/centrifugotest"
)

func TestBroadcastPageAccess(t *testing.T) {
	cases := []struct {
		username          string
		getStatus, postSt int
	}{
		{"", http.StatusSeeOther, http.StatusUnauthorized},
		{"user", http.StatusForbidden, http.StatusForbidden},
		{"editor", http.StatusForbidden, http.StatusForbidden},
		{"staff", http.StatusOK, http.StatusBadGateway},
		{"admin", http.StatusOK, http.StatusBadGateway},
	}
	_, srv := startSite(t, noCentrifugo) // no Centrifugo: a valid post gets 502
	for _, tc := range cases {
		t.Run(cmp.Or(tc.username, "anonymous"), func(t *testing.T) {
			b := browserAs(t, srv, tc.username)
			r := b.get("/broadcast")
			if r.status != tc.getStatus {
				t.Fatalf("GET /broadcast: %d, want %d", r.status, tc.getStatus)
			}
			switch r.status {
			case http.StatusSeeOther:
				if loc := r.header.Get("Location"); loc != "/login?next=%2Fbroadcast" {
					t.Errorf("redirected to %q, want the login page", loc)
				}
			case http.StatusForbidden:
				if !strings.Contains(r.body, "Only staff users and superusers may broadcast.") {
					t.Errorf("403 page does not say why:\n%s", r.body)
				}
			case http.StatusOK:
				for _, want := range []string{`id="broadcast-form"`, `name="message"`, `name="target"`, `name="event_class"`, `name="data"`,
					`value="site_public"`, `value="$site_admin"`, `value="level:staff"`, `id="recent-events"`, `id="channel-counts"`, `id="state"`} {
					if !strings.Contains(r.body, want) {
						t.Errorf("broadcast page lacks %s", want)
					}
				}
			}
			r = b.postForm("/broadcast", url.Values{"message": {"hi"}, "target": {"site_public"}}, "Accept", "application/json")
			if r.status != tc.postSt {
				t.Errorf("POST /broadcast: %d, want %d; body %s", r.status, tc.postSt, r.body)
			}
		})
	}
}

func TestBroadcastValidation(t *testing.T) {
	cases := []struct {
		name      string
		form      url.Values
		wantError string
	}{
		{"empty message", url.Values{"message": {"  "}, "target": {"site_public"}}, "The message is required."},
		{"message too long", url.Values{"message": {strings.Repeat("é", maxMessageLength+1)}, "target": {"site_public"}}, "longer than 2000"},
		{"bad JSON data", url.Values{"message": {"hi"}, "target": {"site_public"}, "data": {`{"a":`}}, "The data is not valid JSON"},
		{"JSON data with trailing garbage", url.Values{"message": {"hi"}, "target": {"site_public"}, "data": {`{"a":1} x`}}, "The data is not valid JSON"},
		{"unknown channel", url.Values{"message": {"hi"}, "target": {"$secret"}}, `Unknown target "$secret"`},
		{"unknown level", url.Values{"message": {"hi"}, "target": {"level:owners"}}, `Unknown target "level:owners"`},
		{"no target", url.Values{"message": {"hi"}}, "Pick a target channel or level."},
		{"bad event class", url.Values{"message": {"hi"}, "target": {"site_public"}, "event_class": {"a b"}}, "The event class may hold only"},
		{"two faults", url.Values{"message": {""}, "target": {"nope"}}, "The message is required. Unknown target"},
	}
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	b.login("admin", "admin-demo")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A script asking for JSON gets {"error"}.
			r := b.postForm("/broadcast", tc.form, "Accept", "application/json")
			var got struct{ Error string }
			if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusBadRequest {
				t.Fatalf("JSON: status %d, body %s, want 400 {\"error\"}", r.status, r.body)
			}
			if !strings.Contains(got.Error, tc.wantError) {
				t.Errorf("JSON error %q, want it to hold %q", got.Error, tc.wantError)
			}
			// A plain form post gets the page again, with the error and
			// the values typed.
			r = b.postForm("/broadcast", tc.form)
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, `id="broadcast-error"`) {
				t.Fatalf("form: status %d, want 400 with the error shown:\n%s", r.status, r.body)
			}
		})
	}
}

func TestBroadcastAcceptsAJSONBody(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	b.login("admin", "admin-demo")
	h := map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}
	r := b.do(http.MethodPost, "/broadcast", strings.NewReader(`{"message":"","target":"site_public"}`), h)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "The message is required.") {
		t.Errorf("empty message: %d %s", r.status, r.body)
	}
	r = b.do(http.MethodPost, "/broadcast", strings.NewReader(`{"message":`), h)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "could not be read") {
		t.Errorf("broken body: %d %s", r.status, r.body)
	}
	r = b.do(http.MethodPost, "/broadcast", strings.NewReader(`{"message":"m","target":"site_public","data":{"n":1}}`), h)
	if r.status != http.StatusBadGateway {
		t.Errorf("valid JSON body without Centrifugo: %d %s, want 502", r.status, r.body)
	}
}

// TestBroadcastJSONBodyErrorsAreWords: a JSON body of the wrong shape is
// answered in words, never with Go's type names.
func TestBroadcastJSONBodyErrorsAreWords(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	b.login("admin", "admin-demo")
	h := map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}
	for body, want := range map[string]string{
		`["message", "target"]`:                "The body must be a JSON object.",
		`"hello"`:                              "The body must be a JSON object.",
		`42`:                                   "The body must be a JSON object.",
		`null`:                                 "The body must be a JSON object.",
		` true `:                               "The body must be a JSON object.",
		`{"message": ["hi"], "target": "x"}`:   `The field "message" must be a string.`,
		`{"message": "hi", "target": 3}`:       `The field "target" must be a string.`,
		`{"message": "hi", "event_class": {}}`: `The field "event_class" must be a string.`,
		`{"message":`:                          "The body could not be read: it is not valid JSON.",
		`{"message": "hi"} {}`:                 "The body could not be read: it is not valid JSON.",
		``:                                     "The body could not be read: it is not valid JSON.",
	} {
		r := b.do(http.MethodPost, "/broadcast", strings.NewReader(body), h)
		var got struct{ Error string }
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusBadRequest {
			t.Errorf("body %s: %d %s, want 400 {\"error\"}", body, r.status, r.body)
			continue
		}
		if got.Error != want {
			t.Errorf("body %s: error %q, want %q", body, got.Error, want)
		}
		for _, leak := range []string{"Go ", "struct", "unmarshal", "json:"} {
			if strings.Contains(got.Error, leak) {
				t.Errorf("body %s: the error %q speaks Go (%q)", body, got.Error, leak)
			}
		}
	}
	// Too large a body: 413.
	big := `{"message": "` + strings.Repeat("a", maxFormBytes) + `"}`
	r := b.do(http.MethodPost, "/broadcast", strings.NewReader(big), h)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "The body is larger than 64 KiB.") {
		t.Errorf("a body over 64 KiB: %d %s", r.status, r.body)
	}
}

func TestBroadcastWithoutCentrifugoIsAClearError(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	b.login("staff", "staff-demo")
	form := url.Values{"message": {"hello"}, "target": {"$site_users"}, "data": {`{"n":1}`}}

	r := b.postForm("/broadcast", form, "Accept", "application/json")
	var got struct{ Error string }
	_ = json.Unmarshal([]byte(r.body), &got)
	if r.status != http.StatusBadGateway || !strings.Contains(got.Error, "Centrifugo did not take the event") {
		t.Errorf("JSON: %d %s, want 502 with a message", r.status, r.body)
	}
	r = b.postForm("/broadcast", form)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "Centrifugo did not take the event") || !strings.Contains(r.body, ">hello</textarea>") {
		t.Errorf("form: %d, want 502 with the error and the form kept:\n%s", r.status, r.body)
	}
}

func TestBroadcastRefusesCrossOriginPosts(t *testing.T) {
	_, srv := startSite(t, noCentrifugo)
	b := newBrowser(t, srv)
	b.login("admin", "admin-demo")
	r := b.postForm("/broadcast", url.Values{"message": {"x"}, "target": {"site_public"}}, "Sec-Fetch-Site", "cross-site")
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "sent from another site") {
		t.Errorf("cross-site post: %d\n%s", r.status, r.body)
	}
}

// TestBroadcastReachesCentrifugo sends through a real Centrifugo and reads
// the event back from the channel's history.
func TestBroadcastReachesCentrifugo(t *testing.T) {
	cent := centrifugotest.Start(t, centrifugoConfigFor(1))
	_, srv := startSite(t, cent.APIURL)
	b := newBrowser(t, srv)
	b.login("admin", "admin-demo")

	cases := []struct {
		target, channel string
	}{
		{"$site_admin", "$site_admin"},
		{"level:users", "$site_users"},
		{"site_public", "site_public"},
		{"$site_editors", "$site_editors"},
	}
	for _, tc := range cases {
		msg := "to " + tc.target
		r := b.postForm("/broadcast", url.Values{"message": {msg}, "target": {tc.target}, "event_class": {"test"}, "data": {`{"n": 1}`}}, "Accept", "application/json")
		var sent sentEvent
		if err := json.Unmarshal([]byte(r.body), &sent); err != nil || r.status != http.StatusOK {
			t.Fatalf("broadcast to %s: %d %s", tc.target, r.status, r.body)
		}
		if sent.ID == "" || !slices.Equal(sent.Channels, []string{tc.channel}) || sent.Sender != "admin" {
			t.Errorf("broadcast to %s answered %+v", tc.target, sent)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pubs, err := history(ctx, cent.APIURL, tc.channel)
		cancel()
		if err != nil || len(pubs) == 0 {
			t.Fatalf("history of %s: %v, %d publications", tc.channel, err, len(pubs))
		}
		var ev struct {
			ID, Channel, Message, EventClass, Site string
			Data                                   map[string]int
		}
		if err := json.Unmarshal(pubs[len(pubs)-1], &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID != sent.ID || ev.Channel != tc.channel || ev.Message != msg || ev.Data["n"] != 1 || ev.Site != "instant demo" {
			t.Errorf("%s received %+v (from %s), want id %s", tc.channel, ev, pubs[len(pubs)-1], sent.ID)
		}
	}

	// A plain form post is redirected back to the page, which lists the
	// events and counts them per channel.
	r := b.postForm("/broadcast", url.Values{"message": {"by form"}, "target": {"site_public"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/broadcast?sent=") {
		t.Fatalf("form post: %d to %q", r.status, r.header.Get("Location"))
	}
	page := b.get(r.header.Get("Location"))
	if !strings.Contains(page.body, `id="broadcast-sent"`) || !strings.Contains(page.body, "by form") {
		t.Errorf("the page does not show the sent event")
	}
	for ch, n := range map[string]string{"site_public": "2", "$site_admin": "1", "$site_staff": "0"} {
		row := `<tr data-channel="` + ch + `">`
		i := strings.Index(page.body, row)
		if i < 0 {
			t.Errorf("no count row for %s", ch)
			continue
		}
		cell := page.body[i:]
		cell = cell[strings.Index(cell, `class="num count">`)+len(`class="num count">`):]
		if got := cell[:strings.Index(cell, "<")]; got != n {
			t.Errorf("count of %s: %s, want %s", ch, got, n)
		}
	}
}

func TestRecentLogKeepsTheNewest(t *testing.T) {
	l := newRecentLog(3)
	for _, id := range []string{"a", "b", "c", "d"} {
		l.add(sentEvent{ID: id})
	}
	var ids []string
	for _, ev := range l.list() {
		ids = append(ids, ev.ID)
	}
	if !slices.Equal(ids, []string{"d", "c", "b"}) {
		t.Errorf("recent log %v, want [d c b]", ids)
	}
}
