package embedded

// The outbox consumer (Options.OutboxDB). BroadcastTx (the core's
// outbox.go) writes each event's rows into the app's PostgreSQL outbox
// table inside the app's own transaction; this reads the committed rows
// and publishes them through the server, as Centrifugo's PostgreSQL
// consumer does for a Centrifugo. database/sql only: no driver is
// imported here (the tests use pgx's stdlib).
//
// How it works. One goroutine polls every outboxPoll: a single query
// lists the partitions that hold rows. Up to outboxWorkers goroutines then
// take those partitions, each in its own transaction:
//
//  1. pg_try_advisory_xact_lock on a key made of the table's OID and the
//     partition: several processes share the work, and a partition is read
//     by one of them at a time; another that finds it locked moves on;
//  2. SELECT id, method, payload ... WHERE partition = $1 ORDER BY id
//     LIMIT outboxBatch;
//  3. publish each row in id order, stopping at the first failure (the
//     rows from there on stay, so a partition's order holds);
//  4. DELETE the rows published (by id: a row with a lower id that
//     commits later is never deleted unseen), and COMMIT.
//
// A full batch is followed at once by the next one. The rows of a
// transaction that rolls back are never seen; a committed row is deleted
// in the transaction that published it, while its partition is locked,
// so no other consumer publishes it again. The one exception is a
// database failure between a publish and the COMMIT (the row is then
// published again later): the row's idempotency_key (the event's ID)
// makes the server drop that repeat within its idempotency window.
//
// Why a poll: BroadcastTx notifies p.NotifyChannel at commit, but LISTEN
// needs a driver's own API (database/sql has no way to receive a
// notification), so a row waits up to outboxPoll, 150 ms on average. The
// poll costs one query per outboxPoll, whatever the number of partitions.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-instant/instant/internal/seam"
)

const (
	// outboxPoll is how often the table is looked at (Centrifugo's
	// default partition_poll_interval).
	outboxPoll = 300 * time.Millisecond
	// outboxBatch is the most rows read in one transaction (Centrifugo's
	// default partition_select_limit).
	outboxBatch = 100
	// outboxDrain is the most batches one partition gets before the
	// others have their turn.
	outboxDrain = 10
	// outboxWorkers is the most partitions one process reads at once
	// (each holds one connection of the *sql.DB while it does).
	outboxWorkers = 4
	// outboxBackoffMin and outboxBackoffMax bound the wait before a
	// partition whose publish or database failed is tried again
	// (doubling from the first to the second).
	outboxBackoffMin = 100 * time.Millisecond
	outboxBackoffMax = 5 * time.Second
	// outboxTxTimeout bounds one transaction's database work. It is not
	// cut short by stop, so that rows already published are deleted.
	outboxTxTimeout = 10 * time.Second
)

// errOutboxInvalid marks a row that can never be published: a method
// other than publish and broadcast, a payload that is not a JSON object,
// params the server refuses as invalid, or a publish that panics. The
// publish function given to startOutbox wraps it (fmt.Errorf("%w: ...",
// errOutboxInvalid)) for such params; seam.ErrUnknownChannel counts as
// invalid too. Such a row is logged (its id, partition and method, never
// its payload) and deleted, as Centrifugo's consumer skips a command its
// API refuses: kept, it would block its partition forever.
var errOutboxInvalid = errors.New("embedded: outbox row cannot be published")

// errOutboxBusy: another consumer holds the partition's lock.
var errOutboxBusy = errors.New("embedded: outbox partition locked by another consumer")

// outboxPublish publishes one row: method "publish" with params
// {channel, data, idempotency_key, tags?} or "broadcast" with {channels,
// data, idempotency_key, tags?}.
type outboxPublish func(ctx context.Context, method string, params json.RawMessage) error

// outboxConsumer reads one outbox table. Its fields are set before its
// goroutines start and never change, except retry: retry[p] belongs to
// the goroutine processing partition p, and to the poller between rounds.
type outboxConsumer struct {
	db         *sql.DB
	table      string // quoted, as seam.Policy.OutboxTable
	partitions int
	publish    outboxPublish
	logger     *slog.Logger

	poll       time.Duration
	backoffMin time.Duration
	backoffMax time.Duration

	pendingSQL, lockSQL, selectSQL, deleteSQL string

	retry []outboxRetry
}

// outboxRetry is a partition's streak of failures.
type outboxRetry struct {
	failures int
	since    time.Time // the streak's first failure
	next     time.Time // not tried again before
}

// startOutbox checks db's outbox table (checkOutbox) and starts consuming
// it in p.OutboxPartitions partitions, publishing each row through
// publish, until stop is called. ctx bounds the start only (as
// net.ListenConfig's does), not the consumer's life. It fails at once
// when the table is missing or lacks a column the rows need.
//
// publish is called by several goroutines at once, for different
// partitions; for one partition, one row at a time, in id order. An error
// wrapping errOutboxInvalid or seam.ErrUnknownChannel drops the row (see
// errOutboxInvalid); any other keeps it and the rows after it in its
// partition, and the partition is tried again after a backoff (100 ms
// doubling to 5 s): the rows wait, in the table, as long as the server
// cannot publish them. The failure is logged once per streak, with its
// error (which must not quote the row's data), and the recovery once.
//
// stop cancels the publish in flight (its row stays), deletes the rows
// already published, and returns when every goroutine has ended. It may
// be called more than once, from any goroutine.
func startOutbox(ctx context.Context, db *sql.DB, p seam.Policy, publish func(ctx context.Context, method string, params json.RawMessage) error, logger *slog.Logger) (stop func(), err error) {
	if db == nil || publish == nil {
		return nil, errors.New("embedded: the outbox consumer needs a database and a publish function")
	}
	if err := checkOutbox(ctx, db, p); err != nil {
		return nil, err
	}
	c := newOutboxConsumer(db, p, publish, logger)
	c.warnStrayPartitions(ctx)
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { c.run(run) })
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}, nil
}

// newOutboxConsumer builds the consumer of p's table with the default
// timings; tests may change them before run.
func newOutboxConsumer(db *sql.DB, p seam.Policy, publish outboxPublish, logger *slog.Logger) *outboxConsumer {
	if logger == nil {
		logger = p.Logger
	}
	if logger == nil {
		logger = slog.Default()
	}
	n := max(p.OutboxPartitions, 1)
	t := p.OutboxTable
	return &outboxConsumer{
		db:         db,
		table:      t,
		partitions: n,
		publish:    publish,
		logger:     logger,
		poll:       outboxPoll,
		backoffMin: outboxBackoffMin,
		backoffMax: outboxBackoffMax,
		// One index probe a partition, in one round trip.
		pendingSQL: `SELECT p FROM generate_series(0, $1::int - 1) AS p WHERE EXISTS (SELECT 1 FROM ` + t + ` WHERE partition = p)`,
		// Keyed by the table's OID, so that "centrifugo_outbox" and
		// "public.centrifugo_outbox" lock alike, and by the partition;
		// a 64-bit hash keeps clear of other users of advisory locks.
		lockSQL:   `SELECT pg_try_advisory_xact_lock(hashtextextended('instant outbox ' || $1::text::regclass::oid::text || ' ' || $2::int::text, 0))`,
		selectSQL: `SELECT id, method, payload FROM ` + t + ` WHERE partition = $1 ORDER BY id LIMIT $2`,
		// The ids as one text list: database/sql has no array parameter.
		deleteSQL: `DELETE FROM ` + t + ` WHERE id = ANY(string_to_array($1::text, ',')::bigint[])`,
		retry:     make([]outboxRetry, n),
	}
}

// warnStrayPartitions logs rows in partitions this consumer does not read
// (OutboxPartitions lowered while rows waited): they stay until a process
// configured with more partitions reads them.
func (c *outboxConsumer) warnStrayPartitions(ctx context.Context) {
	var n int64
	err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM `+c.table+` WHERE partition < 0 OR partition >= $1`, c.partitions).Scan(&n)
	if err == nil && n > 0 {
		c.logger.Warn("embedded: outbox rows in partitions this process does not read: they wait for a process with as many OutboxPartitions as wrote them",
			slog.String("table", c.table), slog.Int("partitions", c.partitions), slog.Int64("rows", n))
	}
}

// run polls until ctx ends.
func (c *outboxConsumer) run(ctx context.Context) {
	var failures int // of the pending query, in a row
	var since time.Time
	for ctx.Err() == nil {
		parts, err := c.pending(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if failures == 0 {
				since = time.Now()
				c.logger.Error("embedded: outbox: cannot read the table; retrying",
					slog.String("table", c.table), slog.Any("error", err))
			}
			failures++
			outboxSleep(ctx, c.backoff(failures))
			continue
		}
		if failures > 0 {
			c.logger.Info("embedded: outbox: reading the table again",
				slog.String("table", c.table), slog.Int("failures", failures), slog.Duration("after", time.Since(since)))
			failures = 0
		}
		now := time.Now()
		due := parts[:0]
		for _, p := range parts {
			if !now.Before(c.retry[p].next) {
				due = append(due, p)
			}
		}
		if c.round(ctx, due) {
			continue // a partition has more rows: at once
		}
		wait := c.poll
		for p := range c.retry {
			if r := c.retry[p]; r.failures > 0 {
				wait = min(wait, max(time.Until(r.next), 0))
			}
		}
		outboxSleep(ctx, wait)
	}
}

// pending lists the partitions that hold rows.
func (c *outboxConsumer) pending(ctx context.Context) ([]int, error) {
	rows, err := c.db.QueryContext(ctx, c.pendingSQL, c.partitions)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var parts []int
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, rows.Err()
}

// round drains parts, outboxWorkers at a time, and reports whether one of
// them still had a full batch after its turn.
func (c *outboxConsumer) round(ctx context.Context, parts []int) (more bool) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, outboxWorkers)
	for _, p := range parts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return false
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if c.drain(ctx, p) {
				mu.Lock()
				more = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return more
}

// drain reads partition p's batches until one is not full (up to
// outboxDrain of them), and reports whether the last one was.
func (c *outboxConsumer) drain(ctx context.Context, p int) (full bool) {
	for range outboxDrain {
		if ctx.Err() != nil {
			return false
		}
		full, err := c.batch(ctx, p)
		switch {
		case errors.Is(err, errOutboxBusy):
			return false // another process reads it
		case err != nil:
			if ctx.Err() != nil {
				return false // stopping: not a failure
			}
			c.failed(p, err)
			return false
		}
		c.recovered(p)
		if !full {
			return false
		}
	}
	return true
}

// failed records a failure of partition p and logs the first of a streak.
func (c *outboxConsumer) failed(p int, err error) {
	r := &c.retry[p]
	if r.failures == 0 {
		r.since = time.Now()
		c.logger.Error("embedded: outbox: cannot publish; the rows stay in the table and are retried",
			slog.String("table", c.table), slog.Int("partition", p), slog.Any("error", err))
	}
	r.failures++
	r.next = time.Now().Add(c.backoff(r.failures))
}

// recovered ends partition p's streak of failures, if any, with a log line.
func (c *outboxConsumer) recovered(p int) {
	r := &c.retry[p]
	if r.failures == 0 {
		return
	}
	c.logger.Info("embedded: outbox: publishing again",
		slog.String("table", c.table), slog.Int("partition", p), slog.Int("failures", r.failures), slog.Duration("after", time.Since(r.since)))
	*r = outboxRetry{}
}

// backoff is the wait after the n-th failure in a row (n ≥ 1).
func (c *outboxConsumer) backoff(n int) time.Duration {
	d := c.backoffMin
	for k := 1; k < n && d < c.backoffMax; k++ {
		d *= 2
	}
	return min(d, c.backoffMax)
}

// outboxRow is one row read.
type outboxRow struct {
	id      int64
	method  string
	payload []byte
}

// batch publishes up to outboxBatch rows of partition p in one
// transaction and deletes them. full reports a batch of outboxBatch rows
// all published (more may wait). err is errOutboxBusy when another
// consumer holds p, the publish error that stopped the batch (the rows
// published before it are deleted all the same), or the database's.
func (c *outboxConsumer) batch(ctx context.Context, p int) (full bool, err error) {
	// The transaction outlives stop (ctx), so that the rows published
	// before it are deleted; database/sql rolls back a transaction whose
	// context ends.
	dbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outboxTxTimeout)
	defer cancel()
	tx, err := c.db.BeginTx(dbCtx, nil)
	if err != nil {
		return false, fmt.Errorf("embedded: outbox: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit: sql.ErrTxDone, ignored
	var locked bool
	if err := tx.QueryRowContext(ctx, c.lockSQL, c.table, p).Scan(&locked); err != nil {
		return false, fmt.Errorf("embedded: outbox: lock partition %d: %w", p, err)
	}
	if !locked {
		return false, errOutboxBusy
	}
	rows, err := c.read(ctx, tx, p)
	if err != nil {
		return false, err
	}
	done := make([]int64, 0, len(rows)) // published or dropped
	var pubErr error
	for _, r := range rows {
		if pubErr = ctx.Err(); pubErr != nil {
			break
		}
		if pubErr = c.apply(ctx, r); pubErr != nil {
			if !errors.Is(pubErr, errOutboxInvalid) && !errors.Is(pubErr, seam.ErrUnknownChannel) {
				pubErr = fmt.Errorf("embedded: outbox: row %d (partition %d): %w", r.id, p, pubErr)
				break
			}
			c.logger.Error("embedded: outbox: row dropped: it can never be published",
				slog.String("table", c.table), slog.Int("partition", p), slog.Int64("id", r.id),
				slog.String("method", outboxMethod(r.method)), slog.Int("payload_bytes", len(r.payload)), slog.Any("error", pubErr))
			pubErr = nil
		}
		done = append(done, r.id)
	}
	if len(done) > 0 {
		ids := make([]byte, 0, len(done)*8)
		for k, id := range done {
			if k > 0 {
				ids = append(ids, ',')
			}
			ids = strconv.AppendInt(ids, id, 10)
		}
		if _, err := tx.ExecContext(dbCtx, c.deleteSQL, string(ids)); err != nil {
			return false, fmt.Errorf("embedded: outbox: delete %d published rows: %w", len(done), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("embedded: outbox: commit: %w", err)
	}
	if pubErr != nil {
		return false, pubErr
	}
	return len(rows) == outboxBatch, nil
}

// read selects partition p's first rows, in id order.
func (c *outboxConsumer) read(ctx context.Context, tx *sql.Tx, p int) ([]outboxRow, error) {
	rs, err := tx.QueryContext(ctx, c.selectSQL, p, outboxBatch)
	if err != nil {
		return nil, fmt.Errorf("embedded: outbox: read partition %d: %w", p, err)
	}
	defer rs.Close()
	var rows []outboxRow
	for rs.Next() {
		var r outboxRow
		if err := rs.Scan(&r.id, &r.method, &r.payload); err != nil {
			return nil, fmt.Errorf("embedded: outbox: read partition %d: %w", p, err)
		}
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("embedded: outbox: read partition %d: %w", p, err)
	}
	return rows, nil
}

// apply publishes one row, after the checks the publish function needs
// not repeat: a known method, a JSON object.
func (c *outboxConsumer) apply(ctx context.Context, r outboxRow) error {
	if r.method != "publish" && r.method != "broadcast" {
		return fmt.Errorf("%w: method is neither publish nor broadcast", errOutboxInvalid)
	}
	s := strings.TrimLeft(string(r.payload), " \t\r\n")
	if !strings.HasPrefix(s, "{") || !json.Valid(r.payload) {
		return fmt.Errorf("%w: payload is not a JSON object", errOutboxInvalid)
	}
	return c.safePublish(ctx, r)
}

// safePublish calls publish, turning a panic into an invalid row: the
// same row would panic again at every attempt, blocking its partition.
func (c *outboxConsumer) safePublish(ctx context.Context, r outboxRow) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: publish panicked: %v", errOutboxInvalid, v)
		}
	}()
	return c.publish(ctx, r.method, r.payload)
}

// outboxMethod is a row's method as logged: at most 32 bytes.
func outboxMethod(m string) string {
	if len(m) > 32 {
		return m[:32] + "…"
	}
	return m
}

// outboxSleep waits d or until ctx ends.
func outboxSleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// outboxColumns are the columns the rows need: BroadcastTx writes method,
// payload and partition; the consumer reads id, method and payload, in id
// order, and deletes by id. Each with the types that work (pg_type names).
var outboxColumns = []struct {
	name  string
	types []string
	want  string // the DDL's type, for the message
}{
	{"id", []string{"int8", "int4"}, "BIGSERIAL"},
	{"method", []string{"text", "varchar"}, "TEXT"},
	{"payload", []string{"bytea"}, "BYTEA"},
	{"partition", []string{"int4", "int8", "int2"}, "INTEGER"},
}

// checkOutbox reports what is wrong with p's outbox table in db, every
// problem joined, each naming the table and OutboxDDL: the table missing,
// a column missing or of a type BroadcastTx cannot write (a JSONB
// payload), an id without a default. nil when the
// table is as OutboxDDL makes it. A database that does not answer is an
// error too.
func checkOutbox(ctx context.Context, db *sql.DB, p seam.Policy) error {
	if p.OutboxTable == "" {
		return errors.New("embedded: no outbox table named (the Instant's Config.OutboxTable)")
	}
	if db == nil {
		return errors.New("embedded: no outbox database")
	}
	const fix = "create it with (*instant.Instant).OutboxDDL()"
	var kind sql.NullString
	err := db.QueryRowContext(ctx, `SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1::text)`, p.OutboxTable).Scan(&kind)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("embedded: outbox table %s does not exist: %s", p.OutboxTable, fix)
	case err != nil:
		return fmt.Errorf("embedded: outbox table %s: %w", p.OutboxTable, err)
	case kind.String != "r" && kind.String != "p":
		return fmt.Errorf("embedded: outbox %s is not a table: %s", p.OutboxTable, fix)
	}
	rows, err := db.QueryContext(ctx, `SELECT a.attname::text, t.typname::text, a.atthasdef OR a.attidentity <> ''
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped`, p.OutboxTable)
	if err != nil {
		return fmt.Errorf("embedded: outbox table %s: %w", p.OutboxTable, err)
	}
	defer rows.Close()
	type column struct {
		typ        string
		hasDefault bool
	}
	have := map[string]column{}
	for rows.Next() {
		var name string
		var c column
		if err := rows.Scan(&name, &c.typ, &c.hasDefault); err != nil {
			return fmt.Errorf("embedded: outbox table %s: %w", p.OutboxTable, err)
		}
		have[name] = c
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("embedded: outbox table %s: %w", p.OutboxTable, err)
	}
	var errs []error
	for _, want := range outboxColumns {
		c, ok := have[want.name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("embedded: outbox table %s has no column %s (%s): %s", p.OutboxTable, want.name, want.want, fix))
		case !slices.Contains(want.types, c.typ):
			hint := fix
			if want.name == "payload" {
				hint = "BroadcastTx writes BYTEA, the column (*instant.Instant).OutboxDDL() makes"
			}
			errs = append(errs, fmt.Errorf("embedded: outbox table %s: column %s is %s, not %s: %s", p.OutboxTable, want.name, c.typ, want.want, hint))
		case want.name == "id" && !c.hasDefault:
			errs = append(errs, fmt.Errorf("embedded: outbox table %s: column id has no default (BIGSERIAL): %s", p.OutboxTable, fix))
		}
	}
	return errors.Join(errs...)
}
