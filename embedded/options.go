package embedded

import (
	"cmp"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Options configures a Server. The zero value works: one process, in
// memory, same-origin browsers only, presence and history on private
// channels.
type Options struct {
	// AllowedOrigins are the browser origins (scheme://host[:port]; "*":
	// all) whose pages may open the websocket besides the page's own and
	// the Instant's SiteOrigin and TrustedOrigins. A handshake without
	// Origin (no browser) is allowed. Default: none.
	AllowedOrigins []string
	// RedisAddress ("redis://host:6379", "rediss://user:password@..." for
	// TLS) makes every process on that Redis share channels, presence,
	// history, idempotency keys and unsubscribes. New fails when Redis does
	// not answer. Default: empty, this process's memory only.
	RedisAddress string
	// OutboxDB is the PostgreSQL database BroadcastTx writes the outbox
	// table to: the server publishes each committed row once, in order per
	// partition, and deletes it; processes share the work. Default: nil.
	OutboxDB *sql.DB
	// NoPresence turns presence off. By default private channels list
	// their subscribers (with the info their tokens carried) and send
	// joins and leaves; public channels never keep presence.
	NoPresence bool
	// HistorySize and HistoryTTL keep each private channel's latest
	// publications, which a subscriber back within HistoryTTL recovers in
	// order and once. Zero: 100 publications, 2 minutes; -1 in either: no
	// history or recovery. Public channels keep none.
	HistorySize int
	HistoryTTL  time.Duration
	// Logger receives the server's warnings and errors. Default:
	// slog.Default().
	Logger *slog.Logger
}

// checked fills in o's defaults and reports every problem at once.
func (o Options) checked() (Options, error) {
	var errs []error
	o.AllowedOrigins = append([]string(nil), o.AllowedOrigins...)
	for k, origin := range o.AllowedOrigins {
		if origin == "*" {
			continue
		}
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("embedded: AllowedOrigins[%d] %q is not an origin (scheme://host[:port])", k, origin))
			continue
		}
		o.AllowedOrigins[k] = strings.ToLower(u.Scheme + "://" + u.Host)
	}
	switch {
	case o.HistorySize == -1 || o.HistoryTTL == -1:
		o.HistorySize, o.HistoryTTL = 0, 0
	case o.HistorySize < 0:
		errs = append(errs, fmt.Errorf("embedded: HistorySize must be above zero, zero (the default, 100) or -1 (none), got %d", o.HistorySize))
	case o.HistoryTTL < 0:
		errs = append(errs, fmt.Errorf("embedded: HistoryTTL must be above zero, zero (the default, 2 minutes) or -1 (none), got %v", o.HistoryTTL))
	default:
		o.HistorySize, o.HistoryTTL = cmp.Or(o.HistorySize, 100), cmp.Or(o.HistoryTTL, 2*time.Minute)
		if o.HistoryTTL < time.Second {
			errs = append(errs, fmt.Errorf("embedded: HistoryTTL must be at least a second, got %v", o.HistoryTTL))
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, errors.Join(errs...)
}

// redactedRedis is address without its credentials.
func redactedRedis(address string) string {
	if !strings.Contains(address, "://") {
		return address
	}
	u, err := url.Parse(address)
	if err != nil {
		return "(an address that does not parse)" // it may hold a password
	}
	u.User = nil
	return u.String()
}
