package instant

import (
	"encoding/json"
	"testing"
)

// FuzzAppendClaims checks the hand-written claims against encoding/json:
// the same values once decoded.
func FuzzAppendClaims(f *testing.F) {
	for _, s := range []string{"", "42", "$site_users", "a\"b\\c", "tab\there", "\u2028\u2029", "<&>", "\x01\x1f", "é☃", "\xff"} {
		f.Add(s, s, int64(1), int64(2), true)
	}
	f.Fuzz(func(t *testing.T, sub, channel string, iat, exp int64, withInfo bool) {
		var info any
		if withInfo {
			info = map[string]any{"name": sub, "n": 1}
		}
		got, err := appendClaims(nil, sub, channel, info, iat, exp)
		if err != nil {
			t.Fatal(err)
		}
		cl := claims{Sub: sub, Channel: channel, Info: info, IssuedAt: iat, ExpiresAt: exp}
		if IsPrivate(channel) {
			cl.Override = privateOverride
		}
		want, _ := json.Marshal(cl)
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%q is not JSON: %v", got, err)
		}
		_ = json.Unmarshal(want, &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("claims\n got %s\nwant %s", got, want)
		}
	})
}
