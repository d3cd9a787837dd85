package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant/internal/centrifugotest"
)

func TestCLIBadSettingsExitWithOneLine(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "centrifuge.js")
	if err := os.WriteFile(js, []byte("//"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	cases := map[string]struct {
		args []string
		want string
	}{
		"bad port flag":    {[]string{"-port", "eighty"}, `invalid value "eighty" for flag -port`},
		"unknown flag":     {[]string{"-verbose"}, "flag provided but not defined"},
		"no centrifugo":    {[]string{"-server", "centrifugo", "-centrifugo", filepath.Join(dir, "missing"), "-dir", dir}, "no centrifugo binary at"},
		"unknown server":   {[]string{"-server", "nats", "-dir", dir}, "-server must be embedded or centrifugo"},
		"no centrifuge.js": {[]string{"-centrifuge-js", filepath.Join(dir, "none.js"), "-dir", dir}, "run `npm install`"},
		"bad secrets file": {[]string{"-centrifuge-js", js, "-dir", filepath.Join(dir, "bad")}, "delete it to make new secrets"},
		"site port taken":  {[]string{"-centrifuge-js", js, "-dir", dir, "-port", strconv.Itoa(takenPort)}, "is taken"},
	}
	if err := os.MkdirAll(filepath.Join(dir, "bad"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad", secretsFile), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(name, "secrets") || strings.Contains(name, "port taken") {
				centrifugotest.Require(t) // these get past the binary check
			}
			// Should a case start the demo by mistake, it stops soon.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := cli(ctx, tc.args, &stdout, &stderr)
			msg := stderr.String()
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "example_app: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q, want one line holding %q", msg, tc.want)
			}
			if strings.Contains(msg, "goroutine") || strings.Contains(msg, "panic") {
				t.Errorf("stderr has a stack trace: %s", msg)
			}
		})
	}
}

func TestCLIHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := cli(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 || stderr.Len() != 0 || !strings.Contains(stdout.String(), "usage:") {
		t.Errorf("-h: code %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("instant: a\ninstant: b"); got != "instant: a; instant: b" {
		t.Errorf("oneLine = %q", got)
	}
}
