package instant_test

import (
	"errors"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// TestAmbiguousPatternsAreRefused: a pattern whose parameters could split
// a channel name more than one way is refused; separated by ':', '#', ','
// or '/', parameters read one way only.
func TestAmbiguousPatternsAreRefused(t *testing.T) {
	inst := newInstant(t, testConfig())
	allow := func(*gin.Context, *instant.User, map[string]string) (bool, any) { return true, nil }
	for _, p := range []string{"$dm:{a}-{b}", "$dm:{a}.{b}", "$x:{a}_", "$x:{a}*", "$x:{a}-end"} {
		if err := inst.Authorize(p, allow); !errors.Is(err, instant.ErrInvalidPattern) {
			t.Errorf("Authorize(%q): %v, want ErrInvalidPattern", p, err)
		}
	}
	var got map[string]string
	err := inst.Authorize("$dm:{a},{b}", func(_ *gin.Context, _ *instant.User, p map[string]string) (bool, any) {
		got = p
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	u := &instant.User{ID: "1"}
	if !inst.Allowed(nil, u, "$dm:alice,bob") || got["a"] != "alice" || got["b"] != "bob" {
		t.Errorf("$dm:alice,bob: params %v", got)
	}
	got = nil
	for _, ch := range []string{"$dm:alice,bob,carol", "$dm:alice", "$dm:,bob", "$dm:alice,"} {
		if inst.Allowed(nil, u, ch) || got != nil {
			t.Errorf("%s matched $dm:{a},{b} with %v", ch, got)
		}
	}
	if err := inst.Authorize("$room:{id}:log", allow); err != nil {
		t.Fatal(err)
	}
	if !inst.Allowed(nil, u, "$room:7:log") || inst.Allowed(nil, u, "$room:7:8:log") {
		t.Error("$room:{id}:log matched wrongly")
	}
}
