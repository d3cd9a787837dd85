package embedded_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/internal/centrifugotest"
)

// handshake sends a websocket handshake to st's websocket with origin
// ("" for none) and returns the status: 101 when it was taken.
func handshake(t *testing.T, st *site, origin string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, st.http.URL+"/instant/connection/websocket", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := centrifugotest.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOrigins: a browser of another site is refused the websocket; the
// page's own site, AllowedOrigins and non-browser clients (no Origin) are
// not.
func TestOrigins(t *testing.T) {
	st := newSite(t, embedded.Options{AllowedOrigins: []string{"https://App.Example.com"}}, nil)
	own := st.http.URL // http://127.0.0.1:port, the page's own origin
	for _, c := range []struct {
		name, origin string
		want         int
	}{
		{"no origin", "", http.StatusSwitchingProtocols},
		{"same origin", own, http.StatusSwitchingProtocols},
		{"allowed", "https://app.example.com", http.StatusSwitchingProtocols},
		{"foreign", "https://evil.example", http.StatusForbidden},
		{"allowed host, other scheme", "http://app.example.com", http.StatusForbidden},
		{"same host, other port", strings.TrimSuffix(own, own[strings.LastIndex(own, ":"):]) + ":1", http.StatusForbidden},
		{"garbage", "%%", http.StatusForbidden},
	} {
		if got := handshake(t, st, c.origin); got != c.want {
			t.Errorf("%s (%q): status %d, want %d", c.name, c.origin, got, c.want)
		}
	}
	any := newSite(t, embedded.Options{AllowedOrigins: []string{"*"}}, nil)
	if got := handshake(t, any, "https://evil.example"); got != http.StatusSwitchingProtocols {
		t.Errorf("with \"*\": status %d, want 101", got)
	}
	if _, err := embedded.New(embedded.Options{AllowedOrigins: []string{"app.example.com"}}); err == nil {
		t.Error("an origin without a scheme: no error from New")
	}
}
