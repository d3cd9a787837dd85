package embedded

// The outbox consumer against a real PostgreSQL, its rows written by the
// core's own BroadcastTx into the table the core's OutboxDDL makes, each
// publication decoded as the server decodes it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/seam"
)

// outboxNoMore waits out two polls and checks nothing more was published.
func outboxNoMore(t *testing.T, r *outboxRecorder, n int) {
	t.Helper()
	time.Sleep(2*outboxPoll + 100*time.Millisecond)
	if got := r.all(); len(got) != n {
		var extra []string
		for _, g := range got[min(n, len(got)):] {
			extra = append(extra, g.Key+" to "+g.Channel)
		}
		t.Fatalf("%d publications, want %d; the extra ones: %v", len(got), n, extra)
	}
}

// outboxInOrder checks that each channel's messages are 0, 1, 2... in the
// order got holds them, and that every idempotency key came once; it
// returns the count of each channel.
func outboxInOrder(t *testing.T, got []outboxGot) map[string]int {
	t.Helper()
	next := map[string]int{}
	seen := map[string]bool{}
	for _, g := range got {
		ev := outboxEventOf(t, g.Data)
		if ev.Channel != g.Channel {
			t.Errorf("publication to %s carries an event for %s", g.Channel, ev.Channel)
		}
		if seen[g.Key+" "+g.Channel] {
			t.Errorf("%s published twice to %s", g.Key, g.Channel)
		}
		seen[g.Key+" "+g.Channel] = true
		if ev.Message != strconv.Itoa(next[g.Channel]) {
			t.Errorf("%s: message %s where %d was due", g.Channel, ev.Message, next[g.Channel])
		}
		n, _ := strconv.Atoi(ev.Message)
		next[g.Channel] = n + 1
	}
	return next
}

// outboxWriteSeq writes, for each of users, events with the messages 0 to
// per-1 to their personal channels, txs events a transaction, in order.
func outboxWriteSeq(t *testing.T, e *outboxEnv, prefix string, users []string, per, txs int) {
	t.Helper()
	ctx := context.Background()
	seq := 0
	for n := 0; n < per; {
		tx, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < txs && n < per; k++ {
			for _, u := range users {
				ev := instant.Event{ID: fmt.Sprintf("%s-%d", prefix, seq), Users: []string{u}, Message: strconv.Itoa(n)}
				seq++
				if err := e.inst.BroadcastTx(ctx, tx, ev); err != nil {
					t.Fatal(err)
				}
			}
			n++
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func outboxUsers(n int) []string {
	users := make([]string, n)
	for k := range users {
		users[k] = "u" + strconv.Itoa(k)
	}
	return users
}

var outboxDate = regexp.MustCompile(`"date":"[^"]*"`)

func TestOutboxPublishesCommittedEventsOnce(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "centrifugo_outbox", 4)
	e.broadcastTx(t, instant.Event{ID: "rolled-back", Target: instant.LevelPublic, Message: "never"}, false)
	ev := instant.Event{
		ID:      "committed-1",
		Channel: "site_public",
		Users:   []string{"1", "2", "3"},
		Message: "<b>é & \"q\"\u2028",
		// Spacing and number forms a JSONB column would rewrite.
		Data:   json.RawMessage(`{"a": 1,  "b":[1.0e2, "\u00e9"]}`),
		Origin: "tab-1",
	}
	e.broadcastTx(t, ev, true)

	// The data bytes each row holds, as BroadcastTx wrote them.
	stored := map[string]string{}
	rows, err := e.db.Query("SELECT payload FROM " + e.policy.OutboxTable)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		_, p, err := outboxDecode("publish", payload)
		if err != nil {
			t.Fatal(err)
		}
		s := string(payload)
		start := strings.Index(s, `,"data":`) + len(`,"data":`)
		end := strings.LastIndex(s, `,"idempotency_key":`)
		stored[p.Channel] = s[start:end]
	}
	rows.Close()
	if len(stored) != 4 {
		t.Fatalf("%d rows for the committed event to 4 channels: %v", len(stored), stored)
	}

	// What Broadcast gives the server for the same event.
	if err := e.inst.Broadcast(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	direct := map[string]string{}
	for _, p := range e.server.pubs {
		direct[p.Channel] = string(p.Data)
		if p.Origin != "tab-1" || p.IdempotencyKey != "committed-1" {
			t.Errorf("Broadcast: %+v", p)
		}
	}

	r := &outboxRecorder{name: "a"}
	e.start(t, e.db, r.publish, nil)
	r.waitFor(t, 4, 5*time.Second)
	outboxNoMore(t, r, 4)
	for _, g := range r.all() {
		if g.Key != "committed-1" {
			t.Errorf("published %s to %s", g.Key, g.Channel)
		}
		if g.Tags["origin"] != "tab-1" || len(g.Tags) != 1 {
			t.Errorf("%s: tags %v, want origin tab-1", g.Channel, g.Tags)
		}
		if string(g.Data) != stored[g.Channel] {
			t.Errorf("%s: published\n%s\nthe row held\n%s", g.Channel, g.Data, stored[g.Channel])
		}
		// Byte for byte what Broadcast sends, but for the time it was sent.
		date := outboxDate.FindString(string(g.Data))
		if want := outboxDate.ReplaceAllLiteralString(direct[g.Channel], date); string(g.Data) != want {
			t.Errorf("%s: published\n%s\nBroadcast sends\n%s", g.Channel, g.Data, want)
		}
		delete(stored, g.Channel)
	}
	if len(stored) != 0 {
		t.Errorf("never published to %v", stored)
	}
	if n := e.rows(t); n != 0 {
		t.Errorf("%d rows left", n)
	}
}

func TestOutboxKeepsOrderPerPartition(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "app.events", 4)
	r := &outboxRecorder{name: "a"}
	e.start(t, e.db, r.publish, nil)
	users := outboxUsers(6)
	// 40 transactions of 3 events a user, while the consumer reads.
	outboxWriteSeq(t, e, "seq", users, 120, 3)
	got := r.waitFor(t, 6*120, 10*time.Second)
	outboxNoMore(t, r, 6*120)
	for ch, n := range outboxInOrder(t, got) {
		if n != 120 {
			t.Errorf("%s: %d events, want 120", ch, n)
		}
	}
	if n := e.rows(t); n != 0 {
		t.Errorf("%d rows left", n)
	}
}

func TestOutboxKeepsRowsWhileServerDown(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "centrifugo_outbox", 2)
	users := outboxUsers(4)
	outboxWriteSeq(t, e, "before", users, 5, 2)
	var parts int
	if err := e.db.QueryRow("SELECT count(DISTINCT partition) FROM " + e.policy.OutboxTable).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	down := errors.New("broker unreachable")
	var mu sync.Mutex
	calls := 0
	r := &outboxRecorder{name: "a"}
	r.setFail(func([]string, outboxParams) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return down
	})
	log := &outboxLog{}
	e.start(t, e.db, r.publish, slog.New(log))
	time.Sleep(time.Second)
	// More events while the server is down, after the first ones.
	ctx := context.Background()
	for n := 5; n < 8; n++ {
		tx, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if err := e.inst.BroadcastTx(ctx, tx, instant.Event{ID: fmt.Sprintf("during-%s-%d", u, n), Users: []string{u}, Message: strconv.Itoa(n)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	if n := e.rows(t); n != 4*8 {
		t.Fatalf("%d rows while the server is down, want all %d", n, 4*8)
	}
	mu.Lock()
	tried := calls
	mu.Unlock()
	// Tried again (100 ms, 200, 400, 800: some 5 times a partition in
	// 2 s), not hammered.
	if tried < 2*parts || tried > 8*parts {
		t.Errorf("%d attempts in 2 s over %d partitions: no retry, or no backoff", tried, parts)
	}
	if lines := log.matching("cannot publish"); len(lines) != parts {
		t.Errorf("%d failure lines for %d partitions, want one each:\n%s", len(lines), parts, log.all())
	}

	r.setFail(nil)
	got := r.waitFor(t, 4*8, 10*time.Second)
	outboxNoMore(t, r, 4*8)
	for ch, n := range outboxInOrder(t, got) {
		if n != 8 {
			t.Errorf("%s: %d events, want 8", ch, n)
		}
	}
	if n := e.rows(t); n != 0 {
		t.Errorf("%d rows left", n)
	}
	if lines := log.matching("cannot publish"); len(lines) != parts {
		t.Errorf("%d failure lines, want %d:\n%s", len(lines), parts, log.all())
	}
	if lines := log.matching("publishing again"); len(lines) != parts {
		t.Errorf("%d recovery lines, want %d:\n%s", len(lines), parts, log.all())
	}
	if !strings.Contains(log.all(), "broker unreachable") {
		t.Errorf("the failure's cause is not logged:\n%s", log.all())
	}
}

func TestOutboxConsumersShareWork(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "centrifugo_outbox", 8)
	shared := &outboxRecorder{name: "both"}
	a := &outboxRecorder{name: "a", shared: shared, delay: time.Millisecond}
	b := &outboxRecorder{name: "b", shared: shared, delay: time.Millisecond}
	// Two processes: a *sql.DB each.
	e.start(t, e.db, a.publish, nil)
	e.start(t, outboxOpenDB(t, e.pg), b.publish, nil)
	users := outboxUsers(16)
	const per = 40
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; n < per; n += 4 {
			outboxWriteSeqFrom(t, e, users, n, 4)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	<-done
	got := shared.waitFor(t, 16*per, 20*time.Second)
	outboxNoMore(t, shared, 16*per)
	for ch, n := range outboxInOrder(t, got) {
		if n != per {
			t.Errorf("%s: %d events, want %d", ch, n, per)
		}
	}
	na, nb := len(a.all()), len(b.all())
	if na == 0 || nb == 0 {
		t.Errorf("a published %d, b %d: one did all the work", na, nb)
	}
	t.Logf("a published %d, b %d", na, nb)
	if n := e.rows(t); n != 0 {
		t.Errorf("%d rows left", n)
	}
}

// outboxWriteSeqFrom writes messages from to from+count-1 to each user's
// channel, one transaction each message.
func outboxWriteSeqFrom(t *testing.T, e *outboxEnv, users []string, from, count int) {
	ctx := context.Background()
	for n := from; n < from+count; n++ {
		tx, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			t.Error(err)
			return
		}
		for _, u := range users {
			if err := e.inst.BroadcastTx(ctx, tx, instant.Event{ID: fmt.Sprintf("%s-%d", u, n), Users: []string{u}, Message: strconv.Itoa(n)}); err != nil {
				t.Error(err)
				return
			}
		}
		if err := tx.Commit(); err != nil {
			t.Error(err)
			return
		}
	}
}

func TestOutboxPoisonRowDoesNotBlockItsPartition(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "centrifugo_outbox", 1)
	e.broadcastTx(t, instant.Event{ID: "first", Target: instant.LevelPublic, Message: "0"}, true)
	poison := []struct{ method, payload string }{
		{"frobnicate", `{"channel":"site_public","data":{"s":"POISON-1"}}`},
		{"publish", `not json POISON-2`},
		{"publish", `"POISON-3"`},
		{"publish", `{"channel":"site_public","data":{"s":"POISON-4"},"unknown":1}`},
		{"publish", `{"channel":"refused","data":{"s":"POISON-5"}}`},
		{"broadcast", `{"channels":[],"data":{"s":"POISON-6"}}`},
		{"publish", `{"channel":"panics","data":{"s":"POISON-7"}}`},
	}
	for _, p := range poison {
		if _, err := e.db.Exec("INSERT INTO "+e.policy.OutboxTable+" (method, payload) VALUES ($1, $2)", p.method, []byte(p.payload)); err != nil {
			t.Fatal(err)
		}
	}
	e.broadcastTx(t, instant.Event{ID: "second", Target: instant.LevelPublic, Message: "1"}, true)
	r := &outboxRecorder{name: "a"}
	r.setFail(func(channels []string, _ outboxParams) error {
		if slices.Contains(channels, "refused") {
			return fmt.Errorf("channel refused: %w", seam.ErrUnknownChannel)
		}
		if slices.Contains(channels, "panics") {
			panic("a bug in the server")
		}
		return nil
	})
	log := &outboxLog{}
	e.start(t, e.db, r.publish, slog.New(log))
	got := r.waitFor(t, 2, 5*time.Second)
	outboxNoMore(t, r, 2)
	outboxInOrder(t, got)
	if got[0].Key != "first" || got[1].Key != "second" {
		t.Errorf("published %s, %s", got[0].Key, got[1].Key)
	}
	if n := e.rows(t); n != 0 {
		t.Errorf("%d rows left", n)
	}
	dropped := log.matching("row dropped")
	if len(dropped) != len(poison) {
		t.Errorf("%d rows dropped, want %d:\n%s", len(dropped), len(poison), log.all())
	}
	for _, line := range dropped {
		if !strings.Contains(line, " id=") || !strings.Contains(line, "partition=0") {
			t.Errorf("the line does not say which row: %s", line)
		}
	}
	if strings.Contains(log.all(), "POISON") {
		t.Errorf("a row's data was logged:\n%s", log.all())
	}
}

func TestOutboxSurvivesTableOutage(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "centrifugo_outbox", 2)
	r := &outboxRecorder{name: "a"}
	log := &outboxLog{}
	e.start(t, e.db, r.publish, slog.New(log))
	outboxWriteSeq(t, e, "before", outboxUsers(3), 2, 1)
	r.waitFor(t, 6, 5*time.Second)
	// The table goes away for a second (a migration gone wrong), with
	// rows in it.
	if _, err := e.db.Exec("BEGIN; LOCK TABLE centrifugo_outbox; ALTER TABLE centrifugo_outbox RENAME TO away; COMMIT"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`INSERT INTO away (method, payload, partition) SELECT 'publish', convert_to('{"channel":"$site_user:u0","data":{"id":"x","channel":"$site_user:u0","message":"2"},"idempotency_key":"while-away"}', 'UTF8'), 0`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if lines := log.matching("cannot read the table"); len(lines) != 1 {
		t.Errorf("%d lines for the missing table, want 1:\n%s", len(lines), log.all())
	}
	if _, err := e.db.Exec("ALTER TABLE away RENAME TO centrifugo_outbox"); err != nil {
		t.Fatal(err)
	}
	got := r.waitFor(t, 7, 10*time.Second)
	outboxNoMore(t, r, 7)
	if got[6].Key != "while-away" {
		t.Errorf("published %s last", got[6].Key)
	}
	if lines := log.matching("reading the table again"); len(lines) != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", len(lines), log.all())
	}
}

func TestOutboxBackoff(t *testing.T) {
	var s streak
	var got []time.Duration
	for range 9 {
		s.note(slog.New(slog.DiscardHandler), errors.New("down"), "", "")
		got = append(got, time.Until(s.next).Round(100*time.Millisecond))
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms, 5000 * ms}
	if !slices.Equal(got, want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
}

func TestOutboxCheck(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "centrifugo_outbox", 1)
	for _, ddl := range []string{
		`CREATE TABLE no_payload (id BIGSERIAL PRIMARY KEY, method TEXT NOT NULL, partition INTEGER NOT NULL DEFAULT 0)`,
		`CREATE TABLE jsonb_payload (id BIGSERIAL PRIMARY KEY, method TEXT NOT NULL, payload JSONB NOT NULL, partition INTEGER NOT NULL DEFAULT 0)`,
		`CREATE TABLE no_serial (id BIGINT PRIMARY KEY, method TEXT NOT NULL, payload BYTEA NOT NULL)`,
		`CREATE VIEW a_view AS SELECT * FROM centrifugo_outbox`,
	} {
		if _, err := e.db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, table string
		want        []string // in the error; none: nil
	}{
		{"the DDL's table", e.policy.OutboxTable, nil},
		{"schema-qualified", `"public"."centrifugo_outbox"`, nil},
		{"missing", `"public"."missing"`, []string{`"public"."missing" does not exist`, "OutboxDDL"}},
		{"missing schema", `"nowhere"."centrifugo_outbox"`, []string{"does not exist", "OutboxDDL"}},
		{"no payload", `"no_payload"`, []string{"no column payload", "OutboxDDL"}},
		{"jsonb payload", `"jsonb_payload"`, []string{"payload is jsonb, not BYTEA", "OutboxDDL"}},
		{"no serial, no partition", `"no_serial"`, []string{"id has no default", "no column partition"}},
		{"a view", `"a_view"`, []string{"not a table"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := seam.Policy{OutboxTable: c.table, OutboxPartitions: 1}
			err := checkOutbox(context.Background(), e.db, p)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\ndoes not say %q", err, w)
				}
			}
			// startOutbox refuses it at once, with the same error.
			start := time.Now()
			stop, serr := startOutbox(context.Background(), e.db, p, (&outboxRecorder{}).publish, nil)
			if serr == nil {
				stop()
				t.Fatal("startOutbox started")
			}
			if serr.Error() != err.Error() || time.Since(start) > time.Second {
				t.Errorf("startOutbox after %v: %v", time.Since(start), serr)
			}
		})
	}
}

func TestOutboxStopLeavesUnpublishedRows(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "centrifugo_outbox", 2)
	outboxWriteSeq(t, e, "stop", outboxUsers(4), 75, 25) // 300 rows
	r := &outboxRecorder{name: "a", delay: 5 * time.Millisecond}
	stop := e.start(t, e.db, r.publish, nil)
	r.waitFor(t, 20, 5*time.Second)
	start := time.Now()
	stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("stop took %v", d)
	}
	stop() // again: no effect
	got := r.all()
	time.Sleep(2 * outboxPoll)
	if n := len(r.all()); n != len(got) {
		t.Errorf("%d publications after stop", n-len(got))
	}
	if len(got) >= 300 {
		t.Fatalf("all %d published before stop: nothing to check", len(got))
	}
	published := map[string]bool{}
	for _, g := range got {
		published[g.Key] = true
	}
	rows, err := e.db.Query("SELECT payload FROM " + e.policy.OutboxTable)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	left := 0
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		_, p, err := outboxDecode("publish", payload)
		if err != nil {
			t.Fatal(err)
		}
		if published[p.IdempotencyKey] {
			t.Errorf("%s published and still in the table", p.IdempotencyKey)
		}
		left++
	}
	if len(got)+left != 300 {
		t.Errorf("%d published and %d left, of 300", len(got), left)
	}
	t.Logf("stop after %d published, %d rows left", len(got), left)
}

// TestOutboxMeasure measures one consumer: rows a second for 10,000 rows
// (publish a no-op), and the time from commit to publish, with the 300 ms
// poll (go test -run OutboxMeasure -v for the figures).
func TestOutboxMeasure(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t, "centrifugo_outbox", 1)
	users := outboxUsers(100)
	for k := range 100 { // 100 events to 100 channels each
		e.broadcastTx(t, instant.Event{ID: "m" + strconv.Itoa(k), Users: users, Message: "x"}, true)
	}
	if n := e.rows(t); n != 10000 {
		t.Fatalf("%d rows", n)
	}
	var count sync.WaitGroup
	count.Add(10000)
	noop := func(context.Context, string, json.RawMessage) error { count.Done(); return nil }
	start := time.Now()
	stop := e.start(t, e.db, noop, nil)
	count.Wait()
	for e.rows(t) != 0 {
		time.Sleep(time.Millisecond)
	}
	d := time.Since(start)
	stop()
	rate := 10000 / d.Seconds()
	t.Logf("one consumer: 10,000 rows in %v, %.0f rows/s", d.Round(time.Millisecond), rate)
	if rate < 500 {
		t.Errorf("%.0f rows/s", rate)
	}

	r := &outboxRecorder{name: "a"}
	e.start(t, e.db, r.publish, nil)
	const samples = 40
	committed := map[string]time.Time{}
	for k := range samples {
		time.Sleep(time.Duration(rand.IntN(120)) * time.Millisecond)
		id := "lat" + strconv.Itoa(k)
		e.broadcastTx(t, instant.Event{ID: id, Target: instant.LevelPublic, Message: "x"}, true)
		committed[id] = time.Now()
	}
	got := r.waitFor(t, samples, 5*time.Second)
	lat := make([]time.Duration, 0, samples)
	for _, g := range got {
		lat = append(lat, g.At.Sub(committed[g.Key]))
	}
	slices.Sort(lat)
	p50, p90 := lat[len(lat)/2], lat[len(lat)*9/10]
	t.Logf("commit to publish, %d samples: p50 %v, p90 %v, max %v", samples,
		p50.Round(time.Millisecond), p90.Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	if p50 > outboxPoll || lat[len(lat)-1] > outboxPoll+200*time.Millisecond {
		t.Errorf("p50 %v, max %v with a %v poll", p50, lat[len(lat)-1], outboxPoll)
	}
}
