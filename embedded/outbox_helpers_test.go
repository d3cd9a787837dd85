package embedded

// Helpers of the outbox tests: a PostgreSQL with the core's outbox table,
// an Instant whose Policy is the one the core gives a server, and a
// publish function that decodes a row's params as the server does and
// records them.

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
	"github.com/gin-instant/instant/internal/seam"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

const outboxTestSecret = "outbox-test-secret-0123456789abcdef"

// outboxBindServer is a seam.Server that only records: the Policy Bind is
// given, and the publications Broadcast sends it (what the embedded
// server would publish for the same event).
type outboxBindServer struct {
	mu     sync.Mutex
	policy seam.Policy
	pubs   []seam.Publication
}

func (s *outboxBindServer) Bind(p seam.Policy) error { s.policy = p; return nil }
func (s *outboxBindServer) Handler() http.Handler    { return http.NotFoundHandler() }
func (s *outboxBindServer) Publish(_ context.Context, pubs []seam.Publication) ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pubs = append(s.pubs, pubs...)
	return nil, nil
}
func (s *outboxBindServer) Unsubscribe(context.Context, string, []string) error { return nil }
func (s *outboxBindServer) Disconnect(context.Context, string) error            { return nil }
func (s *outboxBindServer) History(context.Context, string, int) ([]json.RawMessage, error) {
	return nil, nil
}
func (s *outboxBindServer) Presence(_ context.Context, ch []string) ([][]seam.Client, error) {
	return make([][]seam.Client, len(ch)), nil
}
func (s *outboxBindServer) UserChannels(context.Context, string) ([]string, error) { return nil, nil }
func (s *outboxBindServer) Check(context.Context) error                            { return nil }
func (s *outboxBindServer) Describe() string                                       { return "outbox test" }

// outboxEnv is a PostgreSQL holding the outbox table of inst, made with
// the core's OutboxDDL, and the Policy inst gives its server.
type outboxEnv struct {
	pg     *centrifugotest.Postgres
	db     *sql.DB
	inst   *instant.Instant
	server *outboxBindServer
	policy seam.Policy
}

// newOutboxEnv starts PostgreSQL (failing under CI=true when it is
// missing) and creates the outbox of an Instant with table and partitions.
func newOutboxEnv(t *testing.T, table string, partitions int) *outboxEnv {
	t.Helper()
	pg := centrifugotest.SharedPostgres(t)
	e := &outboxEnv{pg: pg, server: &outboxBindServer{}}
	e.db = outboxOpenDB(t, pg)
	inst, err := instant.New(instant.Config{
		TokenSecret:      outboxTestSecret,
		Server:           e.server,
		OutboxTable:      table,
		OutboxPartitions: partitions,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.inst, e.policy = inst, e.server.policy
	ddl := inst.OutboxDDL()
	if schema, _, ok := strings.Cut(table, "."); ok {
		ddl = "CREATE SCHEMA IF NOT EXISTS " + schema + "; " + ddl
	}
	if _, err := e.db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	return e
}

// outboxOpenDB opens a *sql.DB (one "process") on pg.
func outboxOpenDB(t *testing.T, pg *centrifugotest.Postgres) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// broadcastTx writes ev with BroadcastTx in a transaction of its own, and
// commits it or rolls it back.
func (e *outboxEnv) broadcastTx(t testing.TB, ev instant.Event, commit bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.inst.BroadcastTx(ctx, tx, ev); err != nil {
		_ = tx.Rollback()
		t.Fatal(err)
	}
	if commit {
		err = tx.Commit()
	} else {
		err = tx.Rollback()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// rows counts the rows left in the table.
func (e *outboxEnv) rows(t testing.TB) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow("SELECT count(*) FROM " + e.policy.OutboxTable).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs startOutbox on db and stops it when t ends.
func (e *outboxEnv) start(t testing.TB, db *sql.DB, publish outboxPublish, logger *slog.Logger) (stop func()) {
	t.Helper()
	stop, err := startOutbox(context.Background(), db, e.policy, publish, cmp.Or(logger, slog.Default()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return stop
}

// outboxParams are a row's params, decoded as the server decodes them:
// publish {channel, data, idempotency_key, tags?}, broadcast {channels,
// data, idempotency_key, tags?}; nothing else.
type outboxParams struct {
	Channel        string            `json:"channel"`
	Channels       []string          `json:"channels"`
	Data           json.RawMessage   `json:"data"`
	IdempotencyKey string            `json:"idempotency_key"`
	Tags           map[string]string `json:"tags"`
}

// outboxDecode decodes params for method, refusing what the server
// refuses (errOutboxInvalid).
func outboxDecode(method string, params json.RawMessage) ([]string, outboxParams, error) {
	var p outboxParams
	d := json.NewDecoder(bytes.NewReader(params))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return nil, p, fmt.Errorf("%w: %s params: %w", errOutboxInvalid, method, err)
	}
	var channels []string
	switch method {
	case "publish":
		if p.Channel == "" || p.Channels != nil {
			return nil, p, fmt.Errorf("%w: publish needs one channel", errOutboxInvalid)
		}
		channels = []string{p.Channel}
	case "broadcast":
		if len(p.Channels) == 0 || p.Channel != "" {
			return nil, p, fmt.Errorf("%w: broadcast needs channels", errOutboxInvalid)
		}
		channels = p.Channels
	default:
		return nil, p, fmt.Errorf("%w: method %q", errOutboxInvalid, method)
	}
	if len(p.Data) == 0 {
		return nil, p, fmt.Errorf("%w: no data", errOutboxInvalid)
	}
	return channels, p, nil
}

// outboxGot is one publication a recorder received.
type outboxGot struct {
	Channel string
	Data    json.RawMessage
	Key     string
	Tags    map[string]string
	At      time.Time
	By      string // the recorder's name
}

// outboxRecorder is a publish function that records each publication;
// fail, when set, decides whether a call fails (before recording).
type outboxRecorder struct {
	name string
	mu   sync.Mutex
	got  []outboxGot
	// fail returns the error of a call to publish, or nil.
	fail func(channels []string, p outboxParams) error
	// delay is slept (or the context ends) before each publication.
	delay time.Duration
	// shared, when set, also receives every publication (several
	// consumers into one log, in the order they published).
	shared *outboxRecorder
}

func (r *outboxRecorder) publish(ctx context.Context, method string, params json.RawMessage) error {
	channels, p, err := outboxDecode(method, params)
	if err != nil {
		return err
	}
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(channels, p); err != nil {
			return err
		}
	}
	now := time.Now()
	for _, ch := range channels {
		g := outboxGot{Channel: ch, Data: p.Data, Key: p.IdempotencyKey, Tags: p.Tags, At: now, By: r.name}
		r.add(g)
		if r.shared != nil {
			r.shared.add(g)
		}
	}
	return nil
}

func (r *outboxRecorder) add(g outboxGot) {
	r.mu.Lock()
	r.got = append(r.got, g)
	r.mu.Unlock()
}

func (r *outboxRecorder) setFail(f func([]string, outboxParams) error) {
	r.mu.Lock()
	r.fail = f
	r.mu.Unlock()
}

// all returns a copy of what was recorded.
func (r *outboxRecorder) all() []outboxGot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outboxGot(nil), r.got...)
}

// waitFor waits until n publications were recorded, failing t after
// limit.
func (r *outboxRecorder) waitFor(t testing.TB, n int, limit time.Duration) []outboxGot {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := r.all()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d publications after %v, want %d", len(got), limit, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// outboxEvent is the part of an event payload the tests read.
type outboxEvent struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	Message string `json:"message"`
}

func outboxEventOf(t testing.TB, data json.RawMessage) outboxEvent {
	t.Helper()
	var ev outboxEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("data %s: %v", data, err)
	}
	return ev
}

// outboxLog is a slog handler that keeps every record's message and
// attributes as text.
type outboxLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *outboxLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *outboxLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *outboxLog) WithGroup(string) slog.Handler            { return l }
func (l *outboxLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

// matching returns the lines containing s.
func (l *outboxLog) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func (l *outboxLog) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// startOutbox is Bind's start of the outbox: checkOutbox, then runOutbox.
func startOutbox(ctx context.Context, db *sql.DB, p seam.Policy, publish outboxPublish, logger *slog.Logger) (stop func(), err error) {
	if err := checkOutbox(ctx, db, p); err != nil {
		return nil, err
	}
	return runOutbox(ctx, db, p, publish, logger), nil
}
