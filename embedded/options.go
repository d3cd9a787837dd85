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
// memory, same-origin browsers, presence and history on private channels.
type Options struct {
	// AllowedOrigins are more origins (scheme://host[:port]; "*": all)
	// whose pages may open the websocket. Default: none.
	AllowedOrigins []string
	// RedisAddress ("redis://host:6379", "rediss://user:pass@host" for
	// TLS) makes the processes on that Redis serve as one. Default: empty,
	// this process's memory.
	RedisAddress string
	// OutboxDB is the PostgreSQL database of BroadcastTx's outbox: each
	// committed row is published once, in order per partition. Default: nil.
	OutboxDB *sql.DB
	// NoPresence turns off presence, with joins and leaves, on private
	// channels (public ones never keep it).
	NoPresence bool
	// HistorySize and HistoryTTL keep each private channel's latest
	// publications for recovery. Zero: 100 and 2 minutes; -1: none.
	HistorySize int
	HistoryTTL  time.Duration
	// Logger receives warnings and errors. Default: slog.Default().
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
