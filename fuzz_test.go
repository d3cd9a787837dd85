package instant_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// FuzzTokenRoutes sends arbitrary bodies to the POST routes, as an
// anonymous visitor or as alice: never a 5xx, always a JSON answer, and a
// token only for a channel the rules allow that visitor.
func FuzzTokenRoutes(f *testing.F) {
	for _, seed := range []string{
		`{"channel":"site_public"}`, `{"channel":"$site_admin"}`, `{"channel":""}`, `{"channel":`,
		`["x"]`, `null`, "{\"channel\":\"a\xffb\"}", `{"channels":["a","$b","$site_users"],"client":"c"}`,
		`{"channels":[]}`, `{"channel":"$orders:o1"}`, `{"channel":"a\u0000"}`, ``,
	} {
		f.Add(seed, 1, false)
		f.Add(seed, 2, true)
	}
	inst := rulesInstant(f)
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	aliceCookie := loginCookie(f, alice)
	paths := []string{"connection_token", "subscription_token", "auth"}
	f.Fuzz(func(t *testing.T, body string, route int, asAlice bool) {
		path := paths[(route%len(paths)+len(paths))%len(paths)]
		req := httptest.NewRequest("POST", "/instant/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		var user *instant.User
		if asAlice {
			req.AddCookie(aliceCookie)
			user = &alice
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: status %d", path, body, w.Code)
		}
		var out struct {
			Token    string
			Error    string
			Channels []struct{ Channel, Token string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %q: answer not JSON: %q", path, body, w.Body)
		}
		if w.Code != http.StatusOK {
			if out.Error == "" || out.Token != "" {
				t.Fatalf("%s %q: refusal %d %q", path, body, w.Code, w.Body)
			}
			return
		}
		tokens := map[string]string{}
		switch path {
		case "subscription_token":
			var in struct{ Channel string }
			_ = json.Unmarshal([]byte(body), &in)
			tokens[in.Channel] = out.Token
		case "auth":
			for _, a := range out.Channels {
				if a.Token != "" {
					tokens[a.Channel] = a.Token
				}
			}
		}
		for ch, tok := range tokens {
			if !inst.Allowed(nil, user, ch) {
				t.Fatalf("%s %q: token for %q, which %v may not read", path, body, ch, user)
			}
			if c := parseToken(t, tok); c["channel"] != ch {
				t.Fatalf("token for %q names %v", ch, c["channel"])
			}
		}
	})
}

// namespaceRe is the check Centrifugo v6.9.1 makes of a namespace name
// (internal/config/validate.go).
var namespaceRe = regexp.MustCompile(`^[-a-zA-Z0-9_.]{2,}$`)

// FuzzValidChannel checks which names the plugin takes for a channel
// (channelNameError) against the definition: what a Centrifugo client may
// subscribe to, printable ASCII with a namespace
// Centrifugo accepts, at most 255 bytes.
func FuzzValidChannel(f *testing.F) {
	for _, s := range []string{
		"site_public", "$ab:c", "$a:b", "", "a b", "a\x00", "\xff", "é", "$café", "\u2028", strings.Repeat("x", 256),
		strings.Repeat("x", 255), "$:x", "$$ab:x", "$team@acme:x", "$équipe:x", "$ab:!\"#$%&'()*+,-./;<=>?@[\\]^_`{|}~", "a\x7f",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := s != "" && len(s) <= 255 && strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) < 0
		if ns, _, found := strings.Cut(strings.TrimPrefix(s, "$"), ":"); found && ns != "" && !namespaceRe.MatchString(ns) {
			want = false
		}
		err := channelNameError(s)
		if got := err == nil; got != want {
			t.Fatalf("name %q: %v, want ok=%v", s, err, want)
		}
		if err != nil && !errors.Is(err, instant.ErrInvalidChannel) {
			t.Fatalf("name %q: %v does not wrap ErrInvalidChannel", s, err)
		}
	})
}

// FuzzPattern adds arbitrary patterns and matches arbitrary channels:
// never a panic; a refused pattern never decides; an accepted one decides
// only "$" channels outside the role table and outside the users' own
// channels, each in a namespace the generated Centrifugo config declares;
// and a "$" channel nothing grants stays denied.
func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"$orders:{id}", "$orders:1"}, {"$chat:*", "$chat:x"}, {"$a:{x}:b:{y}", "$a:1:b:2"}, {"{", "x"}, {"$a{b}", "$ab"}, {"$*", "$site_admin"},
		{"$chat*", "$chatroom:y"}, {"${team}:board", "$x:board"}, {"$project-{id}", "$project-5"}, {"$site_user:{id}:private", "$site_user:5:private"},
		{"$site_user:*", "$site_user:5"}, {"$café:{id}", "$café:1"}, {"$team@acme:{id}", "$team@acme:1"}, {"$ab:{x}", "$ab:1"},
		{"$:{x}", "$:1"}, {"$p-{a}/{b}:x", "$p-1/2:x"}, {"$$ab:{x}", "$$ab:1"}, {"$é{x}", "$é1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, channel string) {
		inst, _ := instant.New(instant.Config{TokenSecret: testSecret})
		matched := false
		err := inst.Authorize(pattern, func(_ *gin.Context, _ *instant.User, p map[string]string) (bool, any) {
			matched = true
			return true, nil
		})
		allowed := inst.Allowed(nil, nil, channel)
		if err != nil && matched {
			t.Fatalf("refused pattern %q (%v) decided %q", pattern, err, channel)
		}
		if matched && (!privateChannel(channel) || channel == "$site_admin" || channel == "$site_users" || strings.HasPrefix(channel, "$site_user:")) {
			t.Fatalf("pattern %q decided %q", pattern, channel)
		}
		if allowed && privateChannel(channel) && !matched {
			t.Fatalf("%q allowed to anonymous with no rule deciding", channel)
		}
		if !matched {
			return
		}
		if ns, _, found := strings.Cut(strings.TrimPrefix(channel, "$"), ":"); found && ns != "" {
			raw, err := inst.CentrifugoConfig(instant.CentrifugoOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var c struct {
				Channel struct{ Namespaces []struct{ Name string } }
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(c.Channel.Namespaces, func(n struct{ Name string }) bool { return n.Name == ns }) {
				t.Fatalf("pattern %q decided %q, whose namespace %q the config does not declare", pattern, channel, ns)
			}
		}
	})
}

// FuzzUserChannel: every valid user ID has a personal channel that
// Centrifugo serves (a valid channel name), that its user reads and the other
// does not, and two IDs never share one.
func FuzzUserChannel(f *testing.F) {
	for _, s := range [][2]string{
		{"42", "43"}, {"josé", "jose"}, {"5", "5:private"}, {"a#b", "a,b"}, {"a/b", "a:b"}, {"~x", "x"},
		{strings.Repeat("x", 184), strings.Repeat("x", 185)}, {strings.Repeat("é", 125), strings.Repeat("x", 255)}, {"", "\xff"},
	} {
		f.Add(s[0], s[1])
	}
	inst := newInstant(f, testConfig())
	f.Fuzz(func(t *testing.T, a, b string) {
		ca, cb := inst.UserChannel(a), inst.UserChannel(b)
		ua, ub := &instant.User{ID: a}, &instant.User{ID: b}
		for _, u := range []struct {
			id, ch string
			user   *instant.User
		}{{a, ca, ua}, {b, cb, ub}} {
			valid := validUserID(u.id)
			if (u.ch != "") != valid {
				t.Fatalf("UserChannel(%q) = %q; valid ID: %v", u.id, u.ch, valid)
			}
			if u.ch == "" {
				continue
			}
			if err := channelNameError(u.ch); err != nil || !strings.HasPrefix(u.ch, "$site_user:") {
				t.Fatalf("UserChannel(%q) = %q: %v", u.id, u.ch, err)
			}
			if !inst.Allowed(nil, u.user, u.ch) {
				t.Fatalf("user %q may not read their own %q", u.id, u.ch)
			}
		}
		if ca == "" || cb == "" || a == b {
			return
		}
		if ca == cb || inst.Allowed(nil, ua, cb) || inst.Allowed(nil, ub, ca) {
			t.Fatalf("users %q and %q: channels %q and %q", a, b, ca, cb)
		}
	})
}

// validUserID is User.ID's definition: not empty, at most 255 bytes,
// valid UTF-8, no whitespace or control characters.
func validUserID(id string) bool {
	return id != "" && len(id) <= 255 && utf8.ValidString(id) &&
		strings.IndexFunc(id, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\ufeff'
		}) < 0
}

// FuzzProxyRoutes sends arbitrary bodies to Centrifugo's proxy routes,
// with the proxy key, as an anonymous visitor or as alice: never a 5xx,
// always one JSON answer of result, error or disconnect, and a subscribe
// result only for a channel the rules let that visitor read as the
// connection's own user.
func FuzzProxyRoutes(f *testing.F) {
	for _, seed := range []string{
		`{"client":"c","user":"1","channel":"$site_users"}`, `{"user":"","channel":"site_public"}`,
		`{"user":"1","channel":"$site_admin"}`, `{"user":"4","channel":"$orders:o4"}`, `{"channel":"$site_user:1","user":"1"}`,
		`{"user":1}`, `[]`, `{`, ``, `{"channel":"a b"}`, "{\"user\":\"\xff\"}",
	} {
		f.Add(seed, 0, true)
		f.Add(seed, 2, false)
	}
	inst := rulesInstant(f)
	key := proxyKey(f, inst)
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	aliceCookie := loginCookie(f, alice)
	routes := []string{"connect", "refresh", "subscribe", "sub_refresh"}
	f.Fuzz(func(t *testing.T, body string, route int, asAlice bool) {
		path := routes[(route%len(routes)+len(routes))%len(routes)]
		req := httptest.NewRequest("POST", "/instant/proxy/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Instant-Proxy-Key", key)
		var user *instant.User
		if asAlice {
			req.AddCookie(aliceCookie)
			user = &alice
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: status %d", path, body, w.Code)
		}
		var out map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %q: answer not JSON: %q", path, body, w.Body)
		}
		if w.Code != http.StatusOK {
			return // a 4xx for a bad body
		}
		if len(out) != 1 {
			t.Fatalf("%s %q: answer %s, want one of result, error, disconnect", path, body, w.Body)
		}
		if path != "subscribe" || out["result"] == nil {
			return
		}
		var in struct{ User, Channel string }
		_ = json.Unmarshal([]byte(body), &in)
		id := ""
		if user != nil {
			id = user.ID
		}
		if in.User != id || !inst.Allowed(nil, user, in.Channel) {
			t.Fatalf("%q: subscribe allowed for user %q on %q; the session holds %v", body, in.User, in.Channel, user)
		}
	})
}

// FuzzSessionUser puts arbitrary values in the session where Login keeps
// the user: never a 5xx, and the user the routes report is nil or valid.
func FuzzSessionUser(f *testing.F) {
	for _, seed := range []string{
		`{"id":"1","username":"alice"}`, `{"id":""}`, `{"id":"a b"}`, `{"id":"1","groups":[""]}`,
		`{"id":"1","info":{"a":[1,{"b":null}]}}`, `{"id":"1","staff":"yes"}`, `null`, `[]`, ``, `{"id":"` + strings.Repeat("9", 300) + `"}`,
	} {
		f.Add(seed)
	}
	inst := newInstant(f, testConfig())
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(cookieKey)))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	r.POST("/plant", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("instant.user", c.GetHeader("X-Raw"))
		_ = s.Save()
	})
	f.Fuzz(func(t *testing.T, raw string) {
		if !utf8.ValidString(raw) || strings.ContainsAny(raw, "\r\n\x00") {
			return // not a header value; the session store sees what a header can carry
		}
		plant := httptest.NewRequest("POST", "/plant", nil)
		plant.Header.Set("X-Raw", raw)
		pw := httptest.NewRecorder()
		r.ServeHTTP(pw, plant)
		req := httptest.NewRequest("GET", "/instant/channels", nil)
		for _, ck := range pw.Result().Cookies() {
			req.AddCookie(ck)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("session value %q: GET channels %d", raw, w.Code)
		}
		var out struct{ User *instant.User }
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer not JSON: %q", w.Body)
		}
		if out.User != nil && !validUserID(out.User.ID) {
			t.Fatalf("session value %q gave the invalid user %+v", raw, out.User)
		}
	})
}

// rowRecorder stands in for the app's transaction: it keeps the rows the
// last outbox statement wrote (its first argument: the rows end to end).
type rowRecorder struct{ rows []byte }

func (r *rowRecorder) ExecContext(_ context.Context, _ string, args ...any) (sql.Result, error) {
	r.rows = append(r.rows[:0], args[0].([]byte)...)
	return nil, nil
}

// jsonDepth is how deeply data, valid JSON, nests arrays and objects.
func jsonDepth(data []byte) int {
	dec := json.NewDecoder(bytes.NewReader(data))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// FuzzEventData: whatever an event's Data (a json.RawMessage) and Message
// hold, BroadcastTx (which writes the publication Broadcast sends, as the
// outbox row's data) either refuses it with ErrInvalidEvent and writes
// nothing, or writes a row that is valid UTF-8 and valid JSON, whose
// payload nests at most the bound (64 for Data, one more for the event
// object around it) and carries Data as it was given, compacted (and
// HTML-escaped, as json.Marshal splices a json.RawMessage).
func FuzzEventData(f *testing.F) {
	for _, seed := range []string{
		`{"a":1}`, `[1,"x",null,true]`, "\"\xff\"", "{\"\xc3\x28\":1}", `"\ud800"`, "\"\xed\xa0\x80\"",
		string(nested(64)), string(nested(65)), string(nested(9999)), `{"a":` + string(nested(63)) + `}`,
		` null `, ``, `{"a":`, `1e1000000`, "\"\u2028\"", `"\\\"[[[["`, `{"[":"{{{{"}`,
	} {
		f.Add([]byte(seed), "hello")
	}
	f.Add([]byte(`1`), "caf\xe9")
	inst := newInstant(f, testConfig())
	f.Fuzz(func(t *testing.T, data []byte, message string) {
		var rec rowRecorder
		ev := instant.Event{ID: "e", Channel: "$site_users", Message: message, Data: json.RawMessage(data)}
		err := inst.BroadcastTx(context.Background(), &rec, ev)
		if err != nil {
			if !errors.Is(err, instant.ErrInvalidEvent) || rec.rows != nil {
				t.Fatalf("Data %.200q: %v after writing %.200q", data, err, rec.rows)
			}
			return
		}
		if !utf8.Valid(rec.rows) || !json.Valid(rec.rows) {
			t.Fatalf("Data %.200q, Message %.200q: the row is not UTF-8 JSON: %.300q", data, message, rec.rows)
		}
		var row struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(rec.rows, &row); err != nil {
			t.Fatal(err)
		}
		if d := jsonDepth(row.Data); d > 65 {
			t.Fatalf("Data %.200q: the payload nests %d deep", data, d)
		}
		var payload struct {
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(row.Data, &payload); err != nil {
			t.Fatal(err)
		}
		var compact, want bytes.Buffer // as json.Marshal splices a RawMessage
		_ = json.Compact(&compact, data)
		json.HTMLEscape(&want, compact.Bytes())
		if len(data) > 0 && !bytes.Equal(bytes.TrimSpace(data), []byte("null")) && !bytes.Equal(payload.Data, want.Bytes()) {
			t.Fatalf("Data %.200q arrived as %.200q", data, payload.Data)
		}
		if payload.Message != message {
			t.Fatalf("Message %.200q arrived as %.200q", message, payload.Message)
		}
	})
}
