package instant

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// DefaultOutboxTable is the table BroadcastTx writes to when
// Config.OutboxTable is empty.
const DefaultOutboxTable = "centrifugo_outbox"

// Execer runs a statement: a *sql.Tx (the point: the event is written in
// the app's own transaction), a *sql.DB or a *sql.Conn.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// BroadcastTx writes ev into Centrifugo's PostgreSQL outbox table through
// tx, to be published by Centrifugo's outbox consumer (see
// CentrifugoOptions.OutboxDSN) once, and only if, the transaction commits:
// an event of a transaction that rolls back is never delivered. Each
// channel's copy is one row (method "publish", the event id as its
// idempotency_key), in the partition its channel hashes to, so that the
// events of one channel keep their order; the statement also notifies the
// consumer, which wakes at commit instead of at its next poll. It checks
// ev as Broadcast does and returns the database's error, wrapped.
// Safe for concurrent use.
func (i *Instant) BroadcastTx(ctx context.Context, tx Execer, ev Event) error {
	if i == nil {
		return ErrNotInstalled
	}
	if tx == nil {
		return fmt.Errorf("%w: BroadcastTx needs a transaction", ErrInvalidEvent)
	}
	channels, payloads, err := i.prepareEvent(&ev, time.Now())
	if err != nil {
		return err
	}
	// WITH ins AS (INSERT ... RETURNING partition) SELECT pg_notify(...):
	// one statement, one round trip, rows and notification together.
	var q strings.Builder
	q.WriteString("WITH ins AS (INSERT INTO ")
	q.WriteString(i.outboxTable)
	q.WriteString(" (method, payload, partition) VALUES ")
	args := make([]any, 0, 2*len(channels)+1)
	for k, ch := range channels {
		row, err := json.Marshal(struct {
			Channel        string          `json:"channel"`
			Data           json.RawMessage `json:"data"`
			IdempotencyKey string          `json:"idempotency_key"`
		}{ch, payloads[k], ev.ID})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
		}
		if k > 0 {
			q.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&q, "('publish', $%d::jsonb, $%d)", n+1, n+2)
		args = append(args, string(row), i.partitionOf(ch))
	}
	args = append(args, i.outboxTable)
	fmt.Fprintf(&q, " RETURNING partition) SELECT pg_notify($%d, p::text) FROM (SELECT DISTINCT partition AS p FROM ins) AS parts", len(args))
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("instant: write to the outbox %s: %w", i.outboxTable, err)
	}
	i.stats.outboxWritten.Add(1)
	return nil
}

// partitionOf is the outbox partition of channel: the same channel, the
// same partition, so that its events are published in order.
func (i *Instant) partitionOf(channel string) int {
	if i.cfg.OutboxPartitions <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(channel))
	return int(h.Sum32() % uint32(i.cfg.OutboxPartitions))
}

// OutboxDDL is the SQL that creates the outbox table (Config.OutboxTable)
// as Centrifugo's consumer reads it, if it does not exist.
func (i *Instant) OutboxDDL() string {
	if i == nil {
		return ""
	}
	return "CREATE TABLE IF NOT EXISTS " + i.outboxTable + ` (
	id BIGSERIAL PRIMARY KEY,
	method TEXT NOT NULL,
	payload JSONB NOT NULL,
	partition INTEGER NOT NULL DEFAULT 0,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ` + strings.ReplaceAll(i.outboxTable, ".", "_") + `_partition_id_idx ON ` + i.outboxTable + ` (partition, id);`
}

// checkTableName accepts a PostgreSQL identifier, optionally
// schema-qualified: letters, digits and '_', not starting with a digit, at
// most 63 bytes each part. It is written into SQL as it is.
func checkTableName(name string) error {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return fmt.Errorf("%q: at most schema.table", name)
	}
	for _, p := range parts {
		if p == "" || len(p) > 63 || p[0] >= '0' && p[0] <= '9' {
			return fmt.Errorf("%q is not a plain SQL identifier", name)
		}
		for k := 0; k < len(p); k++ {
			b := p[k]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_') {
				return fmt.Errorf("%q is not a plain SQL identifier", name)
			}
		}
	}
	return nil
}
