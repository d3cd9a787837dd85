package centrifugotest

import (
	"fmt"
	"strings"
	"testing"
)

// TestServerIsNotGivenCentrifugoBin: CENTRIFUGO_BIN names the binary for
// the harness; Centrifugo, which would warn "unknown var in environment"
// of it, is not given it.
func TestServerIsNotGivenCentrifugoBin(t *testing.T) {
	t.Setenv("CENTRIFUGO_BIN", Require(t))
	s := Start(t, func(port int) ([]byte, error) {
		return fmt.Appendf(nil, `{"http_server": {"port": %d}, "health": {"enabled": true}, "log": {"level": "info"}}`, port), nil
	})
	s.Stop()
	if out := s.Output(); strings.Contains(out, "unknown var") || !strings.Contains(out, "starting Centrifugo") {
		t.Errorf("centrifugo's output:\n%s", out)
	}
}
