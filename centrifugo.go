package instant

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CentrifugoOptions are the parts of a Centrifugo server's config that a
// Config does not hold.
type CentrifugoOptions struct {
	// Address to bind. Default: "127.0.0.1".
	Address string
	// Port to listen on. Default: 8000.
	Port int
	// AllowedOrigins are the browser origins allowed to connect
	// (client.allowed_origins), e.g. "http://127.0.0.1:8080". Default: none,
	// so only non-browser clients connect.
	AllowedOrigins []string
	// HistorySize and HistoryTTLSeconds keep recent publications of every
	// channel for recovery after a reconnect: a subscriber that comes back
	// receives up to HistorySize publications it missed. Default: 0, no
	// history.
	HistorySize       int
	HistoryTTLSeconds int
	// Presence turns presence on: subscribers of private channels receive
	// join and leave pushes (their tokens ask for them) and may query who
	// is there, with each member's info (User.Info or a rule's info);
	// anonymous subscribers may not query, and public channels, which need
	// no token, push nothing. Instant.Presence and PresenceStats need it.
	// Default: off.
	Presence bool
	// RedisAddress, when set ("redis://127.0.0.1:6379"), makes Centrifugo
	// use its Redis engine: every node given the same address shares
	// channels, presence and history, and subscribers recover what they
	// missed across a node's restart. Default: the memory engine, one node.
	RedisAddress string
	// OutboxDSN, when set, turns on Centrifugo's PostgreSQL outbox consumer
	// ("postgres://user:pass@host:5432/db"), reading Config.OutboxTable in
	// Config.OutboxPartitions partitions, woken by BroadcastTx's
	// notifications and polling every 300ms besides. Several nodes may
	// consume one outbox: each partition is read by one at a time. The DSN
	// holds a password: keep the config private. Default: no consumer.
	OutboxDSN string
	// LogLevel of the server. Default: "info".
	LogLevel string
	// ProxyURL, when set, is where the group given to Register is served
	// as Centrifugo reaches it (e.g. "http://127.0.0.1:8080/instant"):
	// Centrifugo then asks the proxy routes about connections without a
	// token and about subscriptions to public channels, sending the
	// browser's Cookie header and ProxyKey in ProxyKeyHeader.
	ProxyURL string
}

// CentrifugoConfig returns a Centrifugo v6 JSON config that agrees with
// i's Config: the same API key and token secret, "$" as the private
// prefix, public channels readable without a token (by anonymous visitors
// too, unless DisallowAnonymous), and a namespace for every namespaced
// channel and rule pattern, so call it after Authorize. The "$" channels
// always need a token. The result holds secrets: write it to a file only
// its owner reads.
func (i *Instant) CentrifugoConfig(o CentrifugoOptions) ([]byte, error) {
	if i == nil {
		return nil, ErrNotInstalled
	}
	if o.Address == "" {
		o.Address = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 8000
	}
	if o.Port < 0 || o.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range", ErrConfig, o.Port)
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.HistorySize < 0 || o.HistoryTTLSeconds < 0 || (o.HistorySize > 0) != (o.HistoryTTLSeconds > 0) {
		return nil, fmt.Errorf("%w: HistorySize and HistoryTTLSeconds go together and are not negative", ErrConfig)
	}
	channelOpts := map[string]any{
		"allow_subscribe_for_client":    true,
		"allow_subscribe_for_anonymous": !i.cfg.DisallowAnonymous,
		"presence":                      o.Presence,
		"join_leave":                    o.Presence,
		// Pushed to subscribers whose token asks (private channels only).
		"force_push_join_leave": false,
		// Queried by logged-in subscribers only (no allow_presence_for_anonymous).
		"allow_presence_for_subscriber": o.Presence,
	}
	if o.HistorySize > 0 {
		channelOpts["history_size"] = o.HistorySize
		channelOpts["history_ttl"] = strconv.Itoa(o.HistoryTTLSeconds) + "s"
		channelOpts["force_recovery"] = true
	}
	var clientProxy, channelProxy map[string]any
	if o.ProxyURL != "" {
		if err := checkHTTPURL(o.ProxyURL, "http", "https"); err != nil {
			return nil, fmt.Errorf("%w: ProxyURL: %v", ErrConfig, err)
		}
		base := strings.TrimSuffix(o.ProxyURL, "/") + "/"
		proxy := func(route string) map[string]any {
			return map[string]any{
				"endpoint":     base + route,
				"timeout":      "2s",
				"http_headers": []string{"Cookie"},
				"http":         map[string]any{"static_headers": map[string]string{ProxyKeyHeader: i.proxyKey}},
			}
		}
		enabled := func(m map[string]any) map[string]any { m["enabled"] = true; return m }
		clientProxy = map[string]any{
			"connect": enabled(proxy(routeProxyConnect)),
			"refresh": enabled(proxy(routeProxyRefresh)),
		}
		channelProxy = map[string]any{
			"subscribe":   proxy(routeProxySubscribe),
			"sub_refresh": proxy(routeProxySubRefresh),
		}
		channelOpts["subscribe_proxy_enabled"] = true
		channelOpts["sub_refresh_proxy_enabled"] = true
	}
	// Namespaced channels ("$orders:1") need their namespace declared.
	namespaces := []map[string]any{}
	for _, ns := range i.namespaces() {
		opts := map[string]any{"name": ns}
		for k, v := range channelOpts {
			opts[k] = v
		}
		namespaces = append(namespaces, opts)
	}
	// The namespaces of Reauthorize's access records (reauth.go), with
	// options of their own: no client may subscribe, no proxy is asked.
	namespaces = append(namespaces, i.accessNamespaces()...)
	cfg := map[string]any{
		"http_server": map[string]any{"address": o.Address, "port": o.Port},
		"http_api":    map[string]any{"key": i.cfg.APIKey},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": i.cfg.TokenSecret},
			"allowed_origins": append([]string{}, o.AllowedOrigins...),
		},
		"channel": map[string]any{
			"private_prefix":    PrivatePrefix,
			"without_namespace": channelOpts,
			"namespaces":        namespaces,
		},
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
		"log":         map[string]any{"level": o.LogLevel},
	}
	if o.HistorySize > 0 {
		// A subscriber back from an outage recovers as much as is kept (the
		// server's own default stops at 300 publications).
		cfg["client"].(map[string]any)["recovery_max_publication_limit"] = o.HistorySize
	}
	if o.RedisAddress != "" {
		cfg["engine"] = map[string]any{"type": "redis", "redis": map[string]any{"address": []string{o.RedisAddress}}}
	}
	if o.OutboxDSN != "" {
		cfg["consumers"] = []map[string]any{{
			"enabled": true,
			"name":    "instant_outbox",
			"type":    "postgresql",
			"postgresql": map[string]any{
				"dsn":                            o.OutboxDSN,
				"outbox_table_name":              i.cfg.OutboxTable,
				"num_partitions":                 i.cfg.OutboxPartitions,
				"partition_select_limit":         100,
				"partition_poll_interval":        "300ms",
				"partition_notification_channel": i.cfg.OutboxTable,
			},
		}}
	}
	if clientProxy != nil {
		cfg["client"].(map[string]any)["proxy"] = clientProxy
		cfg["channel"].(map[string]any)["proxy"] = channelProxy
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// namespaces lists the namespaces used by configured channels and rule
// patterns: the part before the first ':' without the private prefix.
func (i *Instant) namespaces() []string {
	var out []string
	add := func(name string) {
		if n := namespaceOf(name); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for name := range i.channels.byName {
		add(name)
	}
	add(i.channels.userPrefix) // personal channels
	for _, r := range *i.rules.Load() {
		add(r.pattern)
	}
	slices.Sort(out)
	return out
}

func namespaceOf(channel string) string {
	name := channel
	if IsPrivate(name) {
		name = name[len(PrivatePrefix):]
	}
	for k := 0; k < len(name); k++ {
		switch name[k] {
		case ':':
			return name[:k]
		case '{', '*':
			return ""
		}
	}
	return ""
}
