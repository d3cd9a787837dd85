package instant

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	defaultOutboxTable = "centrifugo_outbox"
	maxIdentifier      = 63       // the longest PostgreSQL identifier
	maxOutboxStatement = 16 << 20 // bytes of rows in one outbox statement
)

// Execer runs a statement: a *sql.Tx (the point), a *sql.DB or a *sql.Conn.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type outboxNames struct {
	name, table, index string // as configured, quoted ("app"."events"), quoted
	notify, insert     string // notification channel, BroadcastTx's statement
}

// newOutboxNames checks "name" or "schema.name" (plain identifiers of 63 bytes at most), quoted lower-case as PostgreSQL folds.
func newOutboxNames(name string) (outboxNames, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return outboxNames{}, fmt.Errorf("%q: at most schema.table", name)
	}
	quoted := make([]string, len(parts))
	for k, p := range parts {
		if p == "" || len(p) > maxIdentifier || p[0] >= '0' && p[0] <= '9' ||
			strings.TrimLeft(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
			return outboxNames{}, fmt.Errorf("%q is not a plain SQL identifier", name)
		}
		parts[k] = strings.ToLower(p)
		quoted[k] = `"` + parts[k] + `"`
	}
	table := strings.Join(quoted, ".")
	// Rows as one bytea, and lists of their partitions, offsets and lengths: five parameters for any number.
	return outboxNames{name: name, table: table, notify: shortIdentifier(name),
		index: `"` + shortIdentifier(strings.Join(parts, "_")+"_partition_id_idx") + `"`,
		insert: `WITH ins AS (INSERT INTO ` + table + ` (method, payload, partition)
SELECT 'publish', substring($1::bytea FROM r.o FOR r.n), r.p
FROM unnest(string_to_array($2::text, ',')::int[], string_to_array($3::text, ',')::int[], string_to_array($4::text, ',')::int[])
	WITH ORDINALITY AS r(p, o, n, k)
ORDER BY r.k
RETURNING partition)
SELECT pg_notify($5::text, p::text) FROM (SELECT DISTINCT partition AS p FROM ins) AS parts`}, nil
}

// shortIdentifier cuts s to an identifier, a hash of the whole at its end.
func shortIdentifier(s string) string {
	if len(s) <= maxIdentifier {
		return s
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	sum := fmt.Sprintf("_%016x", h.Sum64())
	return s[:maxIdentifier-len(sum)] + sum
}

// BroadcastTx writes ev into Centrifugo's outbox table through tx: Centrifugo (CentrifugoOptions.OutboxDSN)
// publishes it once tx commits, never if it rolls back, a row a channel in its channel's partition (in
// order). It accepts, refuses and sends what Broadcast does; a nil tx is ErrInvalidEvent, a database
// error is wrapped. Rows go in statements of at most 16 MiB (each commits alone outside a transaction).
func (i *Instant) BroadcastTx(ctx context.Context, tx Execer, ev Event) error {
	if i == nil {
		return ErrNotInstalled
	}
	nillable := []reflect.Kind{reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan}
	if v := reflect.ValueOf(tx); !v.IsValid() || slices.Contains(nillable, v.Kind()) && v.IsNil() {
		return fmt.Errorf("%w: BroadcastTx needs a transaction, got a nil %T", ErrInvalidEvent, tx)
	}
	channels, payloads, err := i.prepareEvent(&ev, time.Now())
	if err != nil {
		return err
	}
	size := 0 // a row is its payload and some 100 bytes
	for k := range payloads {
		size += len(payloads[k]) + len(channels[k]) + len(ev.ID) + len(ev.Origin) + 100
	}
	var rows bytes.Buffer
	rows.Grow(min(size, maxOutboxStatement+maxEventBytes))
	enc, row := json.NewEncoder(&rows), publishParams{}
	var parts, offsets, lengths []byte
	partition := fnv.New32a()
	for k := 0; k <= len(channels); k++ { // the rows written when full, and after the last
		if k == len(channels) || rows.Len() > 0 && rows.Len()+len(payloads[k]) > maxOutboxStatement {
			if _, err := tx.ExecContext(ctx, i.outboxTable.insert, rows.Bytes(), string(parts[1:]), string(offsets[1:]), string(lengths[1:]), i.outboxTable.notify); err != nil {
				return fmt.Errorf("instant: write to the outbox %s: %w", i.outboxTable.name, err)
			}
			rows.Reset()
			parts, offsets, lengths = parts[:0], offsets[:0], lengths[:0]
		}
		if k == len(channels) {
			break
		}
		start := rows.Len()
		row = publishParams{channels[k], payloads[k], ev.ID, publishTags{ev.Origin}}
		_ = enc.Encode(&row) // as Broadcast sends it, and a newline; valid JSON: never fails
		partition.Reset()
		partition.Write([]byte(channels[k]))
		parts = strconv.AppendUint(append(parts, ','), uint64(partition.Sum32()%uint32(i.cfg.OutboxPartitions)), 10) // each list has a leading comma
		offsets = strconv.AppendInt(append(offsets, ','), int64(start+1), 10)                                        // SQL counts from 1
		lengths = strconv.AppendInt(append(lengths, ','), int64(rows.Len()-start-1), 10)
	}
	i.stats.outboxWritten.Add(1)
	return nil
}

// OutboxDDL is the SQL that creates the outbox table and its index if they do not exist (its schema must).
func (i *Instant) OutboxDDL() string {
	if i == nil {
		return ""
	}
	return "CREATE TABLE IF NOT EXISTS " + i.outboxTable.table + ` (
	id BIGSERIAL PRIMARY KEY,
	method TEXT NOT NULL,
	payload BYTEA NOT NULL,
	partition INTEGER NOT NULL DEFAULT 0,
	created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ` + i.outboxTable.index + ` ON ` + i.outboxTable.table + ` (partition, id);`
}
