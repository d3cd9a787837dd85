package embedded_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// TestBroadcastTxThroughTheServer: an event BroadcastTx writes in a
// transaction that commits reaches a subscriber, once; one whose
// transaction rolls back never does; rows that can never be published (no
// data, no channel, not JSON) ahead of it do not hold it back. The server
// consumes the outbox: the embedded one with Options.OutboxDB, Centrifugo
// with its PostgreSQL consumer (CentrifugoOptions.OutboxDSN).
func TestBroadcastTxThroughTheServer(t *testing.T) {
	forEachServer(t, func(t *testing.T, newSite newSiteFunc) {
		outbox := startOutboxDB(t)
		broadcastTx(t, newSite(t, siteOptions{outbox: outbox}), outbox.db)
	})
}

func broadcastTx(t *testing.T, st *site, db *sql.DB) {
	alice := st.connect(t, st.browser(t, "1"))
	users, _ := alice.subscribe("$site_users", alice.withToken("$site_users"))
	if users == nil {
		t.Fatal("alice could not subscribe")
	}
	for _, poison := range []string{`{"channel":"$site_users"}`, `{"channel":"","data":{}}`, `not json`} {
		if _, err := db.Exec(`INSERT INTO centrifugo_outbox (method, payload, partition) VALUES ('publish', convert_to($1, 'UTF8'), 0)`, poison); err != nil {
			t.Fatal(err)
		}
	}
	for _, commit := range []bool{false, true} {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		msg := map[bool]string{false: "rolled back", true: "committed"}[commit]
		if err := st.inst.BroadcastTx(context.Background(), tx, eventTo("$site_users", msg)); err != nil {
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
	users.waitMessage(t, "committed")
	time.Sleep(400 * time.Millisecond) // a poll more: no second copy, nothing rolled back
	if got := strings.Join(users.messages(), ","); got != "committed" {
		t.Errorf("the subscriber received %q, want the committed event once", got)
	}
}

// TestCheckNamesTheOutboxTable: Instant.Check on an embedded Instant with
// Options.OutboxDB reports nothing while the outbox table is there, then
// names it once it is gone (Check on a Centrifugo Instant asks Centrifugo
// instead: the root module tests that).
func TestCheckNamesTheOutboxTable(t *testing.T) {
	t.Parallel()
	outbox := startOutboxDB(t)
	st := embeddedSite(t, siteOptions{outbox: outbox})
	if err := st.inst.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if _, err := outbox.db.Exec("DROP TABLE centrifugo_outbox"); err != nil {
		t.Fatal(err)
	}
	if err := st.inst.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "OutboxDDL") {
		t.Errorf("Check without the outbox table: %v, want an error naming OutboxDDL", err)
	}
}

// TestCheckSaysRedisIsDown: Instant.Check on an embedded Instant with
// RedisAddress answers nil while Redis does, and an error once it is gone.
func TestCheckSaysRedisIsDown(t *testing.T) {
	t.Parallel()
	redis := centrifugotest.StartRedis(t)
	st := newSite(t, embedded.Options{RedisAddress: redis.URL}, nil)
	if err := st.inst.Check(context.Background()); err != nil {
		t.Fatalf("Check with Redis up: %v", err)
	}
	conn, err := net.Dial("tcp", redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("SHUTDOWN NOSAVE\r\n"))
	conn.Close()
	eventually(t, 5*time.Second, "Check to say Redis is down", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := st.inst.Check(ctx)
		return err != nil && !errors.Is(err, context.Canceled)
	})
}

// TestStatsCountTheEmbeddedServer: Stats counts what the embedded server
// published, as it counts what Centrifugo did, and no node is ever down.
func TestStatsCountTheEmbeddedServer(t *testing.T) {
	t.Parallel()
	st := newSite(t, embedded.Options{}, nil)
	before := st.inst.Stats()
	for k := range 3 {
		if err := st.inst.Broadcast(context.Background(), instant.Event{Channels: []string{"$site_users", "site_public"}, Message: "m" + itoa(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.inst.Broadcast(context.Background(), instant.Event{Channel: "$nosuchns:x", Message: "refused"}); !errors.Is(err, instant.ErrStaleConfig) {
		t.Errorf("a channel of a namespace the Instant does not declare: %v, want ErrStaleConfig", err)
	}
	after := st.inst.Stats()
	if after.Published-before.Published != 3 || after.Failed-before.Failed != 1 || after.NodesDown != 0 {
		t.Errorf("Stats went from %+v to %+v, want 3 published, 1 failed, no node down", before, after)
	}
}
