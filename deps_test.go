package instant_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCoreLinksNoCentrifuge: an app that never imports the embedded
// package pays nothing for it: the core links no package of
// github.com/centrifugal/centrifuge (the engine the embedded server runs
// on), and its module graph holds no such module.
func TestCoreLinksNoCentrifuge(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and no go command")
		}
		t.Skip("no go command")
	}
	for _, args := range [][]string{{"list", "-deps", "."}, {"list", "-m", "all"}} {
		out, err := exec.Command(goBin, args...).Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		if !strings.Contains(string(out), "github.com/gin-gonic/gin") {
			t.Fatalf("go %s lists no gin: is the listing broken?\n%s", strings.Join(args, " "), out)
		}
		for line := range strings.Lines(string(out)) {
			if name := strings.Fields(line); len(name) > 0 && (name[0] == "github.com/centrifugal/centrifuge" || strings.HasPrefix(name[0], "github.com/centrifugal/centrifuge/")) {
				t.Errorf("go %s: the core depends on %s", strings.Join(args, " "), strings.TrimSpace(line))
			}
		}
	}
}
