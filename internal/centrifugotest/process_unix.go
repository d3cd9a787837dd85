//go:build unix

package centrifugotest

import (
	"syscall"
	"testing"
	"time"
)

// Pid is the process id of the running server, for reading its CPU time
// and memory from /proc; 0 when it was never started.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Terminate stops the server as a deploy does: SIGTERM, which Centrifugo
// answers with a graceful shutdown (its clients are told to reconnect),
// waiting up to limit for it to exit before it is killed. Restart starts
// it again on the same port.
func (s *Server) Terminate(t testing.TB, limit time.Duration) {
	t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		select {
		case <-done:
			return // it had exited already
		default:
			t.Fatalf("centrifugotest: SIGTERM: %v", err)
		}
	}
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Logf("centrifugotest: Centrifugo did not exit within %v of SIGTERM: killed", limit)
	}
}
