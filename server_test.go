package instant_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/internal/seam"
)

// slowServer stands in for an in-process server (the embedded one is
// tested live in its own module): its Publish waits for slow (or the
// call's end) and counts what reaches it.
type slowServer struct {
	slow      atomic.Bool
	published atomic.Int64
}

func (s *slowServer) Bind(seam.Policy) error { return nil }
func (s *slowServer) Handler() http.Handler  { return http.NotFoundHandler() }
func (s *slowServer) Publish(ctx context.Context, pubs []seam.Publication) ([]int, error) {
	if s.slow.Load() {
		<-ctx.Done()
		return []int{0}, ctx.Err()
	}
	s.published.Add(int64(len(pubs)))
	return nil, nil
}
func (s *slowServer) Unsubscribe(context.Context, string, []string) error { return nil }
func (s *slowServer) Disconnect(context.Context, string) error            { return nil }
func (s *slowServer) History(context.Context, string, int) ([]json.RawMessage, error) {
	return nil, nil
}
func (s *slowServer) Presence(context.Context, []string) ([][]seam.Client, error) { return nil, nil }
func (s *slowServer) UserChannels(context.Context, string) ([]string, error)      { return nil, nil }
func (s *slowServer) Check(context.Context) error                                 { return nil }
func (s *slowServer) Describe() string                                            { return "slow stand-in" }

// TestServerIsNeverMarkedDown: a server in the app's process that is slow
// once (a Redis stall) costs that call its PublishTimeout; the next call
// reaches it, not a "nodes down" failure, and Stats counts no node down.
func TestServerIsNeverMarkedDown(t *testing.T) {
	srv := &slowServer{}
	inst, err := instant.New(instant.Config{TokenSecret: testSecret, Server: srv, PublishTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.slow.Store(true)
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "slow"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a slow server: %v, want its deadline", err)
	}
	srv.slow.Store(false)
	if err := inst.Broadcast(context.Background(), instant.Event{Channel: "$site_users", Message: "next"}); err != nil {
		t.Errorf("the next call: %v, want it to reach the server", err)
	}
	if n := srv.published.Load(); n != 1 {
		t.Errorf("%d publications reached the server, want 1", n)
	}
	if s := inst.Stats(); s.NodesDown != 0 || s.Failed != 1 {
		t.Errorf("Stats %+v: want no node down, one failure", s)
	}
}

// TestServerWebsocketURL: with a Server the channels route names the
// group's websocket path, unless WebsocketURL replaces it (a path behind a
// proxy that strips a prefix, or a ws URL); anything else is refused, and
// so are Centrifugo's API settings.
func TestServerWebsocketURL(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"", "/instant/connection/websocket"},
		{"/app/instant/connection/websocket", "/app/instant/connection/websocket"},
		{"wss://rt.example.com/instant/connection/websocket", "wss://rt.example.com/instant/connection/websocket"},
	} {
		inst, err := instant.New(instant.Config{TokenSecret: testSecret, Server: &slowServer{}, WebsocketURL: tc.set})
		if err != nil {
			t.Fatalf("WebsocketURL %q: %v", tc.set, err)
		}
		_, body := newBrowser(t, newRouter(inst)).get("/instant/channels")
		if body["websocket_url"] != tc.want {
			t.Errorf("WebsocketURL %q: the route says %v, want %q", tc.set, body["websocket_url"], tc.want)
		}
	}
	for _, cfg := range []instant.Config{
		{WebsocketURL: "//evil.example.com/ws"},
		{WebsocketURL: "http://example.com/ws"},
		{APIURL: "http://127.0.0.1:8000/api"},
		{APIKey: "key"},
	} {
		cfg.TokenSecret, cfg.Server = testSecret, &slowServer{}
		if _, err := instant.New(cfg); !errors.Is(err, instant.ErrConfig) {
			t.Errorf("%+v with a Server: %v, want ErrConfig", cfg, err)
		}
	}
}
