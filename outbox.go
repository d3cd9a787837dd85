package instant

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// defaultOutboxTable is the table BroadcastTx writes to when
// Config.OutboxTable is empty.
const defaultOutboxTable = "centrifugo_outbox"

// maxIdentifier is the longest PostgreSQL identifier (NAMEDATALEN-1): a
// longer name is cut, and pg_notify refuses a longer channel name.
const maxIdentifier = 63

// maxOutboxStatement bounds the payload bytes one outbox statement
// carries: an event to many channels is written in several statements of
// about this size (all in the caller's transaction), so that no parameter
// nears PostgreSQL's 1 GB limit and memory stays bounded on both sides.
const maxOutboxStatement = 16 << 20

// Execer runs a statement: a *sql.Tx (the point: the event is written in
// the app's own transaction), a *sql.DB or a *sql.Conn.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// outboxNames are the SQL names derived from Config.OutboxTable, once, in
// New.
type outboxNames struct {
	name   string // as configured, for errors
	table  string // quoted and schema-qualified as configured: "app"."events"
	index  string // quoted name of the (partition, id) index
	notify string // notification channel: at most 63 bytes
	insert string // the statement BroadcastTx runs
}

// newOutboxNames checks a table name, "name" or "schema.name" (letters,
// digits and '_', not starting with a digit, at most 63 bytes each part),
// and derives its SQL names. Each part is folded to lower case, as
// PostgreSQL folds an unquoted name, then quoted, so that reserved words
// such as "order" work and a name means the table it meant before quoting.
func newOutboxNames(name string) (outboxNames, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return outboxNames{}, fmt.Errorf("%q: at most schema.table", name)
	}
	quoted := make([]string, len(parts))
	for k, p := range parts {
		if p == "" || len(p) > maxIdentifier || p[0] >= '0' && p[0] <= '9' {
			return outboxNames{}, fmt.Errorf("%q is not a plain SQL identifier", name)
		}
		for j := 0; j < len(p); j++ {
			b := p[j]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_') {
				return outboxNames{}, fmt.Errorf("%q is not a plain SQL identifier", name)
			}
		}
		parts[k] = strings.ToLower(p)
		quoted[k] = `"` + parts[k] + `"`
	}
	n := outboxNames{
		name:  name,
		table: strings.Join(quoted, "."),
		// The index lives in the table's schema.
		index:  `"` + shortIdentifier(strings.Join(parts, "_")+"_partition_id_idx") + `"`,
		notify: shortIdentifier(name),
	}
	// The rows come as one bytea of payloads end to end and, as text
	// lists, each row's partition, offset and length in it: four
	// parameters whatever the number of rows, so any number fits, and the
	// statement's text never changes (drivers that cache prepared
	// statements prepare it once). The payload is stored as the bytes it
	// is. The notification wakes the consumer at commit.
	n.insert = `WITH ins AS (INSERT INTO ` + n.table + ` (method, payload, partition)
SELECT 'publish', substring($1::bytea FROM r.o FOR r.n), r.p
FROM unnest(string_to_array($2::text, ',')::int[], string_to_array($3::text, ',')::int[], string_to_array($4::text, ',')::int[])
	WITH ORDINALITY AS r(p, o, n, k)
ORDER BY r.k
RETURNING partition)
SELECT pg_notify($5::text, p::text) FROM (SELECT DISTINCT partition AS p FROM ins) AS parts`
	return n, nil
}

// shortIdentifier returns s when it fits in a PostgreSQL identifier, and
// else its first bytes and a hash of the whole, 63 bytes in all, so that
// two long names stay apart. s is ASCII.
func shortIdentifier(s string) string {
	if len(s) <= maxIdentifier {
		return s
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	sum := fmt.Sprintf("_%016x", h.Sum64())
	return s[:maxIdentifier-len(sum)] + sum
}

// BroadcastTx writes ev into Centrifugo's PostgreSQL outbox table through
// tx, to be published by Centrifugo's outbox consumer (see
// CentrifugoOptions.OutboxDSN) once, and only if, the transaction commits:
// an event of a transaction that rolls back is never delivered. Each
// channel's copy is one row (method "publish", the event id as its
// idempotency_key), in the partition its channel hashes to, so that the
// events of one channel keep their order; the statement also notifies the
// consumer, which wakes at commit instead of at its next poll.
//
// It accepts exactly the events Broadcast accepts, and subscribers receive
// the same bytes from both: an event Broadcast refuses is refused with the
// same error before anything is sent to tx, and any other is written as
// it is (the payload column is BYTEA: see OutboxDDL). A nil tx is
// ErrInvalidEvent. Otherwise it returns the database's error, wrapped: a
// missing table, a lost connection or a transaction already ended; in
// PostgreSQL a failed statement aborts the transaction it ran in. An
// event to many channels (Users) is written in statements of at most
// 16 MiB of rows each, with no limit on the number of channels; through a
// *sql.DB or a *sql.Conn outside a transaction, each statement commits
// on its own. Safe for concurrent use.
func (i *Instant) BroadcastTx(ctx context.Context, tx Execer, ev Event) error {
	if i == nil {
		return ErrNotInstalled
	}
	if nilExecer(tx) {
		return fmt.Errorf("%w: BroadcastTx needs a transaction, got a nil %T", ErrInvalidEvent, tx)
	}
	channels, payloads, err := i.prepareEvent(&ev, time.Now())
	if err != nil {
		return err
	}
	key, _ := json.Marshal(ev.ID) // a string: never fails
	tags := 0                     // the bytes of a row's tags
	if ev.Origin != "" {
		tags = len(`,"tags":{"origin":""}`) + len(ev.Origin)
	}
	var rows, parts, offsets, lengths []byte
	flush := func() error {
		_, err := tx.ExecContext(ctx, i.outboxTable.insert, rows, string(parts), string(offsets), string(lengths), i.outboxTable.notify)
		rows, parts, offsets, lengths = rows[:0], parts[:0], offsets[:0], lengths[:0]
		if err != nil {
			return fmt.Errorf("instant: write to the outbox %s: %w", i.outboxTable.name, err)
		}
		return nil
	}
	for k, ch := range channels {
		if len(rows) > 0 && len(rows)+len(payloads[k]) > maxOutboxStatement {
			if err := flush(); err != nil {
				return err
			}
		}
		if rows == nil {
			// Each row is the payload and some 50 bytes around it.
			n := 0
			for _, p := range payloads[k:] {
				n += len(p) + len(ch) + len(key) + 48 + tags
				if n > maxOutboxStatement {
					break
				}
			}
			rows = make([]byte, 0, n)
		}
		if len(parts) > 0 {
			parts = append(parts, ',')
			offsets = append(offsets, ',')
			lengths = append(lengths, ',')
		}
		start := len(rows)
		// The command Centrifugo's consumer decodes: the publish API's
		// params, data spliced in as the bytes Broadcast sends.
		rows = append(rows, `{"channel":`...)
		rows = appendJSONString(rows, ch) // checked: valid UTF-8
		rows = append(rows, `,"data":`...)
		rows = append(rows, payloads[k]...)
		rows = append(rows, `,"idempotency_key":`...)
		rows = append(rows, key...)
		if ev.Origin != "" { // the tag Broadcast sends (apiclient.go)
			rows = append(rows, `,"tags":{"origin":`...)
			rows = appendOrigin(rows, ev.Origin)
			rows = append(rows, '}')
		}
		rows = append(rows, '}')
		parts = strconv.AppendInt(parts, int64(i.partitionOf(ch)), 10)
		offsets = strconv.AppendInt(offsets, int64(start+1), 10) // SQL counts from 1
		lengths = strconv.AppendInt(lengths, int64(len(rows)-start), 10)
	}
	if err := flush(); err != nil {
		return err
	}
	i.stats.outboxWritten.Add(1)
	return nil
}

// nilExecer reports whether tx is nil or a nil pointer (a *sql.Tx declared
// and never begun), on which ExecContext would panic.
func nilExecer(tx Execer) bool {
	switch t := tx.(type) {
	case nil:
		return true
	case *sql.Tx:
		return t == nil
	case *sql.DB:
		return t == nil
	case *sql.Conn:
		return t == nil
	}
	v := reflect.ValueOf(tx)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
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
// as Centrifugo's consumer reads it, and its index, if they do not exist.
// The schema of a "schema.table" name must exist.
//
// The payload column is BYTEA: it keeps each row's JSON as the bytes
// written, so subscribers get from BroadcastTx exactly what Broadcast
// sends them (a JSONB column would re-encode what it stores and refuse
// some valid events).
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
