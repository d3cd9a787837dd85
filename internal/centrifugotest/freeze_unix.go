//go:build unix

package centrifugotest

import (
	"syscall"
	"testing"
)

// Freeze stops the server's process (SIGSTOP) without ending it: it keeps
// its port and its connections, takes new ones into its listen queue, and
// answers nothing, as a hung server does. Thaw resumes it; a frozen
// server is thawed when t ends (and Stop ends it frozen or not).
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { s.signalQuietly(syscall.SIGCONT) })
}

// Thaw resumes a server Freeze stopped (SIGCONT).
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
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
