package instant

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant/internal/seam"
)

// Defaults applied by New to the zero fields of a Config.
const (
	defaultSiteSlug             = "site"
	defaultAPIURL               = "http://127.0.0.1:8000/api"
	defaultConnectionTokenTTL   = 10 * time.Minute
	defaultSubscriptionTokenTTL = 5 * time.Minute
	defaultPublishTimeout       = 5 * time.Second
	// minTokenSecretLength is the shortest TokenSecret New accepts, in
	// bytes (Config.TokenSecret states it).
	minTokenSecretLength = 32
)

// Config configures an Instant. The zero value of every field but TokenSecret
// is usable: New fills in the default named in each field's comment.
type Config struct {
	// Server, when set, is the realtime server in the app's own process
	// (*embedded.Server, from github.com/gin-instant/instant/embedded),
	// used in place of a Centrifugo: Register then also serves its
	// websocket at GET <group>/connection/websocket, and the channels
	// route tells browsers that path (WebsocketURL, when set, replaces it:
	// a path such as "/app/instant/connection/websocket" behind a proxy
	// that strips a prefix, or a ws(s) URL). APIURL, APIURLs and APIKey
	// are Centrifugo's and must be empty with it. A Server serves one
	// Instant. Default: nil, a Centrifugo at APIURL.
	Server Server

	// APIURL is Centrifugo's server API endpoint: its path must end in
	// /api ("http://127.0.0.1:8000/api", or "https://host/centrifugo/api"
	// behind a proxy). Default: "http://127.0.0.1:8000/api".
	// New refuses credentials in it (user:password@): they would never be
	// sent.
	APIURL string
	// APIURLs are further nodes of the same Centrifugo cluster (sharing a
	// Redis engine), tried in order after APIURL when a node does not
	// answer. Each as APIURL. Default: none.
	APIURLs []string
	// APIKey is Centrifugo's http_api.key. Default: empty, which only a
	// Centrifugo with http_api.insecure accepts. Never logged.
	APIKey string
	// TokenSecret is the HMAC secret shared with Centrifugo
	// (client.token.hmac_secret_key). Required, at least 32 bytes. Never logged.
	TokenSecret string
	// WebsocketURL is the address browsers connect to, reported by the
	// channels route. Default: derived from APIURL
	// (http://host/api becomes ws://host/connection/websocket).
	WebsocketURL string

	// SiteName names the site in every event payload ("site").
	// Default: SiteSlug.
	SiteName string
	// SiteSlug prefixes the default channel names. Default: "site".
	SiteSlug string
	// SiteOrigin is the origin browsers load the site's pages from,
	// scheme://host[:port] ("https://app.example.com"). Check sends it as
	// the Origin of a websocket handshake, as those pages do, to see that
	// Centrifugo allows it (client.allowed_origins). Default: none, so
	// Check tries only TrustedOrigins.
	SiteOrigin string

	// PublicChannels may be read by everyone, anonymous visitors included.
	// Default (nil): ["<slug>_public"]. An empty non-nil slice means none.
	PublicChannels []string
	// UsersChannels may be read by every logged-in user.
	// Default (nil): ["$<slug>_users"]. A name without "$" gets it.
	UsersChannels []string
	// StaffChannels may be read by staff users and superusers.
	// Default (nil): ["$<slug>_staff"]. A name without "$" gets it.
	StaffChannels []string
	// SuperuserChannels may be read by superusers.
	// Default (nil): ["$<slug>_admin"]. A name without "$" gets it.
	SuperuserChannels []string
	// GroupChannels maps a group name to the channels its members may read.
	// Default: none. A name without "$" gets it.
	GroupChannels map[string][]string

	// ConnectionTokenTTL is the lifetime of a connection token.
	// Default: 10 minutes. At least one second when set.
	ConnectionTokenTTL time.Duration
	// SubscriptionTokenTTL is the lifetime of a subscription token.
	// Default: 5 minutes. At least one second when set.
	SubscriptionTokenTTL time.Duration

	// DisallowAnonymous refuses tokens to visitors who are not logged in.
	// Default (false): anonymous visitors may connect and read public channels.
	DisallowAnonymous bool
	// TrustedOrigins are origins ("https://app.example.com") whose
	// cross-origin POSTs the token routes accept. Default: none, so only
	// same-origin browser requests pass.
	TrustedOrigins []string

	// LoadUser, when set (default: nil, the session value written by
	// Login), finds the current user instead of that session value: for
	// apps that keep only an ID in the session.
	// It returns (nil, nil) for an anonymous visitor. It is called at most
	// once a request, only when the user is needed, with a copy of the
	// request's *gin.Context (c.Copy(): values it sets there are not seen by
	// handlers). It may ask for the current user itself and then gets nil.
	// An error, a panic or an invalid user (see User.ID) is a server fault:
	// one log line, and a 500 from the routes and Require middlewares,
	// never a login. Other goroutines asking meanwhile wait for it, and so
	// does the end of the request.
	LoadUser func(*gin.Context) (*User, error)

	// OutboxTable is the PostgreSQL table BroadcastTx writes to and
	// Centrifugo's outbox consumer reads ("name" or "schema.name": letters,
	// digits and '_', each part at most 63 bytes, folded to lower case as
	// PostgreSQL folds an unquoted name, and quoted in SQL, so reserved
	// words such as "order" work).
	// Default: "centrifugo_outbox". OutboxDDL creates it.
	OutboxTable string
	// OutboxPartitions is the number of outbox partitions: a channel's
	// events go to one partition, and Centrifugo publishes each partition
	// in order. Default: 1.
	OutboxPartitions int

	// PublishTimeout bounds every call to Centrifugo's API. Default: 5
	// seconds. A node that lets it run out (or its share of it, when
	// APIURLs has further nodes) without answering is marked down: the
	// calls that follow skip it at once (ErrUnreachable when no node is
	// left) until it answers a probe, whose own timeout is PublishTimeout
	// but at most 1 second. So a hung Centrifugo costs one timeout, not one
	// per call.
	PublishTimeout time.Duration
	// HTTPClient sends the API calls. Default: a client of the plugin's own
	// (never a shared global).
	HTTPClient *http.Client
	// Logger receives server faults. Default: slog.Default().
	// Secrets and tokens are never logged.
	Logger *slog.Logger
}

// checkedConfig is what a Config's checks build besides the Config: its
// channel table, its outbox's SQL names, and its cross-origin protection.
type checkedConfig struct {
	channels channelTable
	outbox   outboxNames
	cop      *http.CrossOriginProtection
}

// complete fills in the defaults of cfg's zero fields (those of Logger
// and HTTPClient excepted: New's) and checks it, reporting every problem
// at once, joined with errors.Join, each wrapping ErrConfig.
func (cfg *Config) complete() (checkedConfig, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}

	switch {
	case cfg.TokenSecret == "":
		bad("TokenSecret is required")
	case len(cfg.TokenSecret) < minTokenSecretLength:
		bad("TokenSecret must be at least %d bytes, got %d", minTokenSecretLength, len(cfg.TokenSecret))
	}
	if cfg.Server != nil {
		if cfg.APIURL != "" || len(cfg.APIURLs) > 0 || cfg.APIKey != "" {
			bad("Server takes the events itself: APIURL, APIURLs and APIKey are a Centrifugo's, and must be empty with it")
		}
	} else if cfg.APIURL == "" {
		cfg.APIURL = defaultAPIURL
	}
	for k, u := range cfg.APIURLs {
		if err := checkAPIURL(u); err != nil {
			bad("APIURLs[%d]: %w", k, err)
		}
	}
	if cfg.Server == nil {
		if err := checkAPIURL(cfg.APIURL); err != nil {
			bad("APIURL: %w", err)
		} else if cfg.WebsocketURL == "" {
			cfg.WebsocketURL = websocketURLFor(cfg.APIURL)
		}
	}
	if cfg.WebsocketURL != "" && !(cfg.Server != nil && strings.HasPrefix(cfg.WebsocketURL, "/") && !strings.HasPrefix(cfg.WebsocketURL, "//")) {
		if err := checkHTTPURL(cfg.WebsocketURL, "ws", "wss"); err != nil {
			bad("WebsocketURL: %w", err)
		} else if u, _ := url.Parse(cfg.WebsocketURL); u.User != nil {
			bad("WebsocketURL must not hold credentials: every visitor is told it")
		}
	}
	if cfg.SiteSlug == "" {
		cfg.SiteSlug = defaultSiteSlug
	}
	if err := checkSlug(cfg.SiteSlug); err != nil {
		bad("SiteSlug: %w", err)
	}
	if cfg.SiteName == "" {
		cfg.SiteName = cfg.SiteSlug
	}
	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
		min  time.Duration
	}{
		{"ConnectionTokenTTL", &cfg.ConnectionTokenTTL, defaultConnectionTokenTTL, time.Second},
		{"SubscriptionTokenTTL", &cfg.SubscriptionTokenTTL, defaultSubscriptionTokenTTL, time.Second},
		{"PublishTimeout", &cfg.PublishTimeout, defaultPublishTimeout, time.Millisecond},
	}
	for _, d := range durations {
		switch {
		case *d.d == 0:
			*d.d = d.def
		case *d.d < d.min:
			bad("%s must be at least %v, got %v", d.name, d.min, *d.d)
		}
	}

	if cfg.OutboxTable == "" {
		cfg.OutboxTable = defaultOutboxTable
	}
	outbox, err := newOutboxNames(cfg.OutboxTable)
	if err != nil {
		bad("OutboxTable: %w", err)
	}
	switch {
	case cfg.OutboxPartitions == 0:
		cfg.OutboxPartitions = 1
	case cfg.OutboxPartitions < 0 || cfg.OutboxPartitions > 1024:
		bad("OutboxPartitions must be 1 to 1024, got %d", cfg.OutboxPartitions)
	}

	table, tableErrs := buildChannelTable(cfg)
	for _, err := range tableErrs {
		bad("%w", err)
	}

	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.TrustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			bad("TrustedOrigins: %w", err)
		}
	}

	if len(errs) > 0 {
		return checkedConfig{}, errors.Join(errs...)
	}
	return checkedConfig{channels: table, outbox: outbox, cop: cop}, nil
}

func checkHTTPURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL") // the text may hold credentials: not repeated
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return fmt.Errorf("scheme must be %s, got %q", strings.Join(schemes, " or "), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("no host in %q", u.Redacted())
	}
	return nil
}

// checkAPIURL checks that raw is an http(s) URL of Centrifugo's server API,
// whose path ends in /api: a publish sent anywhere else (/api/info,
// /health, a page) can be answered 200 without publishing anything. It
// refuses credentials in the URL (http://user:pass@host/api): every call
// carries "Authorization: apikey ...", so they would never reach a proxy.
func checkAPIURL(raw string) error {
	if err := checkHTTPURL(raw, "http", "https"); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	if u.User != nil {
		// Never repeated: the text holds a password.
		return errors.New("must not hold credentials (user:password@): they would never be sent, since the API key goes in the Authorization header, and Centrifugo's 401 would read as a wrong APIKey; give a proxy's credentials through HTTPClient's Transport instead")
	}
	if !strings.HasSuffix(u.Path, "/api") {
		return fmt.Errorf("the path must be Centrifugo's API endpoint, ending in /api, got %q", u.Path)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("no query or fragment, please")
	}
	return nil
}

// websocketURLFor turns http://host/api into ws://host/connection/websocket.
func websocketURLFor(apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil {
		return ""
	}
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api") + "/connection/websocket"
	// The API's credentials (basic auth on a proxy in front of /api) must
	// not reach browsers: every visitor is told this address.
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func checkSlug(s string) error {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("%q may hold only letters, digits, '_', '-' and '.'", s)
		}
	}
	if len(s) > 64 {
		return fmt.Errorf("%q is longer than 64 bytes", s)
	}
	return nil
}

// ConfigFromEnv reads a Config from the environment, where one file of
// variables can serve both the app and Centrifugo v6, which reads its own
// CENTRIFUGO_ names and warns of any other:
//
//	CENTRIFUGO_HTTP_API_KEY                  APIKey (Centrifugo's http_api.key)
//	CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY  TokenSecret (client.token.hmac_secret_key)
//	INSTANT_API_URL                          APIURL
//	INSTANT_API_URLS                         APIURLs (further nodes), comma-separated
//	INSTANT_WEBSOCKET_URL                    WebsocketURL
//	INSTANT_SITE_NAME                        SiteName
//	INSTANT_SITE_SLUG                        SiteSlug
//	INSTANT_SITE_ORIGIN                      SiteOrigin
//	INSTANT_USERS_CHANNELS                   UsersChannels, comma-separated
//	INSTANT_STAFF_CHANNELS                   StaffChannels, comma-separated
//	INSTANT_SUPERUSER_CHANNELS               SuperuserChannels, comma-separated
//	INSTANT_REDIS_URL                        the embedded server's Redis (embedded.Options.RedisAddress)
//
// When the program imports the embedded package (a blank import chooses
// it) and the environment names no Centrifugo (none of INSTANT_API_URL,
// INSTANT_API_URLS, INSTANT_WEBSOCKET_URL, CENTRIFUGO_HTTP_API_KEY),
// ConfigFromEnv builds the embedded server, with INSTANT_REDIS_URL, into
// Server (a server that cannot be built makes New fail with its error),
// and, when no token secret is set, makes one of its own and warns once:
// tokens signed by one process are then refused by another, and by itself
// after a restart, so several processes need the same secret set. Each
// call builds a new server.
//
// An unset variable leaves its field zero (a nil list), so New applies the
// default; a list set empty means no channels. The package-level Session
// and Register build their Instant with New(ConfigFromEnv()), once.
func ConfigFromEnv() Config {
	cfg := Config{
		APIURL:            os.Getenv("INSTANT_API_URL"),
		APIURLs:           envList("INSTANT_API_URLS"),
		APIKey:            os.Getenv("CENTRIFUGO_HTTP_API_KEY"),
		TokenSecret:       os.Getenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY"),
		WebsocketURL:      os.Getenv("INSTANT_WEBSOCKET_URL"),
		SiteName:          os.Getenv("INSTANT_SITE_NAME"),
		SiteSlug:          os.Getenv("INSTANT_SITE_SLUG"),
		SiteOrigin:        os.Getenv("INSTANT_SITE_ORIGIN"),
		UsersChannels:     envList("INSTANT_USERS_CHANNELS"),
		StaffChannels:     envList("INSTANT_STAFF_CHANNELS"),
		SuperuserChannels: envList("INSTANT_SUPERUSER_CHANNELS"),
	}
	if f := seam.Registered(); f != nil && cfg.APIURL == "" && len(cfg.APIURLs) == 0 && cfg.APIKey == "" && cfg.WebsocketURL == "" {
		// No Centrifugo named, and the embedded server imported: it serves.
		srv, err := f(os.Getenv)
		if err != nil {
			srv = failedServer{err}
		}
		cfg.Server = srv
		if cfg.TokenSecret == "" {
			cfg.TokenSecret = newTokenSecret()
			slog.Default().Warn("instant: no token secret in the environment (CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY): this process made one of its own; tokens it signs are not accepted by another process, and not after a restart (pages reconnect and ask again): set one for several processes")
		}
	}
	return cfg
}

// newTokenSecret is a random token secret of 32 bytes, hex-encoded.
func newTokenSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// envList reads a comma-separated list: nil when the variable is unset,
// empty when it is set empty.
func envList(name string) []string {
	v, set := os.LookupEnv(name)
	if !set {
		return nil
	}
	out := []string{}
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
