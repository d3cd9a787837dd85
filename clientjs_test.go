package instant_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestClientJSLogic runs testdata/clientjs_unit.mjs under Node: client.js's
// presence bookkeeping and event filtering, with pushes and replies timed
// by hand. Node comes with npm, which `make test` needs anyway.
func TestClientJSLogic(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and node is not installed (it comes with npm; .ci/run installs it)")
		}
		t.Skip("node is not installed")
	}
	js, _ := filepath.Abs("client.js")
	out, err := exec.Command(node, "testdata/clientjs_unit.mjs", js).Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	want := map[string]any{
		// bob left and carol joined while the snapshot (ann, bob) was asked for
		"snapshotRace": "ann:1,carol:1",
		// two tabs, an unknown client leaving, one tab, none
		"tabs":    "ann:2|ann:2|ann:1|",
		"leaving": "ann",
		// a snapshot arriving after the channel was refused
		"afterDeny": "",
		// ...or after it was refused and granted again (another subscription)
		"staleSnapshot": "",
		// 1,500 events, then the same 1,500 again
		"batchDelivered": float64(1500),
		// a repeated id and this tab's own event dropped
		"events":     "$room one,$room theirs",
		"droppedOwn": float64(1),
		// a random id without the site's; the site's minted id, sent in the
		// header, replaced by a newer one; events carrying either dropped
		"origin": "true,minted-for-user-1,minted-for-user-1,minted-after-login,1,2",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
}
