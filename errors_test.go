package instant_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-instant/instant"
)

// TestLiveAPIErrorsNameTheirFix: against a real Centrifugo, a wrong API
// key says so (ErrAPIKey) and names the setting; a publish to a namespace
// Centrifugo's config does not declare (error 102) is ErrStaleConfig and
// names the namespace and the fix. Neither is taken for a node down.
func TestLiveAPIErrorsNameTheirFix(t *testing.T) {
	t.Parallel()
	ls := startLive(t, instant.CentrifugoOptions{HistorySize: -1, HistoryTTL: -1}) // no history: its call is refused
	cfg := ls.cfg
	cfg.APIKey = "wrong-key"
	bad := newInstant(t, cfg)
	err := bad.Broadcast(context.Background(), instant.Event{Channel: "news", Message: "x"})
	var pe *instant.PublishError
	if !errors.Is(err, instant.ErrAPIKey) || !errors.As(err, &pe) || pe.StatusCode != 401 ||
		!strings.Contains(err.Error(), "API key") || !strings.Contains(err.Error(), "http_api.key") || strings.Contains(err.Error(), "wrong-key") {
		t.Errorf("wrong API key: %v", err)
	}
	if errors.Is(err, instant.ErrStaleConfig) || errors.Is(err, instant.ErrUnreachable) {
		t.Errorf("wrong API key taken for another fault: %v", err)
	}

	for _, ch := range []string{"nosuchns:x", "$nosuchns:x"} {
		err = ls.inst.Broadcast(context.Background(), instant.Event{Channel: ch, Message: "x"})
		if !errors.Is(err, instant.ErrStaleConfig) || !errors.As(err, &pe) || pe.Code != 102 ||
			!strings.Contains(err.Error(), `namespace "nosuchns"`) || !strings.Contains(err.Error(), "CentrifugoConfig") {
			t.Errorf("%s, a namespace Centrifugo lacks: %v", ch, err)
		}
		if errors.Is(err, instant.ErrAPIKey) || errors.Is(err, instant.ErrUnreachable) {
			t.Errorf("%s: taken for another fault: %v", ch, err)
		}
	}
	// Another API error is not a stale config.
	_, err = ls.inst.Presence(context.Background(), "$site_users")
	if !errors.As(err, &pe) || pe.Code == 0 || pe.Code == 102 || errors.Is(err, instant.ErrStaleConfig) {
		t.Errorf("presence without presence: %v", err)
	}
	if s := bad.Stats(); s.NodesDown != 0 {
		t.Errorf("Stats %+v", s)
	}
	if s := ls.inst.Stats(); s.NodesDown != 0 || s.Retried != 0 {
		t.Errorf("Stats %+v", s)
	}
}

func TestPublishErrorText(t *testing.T) {
	cause := errors.New("connection refused")
	cases := []struct {
		err  *instant.PublishError
		want string
	}{
		{&instant.PublishError{Op: "publish", Channels: []string{"a", "$b"}, Err: cause}, "instant: publish a,$b: connection refused"},
		{&instant.PublishError{Op: "publish", Channels: []string{"a"}, StatusCode: 401, Err: errors.New("http status 401: ")}, "instant: publish a: centrifugo refused the API key (HTTP 401): APIKey (CENTRIFUGO_HTTP_API_KEY) must equal centrifugo's http_api.key"},
		{&instant.PublishError{Op: "publish", Channels: []string{"a"}, StatusCode: 403, Err: errors.New("http status 403: ")}, "instant: publish a: http status 403"},
		{&instant.PublishError{Op: "history", Channels: []string{"a"}, Code: 108, Message: "not available", Err: errors.New("centrifugo error 108: not available")}, "instant: history a: centrifugo error 108 not available"},
		{&instant.PublishError{Op: "disconnect", Err: cause}, "instant: disconnect: connection refused"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
	wrapped := fmt.Errorf("saving order: %w", cases[0].err)
	if !errors.Is(wrapped, cause) {
		t.Error("cause lost through Unwrap")
	}
	if errors.Is(wrapped, instant.ErrAPIKey) || !errors.Is(cases[1].err, instant.ErrAPIKey) {
		t.Error("ErrAPIKey matches the wrong errors")
	}
}

func TestConfigErrorsKeepTheirCauses(t *testing.T) {
	_, err := instant.New(instant.Config{TokenSecret: testSecret, StaffChannels: []string{"bad name"}})
	if !errors.Is(err, instant.ErrConfig) || !errors.Is(err, instant.ErrInvalidChannel) {
		t.Errorf("bad channel in config: %v", err)
	}
	_, err = instant.New(instant.Config{TokenSecret: testSecret, APIURL: "http://user:pa55@/api"})
	if err == nil || errors.Is(err, instant.ErrInvalidChannel) {
		t.Fatalf("APIURL without host: %v", err)
	}
	if s := err.Error(); strings.Contains(s, "pa55") {
		t.Errorf("error shows the URL's password: %s", s)
	}
}

// TestPublishErrorTextIsBounded: whatever a PublishError holds (30,000
// channels, a long message or cause, thousands of failed events), its
// text is a few KiB that count what they do not name.
func TestPublishErrorTextIsBounded(t *testing.T) {
	channels := make([]string, 30000)
	for k := range channels {
		channels[k] = "$site_user:" + strings.Repeat("é", 100) + fmt.Sprint(k)
	}
	failed := make([]int, 5000)
	for k := range failed {
		failed[k] = 2 * k
	}
	long := strings.Repeat("ü", 10000)
	for _, pe := range []*instant.PublishError{
		{Op: "publish", Channels: channels, Err: errors.New(long)},
		{Op: "publish", Channels: channels, Code: 102, Message: long, Failed: failed},
		{Op: "publish", Channels: channels, StatusCode: 500},
	} {
		s := pe.Error()
		if len(s) >= 4<<10 || !strings.Contains(s, "and 29997 more") || strings.Contains(s, channels[3]) || !utf8.ValidString(s) {
			t.Errorf("%d bytes: %.300q", len(s), s)
		}
		if pe.Failed != nil && !strings.Contains(s, "(events 0, 2, 4, 6, 8, 10, 12, 14, 16, 18 and 4990 more not published)") {
			t.Errorf("failed events: %.300q", s[len(s)-200:])
		}
	}
}
