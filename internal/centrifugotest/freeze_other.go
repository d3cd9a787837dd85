//go:build !unix

package centrifugotest

import "testing"

// Freeze would stop the server's process (SIGSTOP), which this system
// does not have: the test is skipped.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	t.Skip("centrifugotest: Freeze needs SIGSTOP (unix)")
}

// Thaw resumes a server Freeze stopped: nothing to do here.
func (s *Server) Thaw(t testing.TB) {}
