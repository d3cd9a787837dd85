package instant

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
)

// CentrifugoOptions are the parts of a Centrifugo server's config that a
// Config does not hold. The zero value is a single node on 127.0.0.1:8000.
type CentrifugoOptions struct {
	Address string // to bind; default "127.0.0.1"
	Port    int    // default 8000
	// AllowedOrigins: browser origins allowed to connect, scheme://host[:port]
	// in lower case; a host may start with "*.", "*" allows any. Default: none.
	AllowedOrigins []string
	// A channel keeps HistorySize publications for HistoryTTL (whole seconds), for recovery.
	// Both zero: 100 for 120s where private channels may be; -1 and negative: none.
	HistorySize int
	HistoryTTL  time.Duration
	// Presence: presence, joins and leaves where private channels may be (Instant.Presence and the presence route need it).
	Presence bool
	// RedisAddress ("redis://127.0.0.1:6379"): nodes on one Redis share channels.
	RedisAddress string
	// OutboxDSN ("postgres://user:pass@host/db") turns on the consumer of BroadcastTx's outbox.
	OutboxDSN string
	LogLevel  string // default "info"
	// ProxyURL, Register's group as Centrifugo reaches it, has Centrifugo
	// ask the proxy routes about connections and public subscriptions.
	ProxyURL string
}

// CentrifugoConfig returns a Centrifugo v6 JSON config that agrees with
// i's Config and rules (call it after Authorize); bad options are ErrConfig.
// It holds secrets: keep its file private.
func (i *Instant) CentrifugoConfig(o CentrifugoOptions) ([]byte, error) {
	if i == nil {
		return nil, ErrNotInstalled
	}
	origins, err := allowedOrigins(o.AllowedOrigins)
	switch {
	case err != nil:
		return nil, err
	case o.Port < 0 || o.Port > 65535:
		return nil, fmt.Errorf("%w: port %d out of range", ErrConfig, o.Port)
	case o.HistoryTTL > 0 && o.HistoryTTL%time.Second != 0:
		return nil, fmt.Errorf("%w: HistoryTTL %v is not whole seconds, which Centrifugo needs", ErrConfig, o.HistoryTTL)
	}
	names, private := i.namespaces()
	history := func(string) bool { return o.HistorySize > 0 }
	switch {
	case o.HistorySize == 0 && o.HistoryTTL == 0:
		o.HistorySize, o.HistoryTTL, history = 100, 120*time.Second, func(ns string) bool { return private[ns] }
	case o.HistorySize == -1 && o.HistoryTTL < 0:
	case o.HistorySize <= 0 || o.HistoryTTL <= 0:
		return nil, fmt.Errorf("%w: HistorySize and HistoryTTL go together: both above zero, both zero (the default) or -1 and negative (none)", ErrConfig)
	}
	// Tokens and the presence route ask for presence, so a public channel's reader cannot list a private one's.
	base := map[string]any{
		"allow_subscribe_for_client":    true,
		"allow_subscribe_for_anonymous": !i.cfg.DisallowAnonymous,
		"allow_tags_filter":             true, // client.js filters out its own tab's events
		"force_push_join_leave":         false,
		"allow_presence_for_subscriber": false,
	}
	optionsOf := func(ns string) map[string]any {
		opts := maps.Clone(base)
		opts["presence"], opts["join_leave"] = o.Presence && private[ns], o.Presence && private[ns]
		if ns != "" {
			opts["name"] = ns
		}
		if history(ns) {
			opts["history_size"], opts["history_ttl"], opts["force_recovery"] = o.HistorySize, fmt.Sprintf("%ds", o.HistoryTTL/time.Second), true
		}
		return opts
	}
	client := map[string]any{
		"token":                                map[string]any{"hmac_secret_key": i.cfg.TokenSecret},
		"allowed_origins":                      origins,
		"expired_sub_close_delay":              "5s", // an expired subscription closes within 10s, not 60s
		"presence_update_interval":             "5s",
		"disallow_anonymous_connection_tokens": i.cfg.DisallowAnonymous,
	}
	if o.HistorySize > 0 {
		client["recovery_max_publication_limit"] = o.HistorySize
	}
	channel := map[string]any{"private_prefix": privatePrefix}
	if o.ProxyURL != "" {
		if err := checkHTTPURL(o.ProxyURL, "http", "https"); err != nil {
			return nil, fmt.Errorf("%w: ProxyURL: %v", ErrConfig, err)
		}
		proxy := func(route string) map[string]any {
			return map[string]any{
				"endpoint":     strings.TrimSuffix(o.ProxyURL, "/") + "/" + route,
				"timeout":      "2s",
				"http_headers": []string{"Cookie"},
				"http":         map[string]any{"static_headers": map[string]string{proxyKeyHeader: i.proxyKey}},
			}
		}
		enabled := func(m map[string]any) map[string]any { m["enabled"] = true; return m }
		client["proxy"] = map[string]any{"connect": enabled(proxy("proxy/connect")), "refresh": enabled(proxy("proxy/refresh"))}
		channel["proxy"] = map[string]any{"subscribe": proxy("proxy/subscribe"), "sub_refresh": proxy("proxy/sub_refresh")}
		base["subscribe_proxy_enabled"], base["sub_refresh_proxy_enabled"] = true, true
	}
	namespaces := []map[string]any{}
	for _, ns := range names[1:] {
		namespaces = append(namespaces, optionsOf(ns))
	}
	channel["without_namespace"], channel["namespaces"] = optionsOf(""), namespaces
	cfg := map[string]any{
		"http_server": map[string]any{"address": cmp.Or(o.Address, "127.0.0.1"), "port": cmp.Or(o.Port, 8000)},
		"http_api":    map[string]any{"key": i.cfg.APIKey},
		"client":      client,
		"channel":     channel,
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
		"log":         map[string]any{"level": cmp.Or(o.LogLevel, "info")},
	}
	if o.RedisAddress != "" {
		cfg["engine"] = map[string]any{"type": "redis", "redis": map[string]any{"address": []string{o.RedisAddress}}}
	}
	if o.OutboxDSN != "" {
		cfg["consumers"] = []map[string]any{{"enabled": true, "name": "instant_outbox", "type": "postgresql",
			"postgresql": map[string]any{
				"dsn":                            o.OutboxDSN,
				"outbox_table_name":              i.outboxTable.table, // quoted: the consumer writes it into its SQL
				"num_partitions":                 i.cfg.OutboxPartitions,
				"partition_select_limit":         100,
				"partition_poll_interval":        "300ms",
				"partition_notification_channel": i.outboxTable.notify,
			},
		}}
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// namespaces lists, sorted, "" (channels without one) and the namespaces of
// channels and rules, and says which may hold a private channel.
func (i *Instant) namespaces() ([]string, map[string]bool) {
	private := map[string]bool{"": false, i.channels.userNamespace: true}
	for name := range i.channels.byName {
		private[namespaceOf(name)] = private[namespaceOf(name)] || isPrivate(name)
	}
	for _, r := range *i.rules.Load() {
		private[r.namespace] = true
	}
	return slices.Sorted(maps.Keys(private)), private
}

// allowedOrigins returns origins as Centrifugo's globs (IPv6 brackets
// escaped), refusing one no browser sends ("", a path, upper case).
func allowedOrigins(origins []string) ([]string, error) {
	var errs []error
	out := []string{}
	for k, o := range origins {
		pattern := strings.Replace(o, "://*.", "://", 1)
		if o != "*" && (checkOrigin(pattern) != nil || strings.ContainsAny(pattern, "*?{}\\") || strings.ToLower(o) != o) {
			errs = append(errs, fmt.Errorf("%w: CentrifugoOptions.AllowedOrigins[%d] is %q, which no browser sends: each is scheme://host[:port] "+
				"in lower case, without path or trailing slash (as Config.SiteOrigin), a host may start with \"*.\", and \"*\" alone allows any origin", ErrConfig, k, o))
		}
		out = append(out, strings.NewReplacer("[", "\\[", "]", "\\]").Replace(o))
	}
	return out, errors.Join(errs...)
}

// checkOrigin checks that o is scheme://host[:port], as browsers send it.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, " \t\r\n") {
		return fmt.Errorf("%q is not an origin such as https://app.example.com", o)
	}
	return nil
}
