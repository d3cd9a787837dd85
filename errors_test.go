package instant_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-instant/instant"
)

func TestPublishErrorText(t *testing.T) {
	cause := errors.New("connection refused")
	cases := []struct {
		err  *instant.PublishError
		want string
	}{
		{&instant.PublishError{Op: "publish", Channels: []string{"a", "$b"}, Err: cause}, "instant: publish a,$b: connection refused"},
		{&instant.PublishError{Op: "publish", Channels: []string{"a"}, StatusCode: 401, Err: errors.New("http status 401: ")}, "instant: publish a: http status 401"},
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
