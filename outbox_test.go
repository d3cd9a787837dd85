package instant_test

// The transactional outbox, a Centrifugo cluster on Redis, and app
// replicas, against real PostgreSQL, Redis and Centrifugo servers started
// on loopback (internal/centrifugotest).

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-contrib/sessions/redis"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// outboxRows lists what the outbox table holds: method, channel, data
// message, idempotency key and partition of each row, in id order.
func outboxRows(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT method, payload, partition FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var method string
		var payload []byte // BYTEA
		var partition int
		if err := rows.Scan(&method, &payload, &partition); err != nil {
			t.Fatal(err)
		}
		var p struct {
			Channel        string
			Data           map[string]any
			IdempotencyKey string `json:"idempotency_key"`
		}
		if err := json.Unmarshal(payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Data["channel"] != p.Channel {
			t.Errorf("row for %s carries a payload naming %v", p.Channel, p.Data["channel"])
		}
		out = append(out, fmt.Sprintf("%s %s %v %s %d", method, p.Channel, p.Data["message"], p.IdempotencyKey, partition))
	}
	return out
}

func TestBroadcastTxWritesCommittedRowsOnly(t *testing.T) {
	t.Parallel()
	pg := centrifugotest.SharedPostgres(t)
	db := openDB(t, pg)
	cfg := testConfig()
	cfg.OutboxTable, cfg.OutboxPartitions = "app.events_outbox", 4
	inst := newInstant(t, cfg)
	if _, err := db.Exec("CREATE SCHEMA app; " + inst.OutboxDDL()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	write := func(commit bool, ev instant.Event) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.BroadcastTx(ctx, tx, ev); err != nil {
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
	write(true, instant.Event{ID: "e1", Channels: []string{"$site_users", "site_public"}, Users: []string{"7"}, Message: "kept"})
	write(false, instant.Event{ID: "e2", Channel: "site_public", Message: "rolled back"})
	write(true, instant.Event{ID: "e3", Channel: "$site_users", Message: "kept too"})
	got := outboxRows(t, db, "app.events_outbox")
	if len(got) != 4 || strings.Contains(strings.Join(got, "\n"), "rolled back") {
		t.Fatalf("outbox rows:\n%s", strings.Join(got, "\n"))
	}
	// One channel, one partition: rows 0 and 3 ($site_users) share theirs.
	part := func(row string) string { return row[strings.LastIndexByte(row, ' ')+1:] }
	if !strings.HasPrefix(got[0], "publish $site_users kept e1 ") || !strings.HasPrefix(got[3], "publish $site_users kept too e3 ") || part(got[0]) != part(got[3]) {
		t.Errorf("rows:\n%s", strings.Join(got, "\n"))
	}
	if !strings.HasPrefix(got[2], "publish $site_user:7 kept e1 ") {
		t.Errorf("the personal channel's row: %s", got[2])
	}
	if s := inst.Stats(); s.OutboxWritten != 3 {
		t.Errorf("Stats %+v, want 3 written", s)
	}
	// Many channels and users, some twice: one row each, in first-seen order.
	if _, err := db.Exec("DELETE FROM app.events_outbox"); err != nil {
		t.Fatal(err)
	}
	var channels, users, want []string
	for k := range 40 {
		channels = append(channels, fmt.Sprintf("$site_users:%d", k%25))
		users = append(users, strconv.Itoa(k%30))
	}
	for k := range 25 {
		want = append(want, fmt.Sprintf("$site_users:%d", k))
	}
	for k := range 30 {
		want = append(want, inst.UserChannel(strconv.Itoa(k)))
	}
	write(true, instant.Event{ID: "many", Channels: channels, Users: users, Message: "many"})
	got = outboxRows(t, db, "app.events_outbox")
	for k := range got {
		got[k] = strings.Fields(got[k])[1]
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows for channels %v", got)
	}
	// A bad event writes nothing; a missing table is the database's error.
	tx, _ := db.BeginTx(ctx, nil)
	defer tx.Rollback()
	if err := inst.BroadcastTx(ctx, tx, instant.Event{Channel: "bad channel"}); !errors.Is(err, instant.ErrInvalidChannel) {
		t.Errorf("bad channel: %v", err)
	}
	cfg.OutboxTable = "no_such_table"
	if err := newInstant(t, cfg).BroadcastTx(ctx, db, instant.Event{Channel: "x"}); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("missing table: %v", err)
	}
	for _, bad := range []string{"a;drop table x", "1abc", "a.b.c", `"quoted"`, ""} {
		cfg.OutboxTable = bad
		if _, err := instant.New(cfg); bad != "" && !errors.Is(err, instant.ErrConfig) {
			t.Errorf("OutboxTable %q: %v", bad, err)
		}
	}
}

// TestLiveOutboxSurvivesAnOutage: 5,000 events through BroadcastTx in
// committed transactions, Centrifugo stopped for two seconds mid-stream:
// after dropping duplicates by id the subscriber has every one, in order,
// and none of the rolled-back transactions' events.
func TestLiveOutboxSurvivesAnOutage(t *testing.T) {
	t.Parallel()
	o := startOutbox(t)
	ls := o.node(t, true)
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe")
	}
	t.Cleanup(func() {
		if t.Failed() {
			var left int
			_ = o.db.QueryRow("SELECT count(*) FROM " + "centrifugo_outbox").Scan(&left)
			subState := "none"
			if sub, ok := lc.subs["$site_users"]; ok {
				subState = string(sub.State())
			}
			t.Logf("client %v, subscription %s, %d rows left in the outbox; centrifugo said:\n%s", lc.c.State(), subState, left, ls.srv.Output())
		}
	})
	const total, perTx = 5000, 10
	ctx := context.Background()
	written := make(chan int, total/perTx)
	failed := make(chan error, 1)
	go func() {
		defer close(written)
		for n := 0; n < total; n += perTx {
			tx, err := o.db.BeginTx(ctx, nil)
			if err == nil {
				for k := n; k < n+perTx && err == nil; k++ {
					err = ls.inst.BroadcastTx(ctx, tx, instant.Event{Channel: "$site_users", Message: fmt.Sprintf("e%04d", k)})
				}
			}
			if err == nil {
				err = tx.Commit()
			}
			if err == nil && n%500 == 0 { // now and then, a transaction that rolls back
				tx, _ := o.db.BeginTx(ctx, nil)
				err = ls.inst.BroadcastTx(ctx, tx, instant.Event{Channel: "$site_users", Message: "rolled back"})
				_ = tx.Rollback()
			}
			if err != nil {
				failed <- err
				return
			}
			written <- n + perTx
		}
	}()
	stopped := false
	for n := range written {
		if !stopped && n >= total/2 {
			stopped = true
			ls.srv.Stop()
			time.Sleep(2 * time.Second)
			ls.srv.Restart(t)
		}
	}
	select {
	case err := <-failed:
		t.Fatal(err)
	default:
	}
	waitCount(t, lc, total, 60*time.Second)
	time.Sleep(300 * time.Millisecond) // room for an event that should not come
	msgs, dups := uniqueMessages(lc)
	if len(msgs) != total {
		t.Fatalf("%d unique events, want %d", len(msgs), total)
	}
	for k, m := range msgs {
		if m != fmt.Sprintf("e%04d", k) {
			t.Fatalf("event %d is %q: out of order or from a rolled-back transaction", k, m)
		}
	}
	t.Logf("%d events in order after the outage; %d duplicate copies dropped", total, dups)
	if n := len(outboxRows(t, o.db, "centrifugo_outbox")); n != 0 {
		t.Errorf("%d rows left in the outbox", n)
	}

	// The same event written twice arrives once.
	for range 2 {
		if err := ls.inst.BroadcastTx(ctx, o.db, instant.Event{ID: "twice", Channel: "$site_users", Message: "written twice"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ls.inst.BroadcastTx(ctx, o.db, instant.Event{Channel: "$site_users", Message: "after twice"}); err != nil {
		t.Fatal(err)
	}
	lc.waitFor("after twice")
	lc.mu.Lock()
	copies := 0
	for _, p := range lc.got {
		if p["id"] == "twice" {
			copies++
		}
	}
	lc.mu.Unlock()
	if copies != 1 {
		t.Errorf("an event written twice arrived %d times", copies)
	}
}

// TestLiveCluster: two Centrifugo nodes on one Redis. An event through
// node A reaches a client of node B; with A stopped, Broadcast goes on
// through B (APIURLs) and nothing is lost; both nodes consuming one outbox
// deliver each event once.
func TestLiveCluster(t *testing.T) {
	t.Parallel()
	o := startOutbox(t)
	a, b := o.node(t, true), o.node(t, true)
	lc := b.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe on node B")
	}
	ctx := context.Background()
	cfg := a.cfg
	cfg.APIURLs = []string{b.cfg.APIURL}
	inst := newInstant(t, cfg) // A first, then B
	for k := range 10 {
		if err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: fmt.Sprintf("c%02d", k)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := waitCount(t, lc, 10, 10*time.Second); got[0] != "c00" {
		t.Errorf("through node A: %v", got)
	}
	a.srv.Stop()
	for k := 10; k < 20; k++ {
		if err := inst.Broadcast(ctx, instant.Event{Channel: "$site_users", Message: fmt.Sprintf("c%02d", k)}); err != nil {
			t.Fatalf("with node A stopped: %v", err)
		}
	}
	got := waitCount(t, lc, 20, 10*time.Second)
	for k, m := range got {
		if m != fmt.Sprintf("c%02d", k) {
			t.Fatalf("event %d is %q", k, m)
		}
	}
	if s := inst.Stats(); s.FailedOver < 10 || s.Published != 20 {
		t.Errorf("Stats %+v, want 20 published, a failover for each after the stop", s)
	}

	a.srv.Restart(t)
	lc.mu.Lock()
	lc.got = nil
	lc.mu.Unlock()
	for k := range 200 {
		if err := inst.BroadcastTx(ctx, o.db, instant.Event{Channel: "$site_users", Message: fmt.Sprintf("o%03d", k)}); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(t, lc, 200, 30*time.Second)
	time.Sleep(500 * time.Millisecond) // room for a second copy
	msgs, dups := uniqueMessages(lc)
	if len(msgs) != 200 || dups != 0 {
		t.Errorf("two consuming nodes: %d events, %d duplicates; want 200 once each", len(msgs), dups)
	}
}

// TestLiveAppReplicas: two app instances share a Redis session store: a
// login on A is the user on B, whose tokens and broadcasts work; a logout
// on B ends it on A.
func TestLiveAppReplicas(t *testing.T) {
	t.Parallel()
	o := startOutbox(t)
	ls := o.node(t, false)
	store := func() redis.Store {
		s, err := redis.NewStore(4, "tcp", o.redis.Addr, "", "", cookieKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	appA := newRouterWith(newInstant(t, ls.cfg), store())
	instB := newInstant(t, ls.cfg)
	appB := newRouterWith(instB, store())
	onA := newBrowser(t, appA).as(&alice)
	onB := newBrowser(t, appB)
	onB.c.Jar = onA.c.Jar // the same browser, its requests served by B
	if _, body := onB.get("/instant/channels"); body["user"] == nil || body["user"].(map[string]any)["id"] != alice.ID {
		t.Fatalf("B does not see A's login: %v", body["user"])
	}
	// A centrifuge-go client whose tokens come from B.
	lcB := ls.connectWith(t, onB)
	if !lcB.subscribe("$site_users", true, "") {
		t.Fatal("could not subscribe with B's token for A's login")
	}
	if err := instB.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "from B"}); err != nil {
		t.Fatal(err)
	}
	lcB.waitFor("from B")
	if status, _ := onB.post("/test/logout", "", nil); status != http.StatusNoContent {
		t.Fatal("logout on B failed")
	}
	if _, body := onA.get("/instant/channels"); body["user"] != nil {
		t.Errorf("A still sees the user after the logout on B: %v", body["user"])
	}
}

// rawSub collects the data bytes of every publication on one channel, as
// a centrifuge-go subscriber receives them.
type rawSub struct {
	mu  sync.Mutex
	got [][]byte
}

func subscribeRaw(t *testing.T, lc *liveClient, channel string) *rawSub {
	t.Helper()
	rs := &rawSub{}
	sub, err := lc.c.NewSubscription(channel, centrifuge.SubscriptionConfig{
		GetToken: func(centrifuge.SubscriptionTokenEvent) (string, error) {
			return lc.token("/instant/subscription_token", map[string]any{"channel": channel})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.OnPublication(func(e centrifuge.PublicationEvent) {
		rs.mu.Lock()
		rs.got = append(rs.got, bytes.Clone(e.Data))
		rs.mu.Unlock()
	})
	if ok, code := awaitSubscribe(t, sub); !ok {
		t.Fatalf("could not subscribe to %s: %d", channel, code)
	}
	return rs
}

// wait returns the n-th publication (from 1), or nil when it has not
// arrived within limit.
func (rs *rawSub) wait(n int, limit time.Duration) []byte {
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		rs.mu.Lock()
		var p []byte
		if len(rs.got) >= n {
			p = rs.got[n-1]
		}
		rs.mu.Unlock()
		if p != nil || time.Now().After(deadline) {
			return p
		}
	}
}

var (
	channelField = regexp.MustCompile(`"channel":"(?:[^"\\]|\\.)*"`)
	dateField    = regexp.MustCompile(`"date":"[^"]*"`)
)

type outboxCase struct {
	name string
	ev   instant.Event
	data string // the data bytes subscribers must receive, when set
}

// TestLiveBroadcastTxDeliversWhatBroadcastDelivers: every event Broadcast
// accepts, BroadcastTx accepts too, in a transaction that also writes an
// app row and then commits; and subscribers receive the same bytes from
// both paths (but for the channel's name and the date).
func TestLiveBroadcastTxDeliversWhatBroadcastDelivers(t *testing.T) {
	t.Parallel()
	o := startOutbox(t)
	ls := o.node(t, true)
	lc := ls.connect(t, &alice)
	direct, personal := "$site_users", ls.inst.UserChannel(alice.ID)
	viaBroadcast, viaTx := subscribeRaw(t, lc, direct), subscribeRaw(t, lc, personal)
	if _, err := o.db.Exec("CREATE TABLE app_rows (n INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	const rewritable = `{"a":1, "a" : 2,"big":123456789012345678901234567890.10,"e":1.0E2 , "s":"\u00e9\u2028\"x\"","z":{ }}`
	events := []outboxCase{
		{"NUL in the message", instant.Event{Message: "a\x00b"}, ""},
		{"NUL in id, class, site and origin-free fields", instant.Event{ID: "id\x00nul", EventClass: "c\x00", Site: "s\x00", Message: "m"}, ""},
		{"lone surrogate escape in raw data", instant.Event{Data: json.RawMessage(`"\ud800"`)}, `"\ud800"`},
		{"NUL escape in raw data", instant.Event{Data: json.RawMessage(`{"\u0000":"\u0000"}`)}, `{"\u0000":"\u0000"}`},
		{"number beyond any float", instant.Event{Data: json.RawMessage(`1e1000000`)}, `1e1000000`},
		{"duplicate keys, big numbers, odd spacing, escapes", instant.Event{ID: "fixed-id", Data: json.RawMessage(rewritable)},
			`{"a":1,"a":2,"big":123456789012345678901234567890.10,"e":1.0E2,"s":"\u00e9\u2028\"x\"","z":{}}`},
		{"a Go value", instant.Event{Data: map[string]any{"n": 1, "s": "<&>\x00"}}, `{"n":1,"s":"\u003c\u0026\u003e\u0000"}`},
		// Refused by both, before anything is written: the app commits.
		{"invalid raw data", instant.Event{Data: json.RawMessage(`{"a":`)}, ""},
		{"a bad channel", instant.Event{Channels: []string{"bad channel"}}, ""},
		{"bytes that are not UTF-8 in raw data", instant.Event{Data: json.RawMessage("\"\xff\xfe\"")}, ""},
		{"raw data nested 9,999 deep", instant.Event{Data: nested(9999)}, ""},
	}
	ctx := context.Background()
	norm := func(p []byte) string {
		return dateField.ReplaceAllString(channelField.ReplaceAllString(string(p), `"channel":_`), `"date":_`)
	}
	accepted := 0
	for k, c := range events {
		ev := c.ev
		if ev.ID == "" {
			ev.ID = fmt.Sprintf("event-%d", k)
		}
		ev.Channel = direct
		refused := ls.inst.Broadcast(ctx, ev)
		ev.Channel = personal
		tx, err := o.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO app_rows VALUES ($1)", k); err != nil {
			t.Fatal(err)
		}
		err = ls.inst.BroadcastTx(ctx, tx, ev)
		switch {
		case refused == nil && err != nil:
			t.Errorf("%s: Broadcast accepts it, BroadcastTx: %v", c.name, err)
		case refused != nil && (err == nil || err.Error() != refused.Error()):
			t.Errorf("%s: Broadcast: %v; BroadcastTx: %v", c.name, refused, err)
		}
		if err := tx.Commit(); err != nil {
			t.Errorf("%s: the app's commit: %v", c.name, err)
		}
		if refused != nil {
			continue
		}
		accepted++
		a := viaBroadcast.wait(accepted, 10*time.Second)
		b := viaTx.wait(accepted, 10*time.Second)
		if a == nil {
			t.Fatalf("%s: Broadcast's publication did not arrive", c.name)
		}
		if b == nil {
			t.Errorf("%s: BroadcastTx's publication did not arrive", c.name)
			viaTx.mu.Lock()
			viaTx.got = append(viaTx.got, nil) // keep counting
			viaTx.mu.Unlock()
			continue
		}
		if norm(a) != norm(b) {
			t.Errorf("%s: the subscriber got different bytes\nBroadcast:   %s\nBroadcastTx: %s", c.name, a, b)
		}
		if c.data != "" && !bytes.Contains(b, []byte(`"data":`+c.data+`,`)) {
			t.Errorf("%s: data is not %s in %s", c.name, c.data, b)
		}
	}
	var committed int
	if err := o.db.QueryRow("SELECT count(*) FROM app_rows").Scan(&committed); err != nil || committed != len(events) {
		t.Errorf("%d of %d app transactions committed (%v)", committed, len(events), err)
	}
	if accepted != len(events)-4 {
		t.Errorf("Broadcast accepted %d events, want all but the 4 it refuses", accepted)
	}
	time.Sleep(300 * time.Millisecond) // room for a publication that should not come
	viaTx.mu.Lock()
	n := len(viaTx.got)
	viaTx.mu.Unlock()
	if n != accepted {
		t.Errorf("%d publications through the outbox, want %d", n, accepted)
	}
}

// TestLiveOutboxTableNames: reserved words and the longest schema-qualified
// names work end to end: OutboxDDL creates the table, the generated config
// passes checkconfig, BroadcastTx commits and notifies the channel the
// consumer listens on, and Centrifugo delivers.
func TestLiveOutboxTableNames(t *testing.T) {
	t.Parallel()
	bin := centrifugotest.Require(t)
	o := startOutbox(t)
	long := strings.Repeat("s", 63) + "." + strings.Repeat("t", 63)
	for _, name := range []string{"order", "user", "public.order", "Select.From", long} {
		t.Run(name[:min(len(name), 16)], func(t *testing.T) {
			o.cfg.OutboxTable = name
			inst := newInstant(t, o.cfg)
			if schema, _, ok := strings.Cut(strings.ToLower(name), "."); ok {
				if _, err := o.db.Exec(`CREATE SCHEMA IF NOT EXISTS "` + schema + `"`); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := o.db.Exec(inst.OutboxDDL()); err != nil {
				t.Fatalf("OutboxDDL: %v\n%s", err, inst.OutboxDDL())
			}
			if _, err := o.db.Exec(inst.OutboxDDL()); err != nil {
				t.Fatalf("OutboxDDL again: %v", err)
			}
			raw, err := inst.CentrifugoConfig(instant.CentrifugoOptions{OutboxDSN: o.pg.DSN})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "checkconfig", "--strict", "-c", path).CombinedOutput(); err != nil {
				t.Fatalf("checkconfig --strict: %v\n%s\n%s", err, out, raw)
			}
			var c struct {
				Consumers []struct {
					PostgreSQL struct {
						Channel string `json:"partition_notification_channel"`
					} `json:"postgresql"`
				} `json:"consumers"`
			}
			if err := json.Unmarshal(raw, &c); err != nil || len(c.Consumers) != 1 {
				t.Fatalf("consumers: %v\n%s", err, raw)
			}
			notifyChannel := c.Consumers[0].PostgreSQL.Channel
			if notifyChannel == "" || len(notifyChannel) > 63 {
				t.Fatalf("notification channel %q: not a PostgreSQL identifier", notifyChannel)
			}
			// Listen where the consumer listens (it quotes the name as pgx.Identifier does).
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := o.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "LISTEN "+pgx.Identifier{notifyChannel}.Sanitize()); err != nil {
				t.Fatal(err)
			}

			ls := o.node(t, true)
			defer ls.srv.Stop()
			lc := ls.connect(t, &alice)
			if !lc.subscribe("$site_users", true, "") {
				t.Fatal("could not subscribe")
			}
			tx, err := o.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := ls.inst.BroadcastTx(ctx, tx, instant.Event{Channel: "$site_users", Message: "to " + name}); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			err = conn.Raw(func(dc any) error {
				n, err := dc.(*stdlib.Conn).Conn().WaitForNotification(ctx)
				if err == nil && (n.Channel != notifyChannel || n.Payload != "0") {
					err = fmt.Errorf("notification %+v", n)
				}
				return err
			})
			if err != nil {
				t.Errorf("no notification on %q: %v", notifyChannel, err)
			}
			lc.waitFor("to " + name)
		})
	}
}

// TestBroadcastTxNilExecer: a typed nil *sql.Tx, *sql.DB, *sql.Conn or
// other Execer is an error, not a panic.
func TestBroadcastTxNilExecer(t *testing.T) {
	inst := newInstant(t, testConfig())
	ev := instant.Event{Channel: "$site_users", Message: "m"}
	var tx *sql.Tx
	var db *sql.DB
	var conn *sql.Conn
	var other *nilExecer
	for name, e := range map[string]instant.Execer{"nil": nil, "*sql.Tx": tx, "*sql.DB": db, "*sql.Conn": conn, "*nilExecer": other} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic %v", name, r)
				}
			}()
			if err := inst.BroadcastTx(context.Background(), e, ev); !errors.Is(err, instant.ErrInvalidEvent) {
				t.Errorf("%s: %v, want ErrInvalidEvent", name, err)
			}
		}()
	}
}

type nilExecer struct{ n int }

func (e *nilExecer) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	e.n++ // a nil receiver panics here
	return nil, nil
}

// TestLiveBroadcastTxManyUsers: one event to 65,536 users' personal
// channels (more than PostgreSQL's 65,535 bind parameters would allow
// one to a row): BroadcastTx and the commit succeed and write one row a
// user, counted in the table; Centrifugo's consumer then publishes a
// sample of them (every 64th row and the users whose history is checked,
// on both sides of the split between statements) and the table drains.
// Consuming all 65,536 rows would add some 10 s of Centrifugo's time to
// make test and show nothing more of ours.
func TestLiveBroadcastTxManyUsers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("64k rows")
	}
	o := startOutbox(t)
	o.cfg.OutboxPartitions = 4
	writer := o.node(t, false) // nothing consumes yet
	users := manyUsers(1 << 16)
	ctx := context.Background()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Some 430 bytes a row, 28 MB in all: two statements of at most 16 MiB.
	pad := json.RawMessage(`{"pad":"` + strings.Repeat("x", 200) + `"}`)
	if err := writer.inst.BroadcastTx(ctx, tx, instant.Event{ID: "to-all", Users: users, Message: "to everyone", Data: pad}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows written in %v", len(users), time.Since(start))
	const channelOf = `convert_from(payload, 'UTF8')::json->>'channel'`
	var rows, channels int
	if err := o.db.QueryRow(`SELECT count(*), count(DISTINCT `+channelOf+`) FROM centrifugo_outbox`).Scan(&rows, &channels); err != nil {
		t.Fatal(err)
	}
	if rows != len(users) || channels != len(users) {
		t.Fatalf("%d rows for %d channels written, want %d of each", rows, channels, len(users))
	}
	checked := []string{users[0], users[1], users[4095], users[40000], users[len(users)-1]}
	keep := make([]string, len(checked))
	for k, id := range checked {
		keep[k] = writer.inst.UserChannel(id)
	}
	res, err := o.db.Exec(`DELETE FROM centrifugo_outbox WHERE id % 64 <> 0 AND `+channelOf+` <> ALL($1)`, keep)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n < int64(len(users))*62/64 {
		t.Fatalf("the sample: %d rows removed of %d", n, len(users))
	}
	ls := o.node(t, true)
	start = time.Now()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if err := o.db.QueryRow("SELECT count(*) FROM centrifugo_outbox").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows == 0 || time.Now().After(deadline) {
			break
		}
	}
	if rows != 0 {
		t.Fatalf("%d rows left in the outbox", rows)
	}
	t.Logf("the sample published in %v", time.Since(start))
	for _, id := range checked {
		pubs := history(t, ls.cfg, ls.inst.UserChannel(id))
		if len(pubs) != 1 || !bytes.Contains(pubs[0], []byte(`"to everyone"`)) || !bytes.Contains(pubs[0], []byte(`"channel":"`+ls.inst.UserChannel(id)+`"`)) {
			t.Errorf("history of %s: %s", id, pubs)
		}
	}
}

// BenchmarkBroadcastTxUsers: one event to 1k, 8k and 64k users' personal
// channels written to the outbox (in a transaction rolled back each time).
func BenchmarkBroadcastTxUsers(b *testing.B) {
	pg := centrifugotest.SharedPostgres(b)
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	inst := newInstant(b, testConfig())
	if _, err := db.Exec(inst.OutboxDDL()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []int{1 << 10, 1 << 13, 1 << 16} {
		ev := instant.Event{ID: "bench", Users: manyUsers(n), Message: "to everyone"}
		b.Run(strconv.Itoa(n>>10)+"k", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := inst.BroadcastTx(ctx, tx, ev); err != nil {
					b.Fatal(err)
				}
				_ = tx.Rollback()
			}
		})
	}
}

// TestOutboxNames: table names are quoted in the DDL and the consumer's
// config; names too long for a PostgreSQL identifier get notification
// channels and index names of at most 63 bytes that still tell two tables
// apart.
func TestOutboxNames(t *testing.T) {
	names := func(table string) (ddl, consumedTable, channel string) {
		cfg := testConfig()
		cfg.OutboxTable = table
		inst := newInstant(t, cfg)
		raw, err := inst.CentrifugoConfig(instant.CentrifugoOptions{OutboxDSN: "postgres://127.0.0.1/x"})
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Consumers []struct {
				PostgreSQL struct {
					Table   string `json:"outbox_table_name"`
					Channel string `json:"partition_notification_channel"`
				} `json:"postgresql"`
			} `json:"consumers"`
		}
		if err := json.Unmarshal(raw, &c); err != nil || len(c.Consumers) != 1 {
			t.Fatalf("%s: %v", raw, err)
		}
		return inst.OutboxDDL(), c.Consumers[0].PostgreSQL.Table, c.Consumers[0].PostgreSQL.Channel
	}
	ddl, table, channel := names("")
	if table != `"centrifugo_outbox"` || channel != "centrifugo_outbox" ||
		!strings.Contains(ddl, `CREATE TABLE IF NOT EXISTS "centrifugo_outbox" (`) ||
		!strings.Contains(ddl, `payload BYTEA NOT NULL`) ||
		!strings.Contains(ddl, `CREATE INDEX IF NOT EXISTS "centrifugo_outbox_partition_id_idx" ON "centrifugo_outbox" (partition, id);`) {
		t.Errorf("default: %s %s\n%s", table, channel, ddl)
	}
	if _, table, channel := names("App.Order"); table != `"app"."order"` || channel != "App.Order" {
		t.Errorf("App.Order: table %s, channel %s", table, channel)
	}
	index := regexp.MustCompile(`CREATE INDEX IF NOT EXISTS "([^"]+)"`)
	long := strings.Repeat("s", 63) + "." + strings.Repeat("t", 62)
	ddlA, _, channelA := names(long + "a")
	ddlB, _, channelB := names(long + "b")
	indexA, indexB := index.FindStringSubmatch(ddlA)[1], index.FindStringSubmatch(ddlB)[1]
	for _, n := range []string{channelA, channelB, indexA, indexB} {
		if len(n) > 63 {
			t.Errorf("%q: longer than 63 bytes", n)
		}
	}
	if channelA == channelB || indexA == indexB {
		t.Errorf("two long tables share names: %s %s, %s %s", channelA, channelB, indexA, indexB)
	}
}

// TestLiveBroadcastTxRefusesUnsafeEvents: BroadcastTx wrote an event whose
// data was not UTF-8 into the outbox (Centrifugo then sent it to every
// subscriber, who dropped), and one nested 9,999 deep (the consumer
// skipped the row, silently, after the app had committed). Both are
// refused with ErrInvalidEvent before any statement: the outbox gets no
// row, and the app's transaction goes on and commits its own work and a
// good event, which is the only one the subscriber gets.
func TestLiveBroadcastTxRefusesUnsafeEvents(t *testing.T) {
	t.Parallel()
	o := startOutbox(t)
	ls := o.node(t, true)
	lc := ls.connect(t, &alice)
	if !lc.subscribe("$site_users", true, "") {
		t.Fatal("alice could not subscribe")
	}
	dropped := make(chan uint32, 8)
	lc.c.OnDisconnected(func(e centrifuge.DisconnectedEvent) { dropped <- e.Code })
	lc.c.OnConnecting(func(e centrifuge.ConnectingEvent) { dropped <- e.Code })
	if _, err := o.db.Exec("CREATE TABLE app_orders (n INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO app_orders VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	for name, ev := range map[string]instant.Event{
		"not UTF-8":      {Channel: "$site_users", Message: "bad bytes", Data: json.RawMessage("{\"name\":\"Ren\xe9\"}")},
		"an ID":          {ID: "order-\xff", Channel: "$site_users", Message: "bad id"},
		"9,999 deep":     {Channel: "$site_users", Message: "deep", Data: nested(9999)},
		"65 deep, a map": {Channel: "$site_users", Message: "deep map", Data: nestedMap(65)},
	} {
		if err := ls.inst.BroadcastTx(ctx, tx, ev); !errors.Is(err, instant.ErrInvalidEvent) {
			t.Errorf("%s: BroadcastTx = %.300v, want ErrInvalidEvent", name, err)
		}
	}
	var rows int
	if err := tx.QueryRow("SELECT count(*) FROM centrifugo_outbox").Scan(&rows); err != nil {
		t.Fatalf("the transaction is broken after the refusals: %v", err)
	}
	if rows != 0 {
		t.Errorf("the refused events wrote %d outbox rows", rows)
	}
	if _, err := tx.Exec("INSERT INTO app_orders VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := ls.inst.BroadcastTx(ctx, tx, instant.Event{Channel: "$site_users", Message: "good"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("the app's commit: %v", err)
	}
	lc.waitFor("good")
	quiet()
	if msgs, _ := uniqueMessages(lc); !slices.Equal(msgs, []string{"good"}) {
		t.Errorf("alice received %q, want only the good event", msgs)
	}
	var orders int
	if err := o.db.QueryRow("SELECT count(*) FROM app_orders").Scan(&orders); err != nil || orders != 2 {
		t.Errorf("the app committed %d orders (%v), want 2", orders, err)
	}
	select {
	case code := <-dropped:
		t.Errorf("alice's connection dropped (code %d)", code)
	default:
	}
}
