package embedded

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Options configures a Server. The zero value works: one process, its
// channels in memory, same-origin browsers only, presence and history on
// private channels.
type Options struct {
	// AllowedOrigins are the browser origins, besides the page's own,
	// whose pages may open the websocket, each scheme://host[:port] as
	// browsers send it ("https://app.example.com"); "*" allows every
	// origin. A handshake without an Origin header (a client that is no
	// browser) is always allowed, and so is one whose Origin's host is the
	// request's Host (the page's own site). Default: none besides those.
	AllowedOrigins []string
	// RedisAddress, when set ("redis://127.0.0.1:6379", the form
	// CentrifugoOptions.RedisAddress takes; "rediss://" for TLS, with
	// "user:password@" when Redis wants them), makes every process given
	// the same Redis share channels, presence, history, idempotency keys
	// and unsubscribes: the app scales out as several processes behind any
	// load balancer. New fails when Redis does not answer. Default: empty,
	// everything in this process's memory (one process).
	RedisAddress string
	// OutboxDB, when set, is the PostgreSQL database BroadcastTx writes
	// its outbox table to (the Instant's Config.OutboxTable, in its
	// OutboxPartitions): the server publishes each committed row, in
	// order per partition, and deletes it; several processes share the
	// work. Default: nil, no outbox consumer.
	OutboxDB *sql.DB
	// NoPresence turns presence off: by default the subscribers of private
	// channels are listed by Presence and the presence route, each with
	// the info its token carried, and receive each other's joins and
	// leaves. Public channels never keep presence. Default: false
	// (presence on).
	NoPresence bool
	// HistorySize and HistoryTTL keep each private channel's latest
	// publications for recovery: a subscriber that comes back within
	// HistoryTTL receives, in order and once, up to HistorySize
	// publications it missed. Public channels keep none (only their
	// latest publication, for a second, for its position: see Server's
	// Publish). A zero field gets
	// its default: 100 publications, 2 minutes (as CentrifugoConfig writes
	// for Centrifugo); -1 in either turns history and recovery off.
	HistorySize int
	HistoryTTL  time.Duration
	// Logger receives the server's warnings and errors (centrifuge's own
	// at warn level and above). Default: slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	defaultHistorySize = 100
	defaultHistoryTTL  = 2 * time.Minute
)

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
		if o.HistorySize == 0 {
			o.HistorySize = defaultHistorySize
		}
		if o.HistoryTTL == 0 {
			o.HistoryTTL = defaultHistoryTTL
		}
		if o.HistoryTTL < time.Second {
			errs = append(errs, fmt.Errorf("embedded: HistoryTTL must be at least a second, got %v", o.HistoryTTL))
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, errors.Join(errs...)
}

// redactedRedis is address without its credentials, for a log line.
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
