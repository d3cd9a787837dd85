package instant

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CentrifugoOptions are the parts of a Centrifugo server's config that a
// Config does not hold.
type CentrifugoOptions struct {
	// Address to bind. Default: "127.0.0.1".
	Address string
	// Port to listen on. Default: 8000.
	Port int
	// AllowedOrigins are the browser origins allowed to connect
	// (client.allowed_origins), each scheme://host[:port] as browsers send
	// it, e.g. "http://127.0.0.1:8080" (Config.SiteOrigin): lower case, no
	// path, no trailing slash. A host may start with "*." for every
	// subdomain ("https://*.example.com"), and "*" alone allows every
	// origin (Centrifugo's own meaning; it warns of it). CentrifugoConfig
	// refuses anything else, an empty string included, with ErrConfig:
	// Centrifugo would refuse every browser. Default: none, so only
	// non-browser clients connect.
	AllowedOrigins []string
	// HistorySize and HistoryTTLSeconds keep recent publications for
	// recovery after a reconnect: a subscriber that comes back within
	// HistoryTTLSeconds receives, in order and once, up to HistorySize
	// publications it missed. Set (both above zero), they apply to every
	// channel. Default (both zero): the namespaces that hold private
	// channels keep the last 100 publications for 120 seconds, which costs
	// Centrifugo at most 100 events' bytes per channel published to in the
	// last two minutes (about 50 KB for events of 500 bytes); a namespace
	// of public channels only keeps none (public channels without a
	// namespace share the options of private ones without one). -1 for
	// both: no history anywhere.
	HistorySize       int
	HistoryTTLSeconds int
	// Presence turns presence on in the namespaces that hold private
	// channels: subscribers of private channels receive join and leave
	// pushes (their tokens ask for them), and the presence route (see
	// Register) lists a private channel's members, with each member's
	// info for that channel (the rule's info, else User.Info), to logged-in
	// users who may read it. No client may query presence or ask for joins
	// and leaves by itself, in any namespace (allow_presence_for_subscriber
	// is false everywhere): a public channel that shares its options with
	// private ones (site_public and $site_users both have no namespace)
	// shows its readers nothing of each other, and a namespace of public
	// channels only ("news:all") keeps presence off altogether.
	// Instant.Presence needs it. Default: off.
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
	// browser's Cookie header and a key derived from TokenSecret in
	// the X-Instant-Proxy-Key header, which CentrifugoConfig sets.
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
	var err error
	if o.AllowedOrigins, err = allowedOrigins(o.AllowedOrigins); err != nil {
		return nil, err
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
	history := func(string) bool { return o.HistorySize > 0 }
	switch {
	case o.HistorySize == 0 && o.HistoryTTLSeconds == 0:
		o.HistorySize, o.HistoryTTLSeconds = defaultHistorySize, defaultHistoryTTLSeconds
		history = i.privateNamespaces()
	case o.HistorySize == -1 && o.HistoryTTLSeconds == -1:
	case o.HistorySize <= 0 || o.HistoryTTLSeconds <= 0:
		return nil, fmt.Errorf("%w: HistorySize and HistoryTTLSeconds go together: both above zero, both zero (the default) or both -1 (none)", ErrConfig)
	}
	channelOpts := map[string]any{
		"allow_subscribe_for_client":    true,
		"allow_subscribe_for_anonymous": !i.cfg.DisallowAnonymous,
		// Subscribers may filter publications by their tags: the browser
		// helper asks not to be sent its own tab's events (Event.Origin).
		"allow_tags_filter": true,
	}
	presence := i.presenceNamespaces(o.Presence)
	setPresence(channelOpts, presence(""))
	setHistory := func(opts map[string]any, on bool) {
		if on {
			opts["history_size"] = o.HistorySize
			opts["history_ttl"] = strconv.Itoa(o.HistoryTTLSeconds) + "s"
			opts["force_recovery"] = true
		}
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
				"http":         map[string]any{"static_headers": map[string]string{proxyKeyHeader: i.proxyKey}},
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
		setPresence(opts, presence(ns))
		setHistory(opts, history(ns))
		namespaces = append(namespaces, opts)
	}
	setHistory(channelOpts, history(""))
	cfg := map[string]any{
		"http_server": map[string]any{"address": o.Address, "port": o.Port},
		"http_api":    map[string]any{"key": i.cfg.APIKey},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": i.cfg.TokenSecret},
			"allowed_origins": append([]string{}, o.AllowedOrigins...),
			// A subscription whose token expired and was not refreshed is
			// closed within expiredSubCloseDelay+expiryCheckInterval of its
			// expiry (Centrifugo's defaults, 25 s and 27 s, let it live
			// about 50 s longer): the browser helper refreshes a token
			// before it expires, so only a client that may no longer read
			// the channel is closed.
			"expired_sub_close_delay":  durationConfig(expiredSubCloseDelay),
			"presence_update_interval": durationConfig(expiryCheckInterval),
			// A token without a user is refused outright under
			// DisallowAnonymous (the routes never sign one then), as the
			// embedded server refuses it.
			"disallow_anonymous_connection_tokens": i.cfg.DisallowAnonymous,
		},
		"channel": map[string]any{
			"private_prefix":    privatePrefix,
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
				"dsn": o.OutboxDSN,
				// Quoted: the consumer writes the name into its SQL as it is.
				"outbox_table_name":       i.outboxTable.table,
				"num_partitions":          i.cfg.OutboxPartitions,
				"partition_select_limit":  100,
				"partition_poll_interval": "300ms",
				// The channel BroadcastTx notifies: the table's name when it
				// fits in 63 bytes (a longer one is shortened with a hash).
				"partition_notification_channel": i.outboxTable.notify,
			},
		}}
	}
	if clientProxy != nil {
		cfg["client"].(map[string]any)["proxy"] = clientProxy
		cfg["channel"].(map[string]any)["proxy"] = channelProxy
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// namespaces lists the namespaces used by configured channels, personal
// channels and rule patterns. New and Authorize let in only names whose
// namespace Centrifugo accepts (validNamespace), so the config it gets
// declares every one and starts.
func (i *Instant) namespaces() []string {
	var out []string
	add := func(n string) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for name := range i.channels.byName {
		add(namespaceOf(name))
	}
	add(i.channels.userNamespace) // personal channels
	for _, r := range *i.rules.Load() {
		add(r.namespace)
	}
	slices.Sort(out)
	return out
}

// setPresence writes the presence options of one namespace (or of the
// channels without one). Presence is kept where on says, but no client
// gets it by asking: a subscription's token decides whether joins and
// leaves are pushed to it (those of private channels force them), and
// snapshots come from the presence route, which asks the server API.
// Without this, a reader of a public channel that shares its options with
// private ones could subscribe without a token, whose options are the
// namespace's, and list every reader or ask for their joins and leaves.
func setPresence(opts map[string]any, on bool) {
	opts["presence"] = on
	opts["join_leave"] = on
	opts["force_push_join_leave"] = false
	// No allow_presence_for_client or _for_anonymous either.
	opts["allow_presence_for_subscriber"] = false
}

// The history that CentrifugoConfig keeps by default in the namespaces of
// private channels, and how soon Centrifugo closes a subscription whose
// token expired (see CentrifugoOptions).
const (
	defaultHistorySize       = 100
	defaultHistoryTTLSeconds = 120
	// expiredSubCloseDelay is Centrifugo's client.expired_sub_close_delay:
	// how long after its token expired a subscription that was not
	// refreshed is closed.
	expiredSubCloseDelay = 5 * time.Second
	// expiryCheckInterval is Centrifugo's client.presence_update_interval,
	// which is also how often it looks for expired subscriptions.
	expiryCheckInterval = 5 * time.Second
)

func durationConfig(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) + "s" }

// presenceNamespaces answers, when presence is on, whether a namespace
// ("" for channels without one) needs it: whether it may hold a private
// channel (a configured one, the personal channels, or a rule's: every
// rule's namespace is literal, Authorize sees to it).
func (i *Instant) presenceNamespaces(on bool) func(ns string) bool {
	if !on {
		return func(string) bool { return false }
	}
	return i.privateNamespaces()
}

// privateNamespaces answers whether a namespace ("" for channels without
// one) may hold a private channel.
func (i *Instant) privateNamespaces() func(ns string) bool {
	private := map[string]bool{namespaceOf(i.channels.userPrefix): true}
	for name := range i.channels.byName {
		if isPrivate(name) {
			private[namespaceOf(name)] = true
		}
	}
	for _, r := range *i.rules.Load() {
		private[r.namespace] = true
	}
	return func(ns string) bool { return private[ns] }
}

// allowedOrigins checks the origins to allow and returns them as
// Centrifugo's patterns. It refuses an origin that no browser sends, so
// that Centrifugo would refuse every page it was meant for (an unset
// SiteOrigin written as "", a trailing slash, a path, upper case, which
// Centrifugo compares with the lower-cased Origin header). Centrifugo
// reads each as a glob: the brackets of an IPv6 host are escaped, so that
// "http://[::1]:3000" matches itself.
func allowedOrigins(origins []string) ([]string, error) {
	var errs []error
	out := make([]string, 0, len(origins))
	for k, o := range origins {
		pattern := o
		if rest, ok := strings.CutPrefix(o, "https://*."); ok {
			pattern = "https://" + rest
		} else if rest, ok := strings.CutPrefix(o, "http://*."); ok {
			pattern = "http://" + rest
		}
		if o != "*" && (checkOrigin(pattern) != nil || strings.ContainsAny(pattern, "*?{}\\") || strings.ToLower(o) != o) {
			errs = append(errs, fmt.Errorf("%w: CentrifugoOptions.AllowedOrigins[%d] is %q, which no browser sends: each is scheme://host[:port] "+
				"in lower case, without path or trailing slash (as Config.SiteOrigin), a host may start with \"*.\", and \"*\" alone allows any origin", ErrConfig, k, o))
		}
		out = append(out, strings.NewReplacer("[", "\\[", "]", "\\]").Replace(o))
	}
	return out, errors.Join(errs...)
}
