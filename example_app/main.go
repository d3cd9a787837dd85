// Command example_app is the demo site of github.com/gin-instant/instant:
// a Gin site with logins for every role, a live event page and a broadcast
// page for staff, its realtime served from its own process (the embedded
// server), or by a real Centrifugo started for it (-server centrifugo).
//
// From the repository root, `make demo` installs the browser client, then
// builds and runs the demo (`make demo CENTRIFUGO=1`: on Centrifugo). See
// -h for the settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	restore := foreground() // Ctrl-C for the demo alone, not make (terminal_linux.go)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	restore()
	os.Exit(code)
}

// cli runs the demo until ctx ends and returns the exit code: 0, or 1
// after one line on stderr saying what is wrong.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "example_app: "+oneLine(err.Error()))
	return 1
}

// oneLine joins the lines of a message (errors.Join puts each error on
// its own line).
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
