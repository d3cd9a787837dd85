package instant

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
		cl := claims{Sub: sub, Channel: channel, Info: info, IssuedAt: iat, ExpiresAt: exp, Override: overrideFor(channel)}
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

// TestSignMatchesJWT checks the pooled HMAC against jwt/v5's own signing of
// the same claims, byte for byte, from many goroutines at once: a pooled
// state that kept a previous token's bytes would sign wrongly.
func TestSignMatchesJWT(t *testing.T) {
	const secret = "a-secret-of-at-least-32-bytes-long!"
	inst, err := New(Config{TokenSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				sub, channel := strconv.Itoa(g), "$c:"+strconv.Itoa(k)
				if k%2 == 1 {
					channel = channel[1:] // a public channel: the other override
				}
				tok, err := inst.sign(sub, channel, nil, time.Minute, now)
				if err != nil {
					errs <- err
					return
				}
				cl := claims{Sub: sub, Channel: channel, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix(), Override: overrideFor(channel)}
				want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, cl).SignedString([]byte(secret))
				if err != nil {
					errs <- err
					return
				}
				if tok.Token != want {
					errs <- fmt.Errorf("token\n got %s\nwant %s", tok.Token, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
