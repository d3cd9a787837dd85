package embedded_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// TestBindAfterClose: a closed Server serves no Instant: New with it fails
// (with OutboxDB it would start a consumer nothing ever stops).
func TestBindAfterClose(t *testing.T) {
	t.Parallel()
	srv, err := embedded.New(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := instant.New(instant.Config{TokenSecret: testSecret, Server: srv}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("New with a closed Server: %v, want an error saying it is closed", err)
	}
}

// TestWebsocketTrustsTheInstantsOrigins: a page of the Instant's
// SiteOrigin (or of TrustedOrigins) may open the websocket even when a
// proxy rewrote the Host it reaches the app with; another site may not.
func TestWebsocketTrustsTheInstantsOrigins(t *testing.T) {
	t.Parallel()
	srv, err := embedded.New(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	st := siteOn(t, srv, instant.Config{SiteOrigin: "https://app.example.com", TrustedOrigins: []string{"https://admin.example.com"}}, nil)
	for origin, want := range map[string]int{
		"https://app.example.com":   http.StatusSwitchingProtocols,
		"https://admin.example.com": http.StatusSwitchingProtocols,
		"https://evil.example.com":  http.StatusForbidden,
	} {
		req, _ := http.NewRequest(http.MethodGet, st.http.URL+"/instant/connection/websocket", nil)
		req.Host = "backend:8080" // as a proxy that rewrites Host sends it
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Origin", origin)
		resp, err := centrifugotest.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Origin %s: %d, want %d", origin, resp.StatusCode, want)
		}
	}
}

// TestOutboxBroadcastLeavesOutUnknownChannels: a broadcast row naming a
// channel of a namespace this Instant does not declare (a row of another
// version of the app) still reaches the channels it knows.
func TestOutboxBroadcastLeavesOutUnknownChannels(t *testing.T) {
	t.Parallel()
	outbox := startOutboxDB(t)
	st := embeddedSite(t, siteOptions{outbox: outbox})
	alice := st.connect(t, st.browser(t, "1"))
	users, _ := alice.subscribe("$site_users", alice.withToken("$site_users"))
	if users == nil {
		t.Fatal("alice could not subscribe")
	}
	row := `{"channels":["nosuchns:x","$site_users"],"data":{"message":"mixed"},"idempotency_key":"mixed-1"}`
	if _, err := outbox.db.ExecContext(context.Background(), `INSERT INTO centrifugo_outbox (method, payload, partition) VALUES ('broadcast', convert_to($1, 'UTF8'), 0)`, row); err != nil {
		t.Fatal(err)
	}
	users.waitMessage(t, "mixed")
	eventually(t, 5*time.Second, "the row to be consumed", func() bool {
		var n int
		_ = outbox.db.QueryRow("SELECT count(*) FROM centrifugo_outbox").Scan(&n)
		return n == 0
	})
}
