//go:build unix

package centrifugotest

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Freeze stops the server's process (SIGSTOP) without ending it: it keeps
// its port and its connections, takes new ones into its listen queue, and
// answers nothing, as a hung server does. Thaw resumes it; a frozen
// server is thawed when t ends (and Stop ends it frozen or not).
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { s.signalQuietly(syscall.SIGCONT) })
	s.awaitStopped(t, true)
}

// Thaw resumes a server Freeze stopped (SIGCONT).
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
	s.awaitStopped(t, false)
}

// awaitStopped waits until the process is stopped (or running again),
// as Linux's /proc tells: a signal is delivered after kill returns.
// Elsewhere it returns at once.
func (s *Server) awaitStopped(t testing.TB, stopped bool) {
	t.Helper()
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return // no /proc here
		}
		// pid (comm) state ...: the state follows the last ')'.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		if state := bytes.TrimSpace(rest); len(state) > 0 && (state[0] == 'T') == stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("centrifugotest: the process is not %s after 5s: %s", map[bool]string{true: "stopped", false: "running"}[stopped], stat)
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := s.signalQuietly(sig); err != nil {
		t.Fatalf("centrifugotest: %v: %v", sig, err)
	}
}

func (s *Server) signalQuietly(sig syscall.Signal) error {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return syscall.ESRCH
	}
	return cmd.Process.Signal(sig)
}
