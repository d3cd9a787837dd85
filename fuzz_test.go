package instant_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// FuzzTokenRoutes sends arbitrary bodies to the POST routes: never a 5xx,
// always a JSON answer, and a token only for a channel the rules allow.
func FuzzTokenRoutes(f *testing.F) {
	for _, seed := range []string{
		`{"channel":"site_public"}`, `{"channel":"$site_admin"}`, `{"channel":""}`, `{"channel":`,
		`["x"]`, `null`, "{\"channel\":\"a\xffb\"}", `{"channels":["a","$b"],"client":"c"}`,
		`{"channels":[]}`, `{"channel":"$orders:o1"}`, `{"channel":"a\u0000"}`, ``,
	} {
		f.Add(seed, 0)
		f.Add(seed, 2)
	}
	inst := rulesInstant(f)
	r := gin.New()
	inst.Register(r.Group("/instant")) // no session: anonymous throughout
	paths := []string{"connection_token", "subscription_token", "auth"}
	f.Fuzz(func(t *testing.T, body string, route int) {
		path := paths[(route%len(paths)+len(paths))%len(paths)]
		req := httptest.NewRequest("POST", "/instant/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: status %d", path, body, w.Code)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %q: answer not JSON: %q", path, body, w.Body)
		}
		if path == "subscription_token" && w.Code == http.StatusOK {
			var in struct{ Channel string }
			_ = json.Unmarshal([]byte(body), &in)
			if !inst.Allowed(nil, nil, in.Channel) {
				t.Fatalf("token for %q, which anonymous may not read", in.Channel)
			}
		}
	})
}

// FuzzValidChannel checks ValidChannel against its definition.
func FuzzValidChannel(f *testing.F) {
	for _, s := range []string{"site_public", "$a:b", "", "a b", "a\x00", "\xff", "é", "\u2028", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := s != "" && len(s) <= 255 && utf8.ValidString(s) &&
			strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
		got := instant.ValidChannel(s) == nil
		if got && !want {
			t.Fatalf("ValidChannel(%q) accepted a bad name", s)
		}
		if want && !got && !strings.ContainsAny(s, "\u2028\u2029\ufeff") {
			t.Fatalf("ValidChannel(%q) refused a good name", s)
		}
	})
}

// FuzzPattern adds arbitrary patterns and matches arbitrary channels:
// never a panic, and a "$" channel no rule matches stays denied.
func FuzzPattern(f *testing.F) {
	for _, s := range [][2]string{{"$orders:{id}", "$orders:1"}, {"$chat:*", "$chat:x"}, {"$a:{x}:b:{y}", "$a:1:b:2"}, {"{", "x"}, {"$a{b}", "$ab"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, channel string) {
		inst, _ := instant.New(instant.Config{TokenSecret: testSecret, PublicChannels: []string{}})
		matched := false
		err := inst.Authorize(pattern, func(_ *gin.Context, _ *instant.User, p map[string]string) (bool, any) {
			matched = true
			return false, nil
		})
		allowed := inst.Allowed(nil, &alice, channel)
		if allowed && instant.IsPrivate(channel) && channel != "$site_users" {
			t.Fatalf("pattern %q (err %v): %q allowed", pattern, err, channel)
		}
		if err != nil && matched {
			t.Fatalf("refused pattern %q still matched", pattern)
		}
	})
}
