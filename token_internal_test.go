package instant

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSignedTokens pins whole tokens: these are the bytes the hand-written
// signer that jwt/v5 replaced gave for the same claims (the same keys in
// the same order, the same omissions, the info as runRule or User.Info
// encodes it), so Centrifugo and the embedded server see what they saw.
func TestSignedTokens(t *testing.T) {
	inst, err := New(Config{TokenSecret: "a-secret-of-at-least-32-bytes-long!", ConnectionTokenTTL: time.Minute, SubscriptionTokenTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	u := &User{ID: "7", Info: map[string]any{"name": "Ann <&> \u2028", "n": json.Number("9007199254740993")}}
	const head = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	for _, tc := range []struct {
		name     string
		u        *User
		ch       string
		ruleInfo any
		want     string
	}{
		{"connection", u, "", nil, "eyJzdWIiOiI3IiwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDAwNjB9.EDHjWMjdIHf-AaSh07grcRoypO4nCDgU8vT2kygSS1Y"},
		{"anonymous: an empty sub", nil, "", nil, "eyJzdWIiOiIiLCJpYXQiOjE4MDAwMDAwMDAsImV4cCI6MTgwMDAwMDA2MH0.sap_o6C2p36KQ2peieB3WabdSHhInJLCMXALm3cYrHo"},
		{"private, User.Info", u, "$site_users", nil, "eyJzdWIiOiI3IiwiY2hhbm5lbCI6IiRzaXRlX3VzZXJzIiwiaW5mbyI6eyJuIjo5MDA3MTk5MjU0NzQwOTkzLCJuYW1lIjoiQW5uIFx1MDAzY1x1MDAyNlx1MDAzZSBcdTIwMjgifSwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDAwNjAsIm92ZXJyaWRlIjp7ImZvcmNlX3B1c2hfam9pbl9sZWF2ZSI6eyJ2YWx1ZSI6dHJ1ZX19fQ.R8L2dyweWqBJDDiUOtbVVEv3fpbfm2ZOylCrn5c0AXQ"},
		{"private, a rule's info", u, "$doc:1", json.RawMessage(`{"r":"\u003cx\u003e"}`), "eyJzdWIiOiI3IiwiY2hhbm5lbCI6IiRkb2M6MSIsImluZm8iOnsiciI6Ilx1MDAzY3hcdTAwM2UifSwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDAwNjAsIm92ZXJyaWRlIjp7ImZvcmNlX3B1c2hfam9pbl9sZWF2ZSI6eyJ2YWx1ZSI6dHJ1ZX19fQ.QtHE-6fIfdPcdy9S0TW3zXNLwQoAFHh9FRNM55ly6u8"},
		{"private, a rule's no info", u, "$doc:1", json.RawMessage{}, "eyJzdWIiOiI3IiwiY2hhbm5lbCI6IiRkb2M6MSIsImlhdCI6MTgwMDAwMDAwMCwiZXhwIjoxODAwMDAwMDYwLCJvdmVycmlkZSI6eyJmb3JjZV9wdXNoX2pvaW5fbGVhdmUiOnsidmFsdWUiOnRydWV9fX0.TdAKmutNcDJFB6t9Jotg_86G1AvpzOJK6U5JG-1SsIY"},
		{"public: no info, out of presence", u, "site_public", nil, "eyJzdWIiOiI3IiwiY2hhbm5lbCI6InNpdGVfcHVibGljIiwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDAwNjAsIm92ZXJyaWRlIjp7InByZXNlbmNlIjp7InZhbHVlIjpmYWxzZX0sImpvaW5fbGVhdmUiOnsidmFsdWUiOmZhbHNlfSwiZm9yY2VfcHVzaF9qb2luX2xlYXZlIjp7InZhbHVlIjpmYWxzZX19fQ.53IQxCp1t7pXITq0SQmpSHr_YNMcc4VQuyc-0rp3NVM"},
	} {
		tok, err := inst.sign(tc.u, tc.ch, tc.ruleInfo, now)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Token != head+tc.want {
			t.Errorf("%s: token\n got %s\nwant %s", tc.name, tok.Token, head+tc.want)
		}
	}
}

// TestUnfitInfoIsRefused: User.Info that Centrifugo's clients could not
// take never reaches a token.
func TestUnfitInfoIsRefused(t *testing.T) {
	deep := json.RawMessage(strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1))
	for name, info := range map[string]any{"too deep": deep, "not UTF-8": json.RawMessage("\"\xff\"")} {
		_, err := (&Instant{}).sign(&User{ID: "7", Info: map[string]any{"x": info}}, "$site_users", nil, time.Now())
		if !errors.Is(err, errTooDeep) && !errors.Is(err, errNotUTF8) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
