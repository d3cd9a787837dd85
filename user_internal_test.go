package instant

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestUserCacheIsBoundedByBytes: 1,000 distinct session values of 64 KiB
// each (64 MiB in all) leave nothing in the cache, many small ones at most
// userCacheBytes, and small values are still cached.
func TestUserCacheIsBoundedByBytes(t *testing.T) {
	var uc userCache
	pad := strings.Repeat("x", 64<<10)
	for k := range 100 {
		raw, _ := json.Marshal(User{ID: strconv.Itoa(k), Username: pad})
		if u := uc.decode(string(raw)); u == nil || u.ID != strconv.Itoa(k) {
			t.Fatalf("value %d decoded as %v", k, u)
		}
	}
	if n, bytes := len(uc.m), uc.bytes; n != 0 || bytes != 0 {
		t.Errorf("after 100 values of 64 KiB: %d entries, %d bytes kept", n, bytes)
	}
	for k := range 30_000 {
		raw, _ := json.Marshal(User{ID: strconv.Itoa(k), Username: "u" + strconv.Itoa(k)})
		uc.decode(string(raw))
		if bytes := uc.bytes; bytes > userCacheBytes {
			t.Fatalf("after %d small values: %d bytes counted, bound %d", k+1, bytes, userCacheBytes)
		}
	}
	if len(uc.m) == 0 {
		t.Error("small values are not cached")
	}
}
