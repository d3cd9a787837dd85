package instant

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestOldEnvironmentNamesWarnOnce: the names of earlier releases are read
// when the new ones are unset, with one warning a name that names the
// variable and never its value; a new name set beside an old one wins.
func TestOldEnvironmentNamesWarnOnce(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev); renamedWarned = sync.Map{} })
	renamedWarned = sync.Map{}

	const secret = "old-secret-0123456789abcdef0123456789"
	t.Setenv("CENTRIFUGO_API_URL", "http://127.0.0.1:9999/api")
	t.Setenv("CENTRIFUGO_API_KEY", "old-key-value")
	t.Setenv("CENTRIFUGO_TOKEN_HMAC_SECRET_KEY", secret)
	t.Setenv("CENTRIFUGO_WEBSOCKET_URL", "ws://127.0.0.1:9999/connection/websocket")
	t.Setenv("CENTRIFUGO_HTTP_API_KEY", "new-key-value")
	for range 2 {
		cfg := ConfigFromEnv()
		if cfg.APIURL != "http://127.0.0.1:9999/api" || cfg.APIKey != "new-key-value" || cfg.TokenSecret != secret ||
			cfg.WebsocketURL != "ws://127.0.0.1:9999/connection/websocket" {
			t.Fatalf("ConfigFromEnv = %+v", cfg)
		}
	}
	log := buf.String()
	for old, hint := range map[string]string{
		"CENTRIFUGO_API_URL":               "INSTANT_API_URL",
		"CENTRIFUGO_API_KEY":               "remove it",
		"CENTRIFUGO_TOKEN_HMAC_SECRET_KEY": "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY",
		"CENTRIFUGO_WEBSOCKET_URL":         "INSTANT_WEBSOCKET_URL",
	} {
		lines := 0
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, "var="+old) {
				lines++
				if !strings.Contains(l, hint) || !strings.Contains(l, "level=WARN") {
					t.Errorf("warning of %s: %s", old, l)
				}
			}
		}
		if lines != 1 {
			t.Errorf("%d warnings of %s, want 1:\n%s", lines, old, log)
		}
	}
	for _, value := range []string{secret, "old-key-value", "new-key-value", "9999"} {
		if strings.Contains(log, value) {
			t.Errorf("the log holds a value, %q:\n%s", value, log)
		}
	}
}

// TestNewEnvironmentNamesWarnOfNothing: the new names alone are read
// without a word, and a list is split at commas, blank items dropped.
func TestNewEnvironmentNamesWarnOfNothing(t *testing.T) {
	for _, old := range []string{"CENTRIFUGO_API_URL", "CENTRIFUGO_API_KEY", "CENTRIFUGO_TOKEN_HMAC_SECRET_KEY", "CENTRIFUGO_WEBSOCKET_URL"} {
		t.Setenv(old, "") // restored after the test
		os.Unsetenv(old)
	}
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	t.Setenv("INSTANT_API_URL", "http://127.0.0.1:9999/api")
	t.Setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "s")
	t.Setenv("INSTANT_STAFF_CHANNELS", " a ,, b ,")
	cfg := ConfigFromEnv()
	if cfg.APIURL != "http://127.0.0.1:9999/api" || cfg.TokenSecret != "s" || len(cfg.StaffChannels) != 2 ||
		cfg.StaffChannels[0] != "a" || cfg.StaffChannels[1] != "b" || cfg.UsersChannels != nil || buf.Len() != 0 {
		t.Errorf("ConfigFromEnv = %+v, log %q", cfg, buf.String())
	}
}
