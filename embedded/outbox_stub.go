package embedded

// A stand-in for the outbox consumer, written elsewhere (outbox.go), so
// that this package compiles until it is merged; the lead deletes this
// file then.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/gin-instant/instant/internal/seam"
)

var errOutboxNotYet = errors.New("embedded: the outbox consumer is not yet merged (not yet)")

func startOutbox(_ context.Context, _ *sql.DB, _ seam.Policy, _ func(ctx context.Context, method string, params json.RawMessage) error, _ *slog.Logger) (stop func(), err error) {
	return nil, errOutboxNotYet
}

func checkOutbox(_ context.Context, _ *sql.DB, _ seam.Policy) error { return errOutboxNotYet }
