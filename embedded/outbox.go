package embedded

// The outbox consumer: in one transaction a partition, under an advisory lock, rows are
// published in id order up to the first failure, then deleted. database/sql cannot LISTEN, hence the poll.

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
	"sync/atomic"
	"time"

	"github.com/gin-instant/instant/internal/seam"
)

const (
	outboxPoll      = 300 * time.Millisecond // Centrifugo's partition_poll_interval
	outboxBatch     = 100                    // Centrifugo's partition_select_limit
	outboxWorkers   = 4                      // partitions (connections) read at once
	outboxTxTimeout = 10 * time.Second       // not cut by stop: published rows get deleted
)

// errOutboxInvalid (or seam.ErrUnknownChannel) marks a row never publishable: logged, without its payload, and deleted.
var (
	errOutboxInvalid = errors.New("embedded: outbox row cannot be published")
	errOutboxBusy    = errors.New("embedded: outbox partition locked by another consumer")
)

// outboxPublish publishes one row's method and params (Centrifugo's API).
type outboxPublish func(ctx context.Context, method string, params json.RawMessage) error

type outboxConsumer struct {
	db      *sql.DB
	table   string
	publish outboxPublish
	logger  *slog.Logger
	retry   []streak // per partition: its worker's, or the poller's between rounds
}

// runOutbox consumes p's table, which checkOutbox has passed (ctx bounds
// only a count at the start), until stop, which deletes the rows published
// and waits.
func runOutbox(ctx context.Context, db *sql.DB, p seam.Policy, publish outboxPublish, logger *slog.Logger) (stop func()) {
	n := max(p.OutboxPartitions, 1)
	c := &outboxConsumer{db, p.OutboxTable, publish, logger, make([]streak, n)}
	var stray int64
	if db.QueryRowContext(ctx, `SELECT count(*) FROM `+c.table+` WHERE partition < 0 OR partition >= $1`, n).Scan(&stray) == nil && stray > 0 {
		c.logger.Warn("embedded: outbox rows in partitions this process does not read: they wait for a process with as many OutboxPartitions as wrote them",
			"table", c.table, "partitions", n, "rows", stray)
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); c.run(run) }()
	return sync.OnceFunc(func() { cancel(); <-done })
}

// run lists the partitions holding rows every outboxPoll, at once after a full batch.
func (c *outboxConsumer) run(ctx context.Context) {
	var table streak
	for ctx.Err() == nil {
		var parts sql.NullString
		err := c.db.QueryRowContext(ctx, `SELECT string_agg(p::text, ',') FROM generate_series(0, $1::int - 1) AS p WHERE EXISTS (SELECT 1 FROM `+c.table+` WHERE partition = p)`, len(c.retry)).Scan(&parts)
		if ctx.Err() != nil {
			return
		}
		table.note(c.logger, err, "embedded: outbox: cannot read the table; retrying", "embedded: outbox: reading the table again", "table", c.table)
		wait := time.Until(table.next)
		if err == nil {
			if c.round(ctx, strings.Split(parts.String, ",")) {
				continue
			}
			wait = outboxPoll
			for _, r := range c.retry {
				if r.n > 0 {
					wait = min(wait, time.Until(r.next))
				}
			}
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// round reads a batch of each partition due, and reports a full one.
func (c *outboxConsumer) round(ctx context.Context, parts []string) bool {
	var wg sync.WaitGroup
	var full atomic.Bool
	sem := make(chan struct{}, outboxWorkers)
	for _, s := range parts {
		p, err := strconv.Atoi(s)
		if err != nil || time.Now().Before(c.retry[p].next) {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := c.batch(ctx, p)
			if errors.Is(err, errOutboxBusy) || ctx.Err() != nil {
				return // another process reads it, or stopping
			}
			c.retry[p].note(c.logger, err, "embedded: outbox: cannot publish; the rows stay in the table and are retried",
				"embedded: outbox: publishing again", "table", c.table, "partition", p)
			if err == nil && n == outboxBatch {
				full.Store(true)
			}
		})
	}
	wg.Wait()
	return full.Load()
}

// batch publishes and deletes partition p's first rows; it returns how many it read and the error that stopped it.
func (c *outboxConsumer) batch(ctx context.Context, p int) (n int, pubErr error) {
	dbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outboxTxTimeout)
	defer cancel()
	tx, err := c.db.BeginTx(dbCtx, nil)
	if err != nil {
		return 0, fmt.Errorf("embedded: outbox: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var locked bool
	if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended('instant outbox ' || $1::text::regclass::oid::text || ' ' || $2::int::text, 0))`, c.table, p).Scan(&locked); err != nil {
		return 0, fmt.Errorf("embedded: outbox: lock partition %d: %w", p, err)
	} else if !locked {
		return 0, errOutboxBusy
	}
	rows, err := tx.QueryContext(dbCtx, `SELECT id, method, payload FROM `+c.table+` WHERE partition = $1 ORDER BY id LIMIT $2`, p, outboxBatch)
	if err != nil {
		return 0, fmt.Errorf("embedded: outbox: read partition %d: %w", p, err)
	}
	defer rows.Close()
	var done []string // published or dropped; after stop, the rest waits
	for pubErr == nil && ctx.Err() == nil && rows.Next() {
		var id int64
		var method string
		var payload []byte
		if err := rows.Scan(&id, &method, &payload); err != nil {
			return 0, fmt.Errorf("embedded: outbox: read partition %d: %w", p, err)
		}
		n++
		pubErr = func() (err error) {
			defer func() { // a panic makes an invalid row, not one retried forever
				if v := recover(); v != nil {
					err = fmt.Errorf("%w: publish panicked: %v", errOutboxInvalid, v)
				}
			}()
			return c.publish(ctx, method, payload)
		}()
		if errors.Is(pubErr, errOutboxInvalid) || errors.Is(pubErr, seam.ErrUnknownChannel) {
			c.logger.Error("embedded: outbox: row dropped: it can never be published", "table", c.table, "partition", p,
				"id", id, "payload_bytes", len(payload), "error", pubErr)
			pubErr = nil
		}
		if pubErr == nil {
			done = append(done, strconv.FormatInt(id, 10))
		} else {
			pubErr = fmt.Errorf("embedded: outbox: row %d (partition %d): %w", id, p, pubErr)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("embedded: outbox: read partition %d: %w", p, err)
	}
	// By id: a row of a lower id committed later is not deleted unseen.
	if len(done) > 0 {
		if _, err := tx.ExecContext(dbCtx, `DELETE FROM `+c.table+` WHERE id = ANY(string_to_array($1::text, ',')::bigint[])`, strings.Join(done, ",")); err != nil {
			return 0, fmt.Errorf("embedded: outbox: delete %d published rows: %w", len(done), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("embedded: outbox: commit: %w", err)
	}
	return n, pubErr
}

// streak is a run of failures: the first and the end are logged.
type streak struct {
	n           int
	since, next time.Time
}

func (s *streak) note(logger *slog.Logger, err error, failed, recovered string, attrs ...any) {
	switch {
	case err != nil:
		if s.n == 0 {
			s.since = time.Now()
			logger.Error(failed, append(attrs, "error", err)...)
		}
		s.n++
		s.next = time.Now().Add(min(100*time.Millisecond<<min(s.n-1, 6), 5*time.Second))
	case s.n > 0:
		logger.Info(recovered, append(attrs, "failures", s.n, "after", time.Since(s.since))...)
		*s = streak{}
	}
}

// checkOutbox reports, joined, how p's table differs from OutboxDDL's.
func checkOutbox(ctx context.Context, db *sql.DB, p seam.Policy) error {
	const fix = "create it with (*instant.Instant).OutboxDDL()"
	t := p.OutboxTable
	var kind, cols string // cols: " name:type" each, "+" after a type with a default
	err := db.QueryRowContext(ctx, `SELECT c.relkind::text, coalesce(string_agg(' ' || a.attname || ':' || y.typname || CASE WHEN a.atthasdef OR a.attidentity <> '' THEN '+' ELSE '' END, ''), '')
FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped LEFT JOIN pg_type y ON y.oid = a.atttypid
WHERE c.oid = to_regclass($1::text) GROUP BY c.relkind`, t).Scan(&kind, &cols)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("embedded: outbox table %s does not exist: %s", t, fix)
	case err != nil:
		return fmt.Errorf("embedded: outbox table %s: %w", t, err)
	case kind != "r" && kind != "p":
		return fmt.Errorf("embedded: outbox %s is not a table: %s", t, fix)
	}
	types := map[string]string{}
	for _, f := range strings.Fields(cols) {
		name, typ, _ := strings.Cut(f, ":")
		types[name] = typ
	}
	var errs []error
	for _, col := range [][3]string{{"id", "int8 int4", "BIGSERIAL"}, {"method", "text varchar", "TEXT"}, {"payload", "bytea", "BYTEA"}, {"partition", "int4 int8 int2", "INTEGER"}} {
		typ, ok := types[col[0]]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("embedded: outbox table %s has no column %s (%s): %s", t, col[0], col[2], fix))
		case !slices.Contains(strings.Fields(col[1]), strings.TrimSuffix(typ, "+")):
			errs = append(errs, fmt.Errorf("embedded: outbox table %s: column %s is %s, not %s: %s (BroadcastTx writes what it makes)", t, col[0], strings.TrimSuffix(typ, "+"), col[2], fix))
		case col[0] == "id" && !strings.HasSuffix(typ, "+"):
			errs = append(errs, fmt.Errorf("embedded: outbox table %s: column id has no default (BIGSERIAL): %s", t, fix))
		}
	}
	return errors.Join(errs...)
}
