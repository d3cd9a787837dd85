package instant_test

import (
	"testing"

	"github.com/gin-instant/instant/internal/centrifugotest"
)

// TestMain stops the servers the tests share (one PostgreSQL, one Centrifugo
// for the Check tests that only read it) after them.
func TestMain(m *testing.M) { centrifugotest.Main(m) }
