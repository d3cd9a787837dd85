package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// TestEndToEndUnsafeEventsKeepBrowsersConnected: an event whose data held
// bytes that are not UTF-8 went out in a websocket text frame, and
// Chromium dropped the connection of every page on the channel. The
// plugin now refuses such an event, and one nested too deep, before
// anything is sent: the page stays connected and shows the next good
// event. The control at the end sends the same bytes straight to
// Centrifugo's API, and the page drops: the page's counter sees drops.
func TestEndToEndUnsafeEventsKeepBrowsersConnected(t *testing.T) {
	t.Parallel()
	e := startE2E(t, serverCentrifugo, "e2e-events", 60*time.Second, 0, 0)
	user := e.open("plain user", "user")
	if got := user.waitLive(); !slices.Contains(got, "$site_users") {
		t.Fatalf("the plain user holds %v", got)
	}
	user.waitFor("the helper", `!!window.instantDemo`)
	user.eval(`window.__drops = []; window.instantDemo.centrifuge.on('connecting', (ctx) => window.__drops.push(ctx.code + ' ' + ctx.reason)); 0`)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bad := instant.Event{ID: "bad-bytes", Channel: "$site_users", Message: "bad bytes", Data: json.RawMessage("{\"name\":\"Ren\xe9\"}")}
	deep := instant.Event{ID: "deep", Channel: "$site_users", Message: "deep", Data: json.RawMessage(strings.Repeat("[", 9999) + strings.Repeat("]", 9999))}
	for _, ev := range []instant.Event{bad, deep} {
		if err := e.site.inst.Broadcast(ctx, ev); !errors.Is(err, instant.ErrInvalidEvent) {
			t.Errorf("Broadcast(%s) = %.200v, want ErrInvalidEvent", ev.Message, err)
		}
	}
	if err := e.site.inst.BroadcastBatch(ctx, []instant.Event{{Channel: "$site_users", Message: "batch 0"}, bad}); !errors.Is(err, instant.ErrInvalidEvent) {
		t.Errorf("BroadcastBatch = %.200v, want ErrInvalidEvent", err)
	}
	if err := e.site.inst.Broadcast(ctx, instant.Event{ID: "good", Channel: "$site_users", Message: "Good news"}); err != nil {
		t.Fatal(err)
	}
	user.waitFor("the good event", `[...document.querySelectorAll('#events .event-message')].some((m) => m.textContent === 'Good news')`)
	time.Sleep(500 * time.Millisecond) // room for a drop
	if drops := user.strings(`window.__drops`); len(drops) != 0 {
		t.Errorf("the page dropped its connection: %q", drops)
	}
	for _, m := range user.messages() {
		if m == "bad bytes" || m == "deep" || m == "batch 0" {
			t.Errorf("the page shows the refused event %q", m)
		}
	}
	user.snap("after-refused-events")

	// The control: the same bytes straight to Centrifugo, past the
	// plugin's checks, on the user's personal channel; Chromium fails the
	// connection on them.
	body := []byte("{\"channel\":\"$site_user:1\",\"data\":{\"id\":\"raw\",\"message\":\"raw\",\"data\":{\"name\":\"Ren\xe9\"}}}")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.apiURL+"/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "apikey "+testSecrets.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := centrifugotest.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(reply, []byte(`"result"`)) {
		t.Fatalf("the raw publish: %d %s", resp.StatusCode, reply)
	}
	user.waitFor("the drop the raw bytes cause", `window.__drops.length > 0`)
	t.Logf("Chromium dropped on the raw bytes: %q", user.strings(`window.__drops`))
}
