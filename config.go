package instant

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant/internal/seam"
)

// Config configures an Instant. Every field but TokenSecret may be left
// zero: New fills in the default its comment names.
type Config struct {
	// Server is a realtime server in the app's process (*embedded.Server)
	// in place of a Centrifugo at APIURL; Register serves its websocket.
	Server       Server
	APIURL       string   // Centrifugo's server API, path ending in /api. Default: "http://127.0.0.1:8000/api".
	APIURLs      []string // further nodes, tried in order when one does not answer. Default: none.
	APIKey       string   // Centrifugo's http_api.key, never logged. Default: empty.
	TokenSecret  string   // client.token.hmac_secret_key, never logged. Required, 32 bytes or more.
	WebsocketURL string   // browsers connect to it (with Server, may be a path). Default: from APIURL.

	SiteName   string // names the site in every event payload. Default: SiteSlug.
	SiteSlug   string // prefixes the default channel names. Default: "site".
	SiteOrigin string // the site's origin, which Check asks Centrifugo to allow. Default: none.

	// The channels of each role: nil means the default, an empty slice
	// none; a name without "$" gets it (public ones excepted).
	PublicChannels    []string            // everyone. Default: ["<slug>_public"]
	UsersChannels     []string            // logged-in users. Default: ["$<slug>_users"]
	StaffChannels     []string            // staff and superusers. Default: ["$<slug>_staff"]
	SuperuserChannels []string            // superusers. Default: ["$<slug>_admin"]
	GroupChannels     map[string][]string // a group's, for its members. Default: none

	ConnectionTokenTTL   time.Duration // at least a second. Default: 10 minutes.
	SubscriptionTokenTTL time.Duration // at least a second. Default: 5 minutes.

	DisallowAnonymous bool     // refuses tokens to visitors who are not logged in
	TrustedOrigins    []string // origins whose cross-origin POSTs the routes accept. Default: none.

	// LoadUser finds the user (nil, nil: anonymous) in place of Login's, at
	// most once a request, with a c.Copy(); error, panic, invalid user: 500.
	LoadUser func(*gin.Context) (*User, error)

	// OutboxTable is BroadcastTx's table, "name" or "schema.name" (letters,
	// digits, '_'; folded to lower case). Default: "centrifugo_outbox".
	OutboxTable      string
	OutboxPartitions int // 1 to 1024. Default: 1.

	// PublishTimeout bounds every API call, at least a millisecond; a node
	// that lets it run out is skipped until a probe answers. Default: 5s.
	PublishTimeout time.Duration
	HTTPClient     *http.Client // sends the API calls. Default: the Instant's own.
	Logger         *slog.Logger // receives server faults, never a secret. Default: slog.Default().
}

// New checks cfg, fills in its defaults and returns a ready Instant. It
// reports every problem at once, joined with errors.Join, each wrapping
// ErrConfig and naming its field.
func New(cfg Config) (*Instant, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if len(cfg.TokenSecret) < 32 {
		bad("TokenSecret is required, at least 32 bytes, got %d", len(cfg.TokenSecret))
	}
	if cfg.Server != nil {
		if cfg.APIURL != "" || len(cfg.APIURLs) > 0 || cfg.APIKey != "" {
			bad("Server takes the events itself: APIURL, APIURLs and APIKey are a Centrifugo's, and must be empty with it")
		}
	} else if cfg.APIURL = cmp.Or(cfg.APIURL, "http://127.0.0.1:8000/api"); checkAPIURL(cfg.APIURL) != nil {
		bad("APIURL: %w", checkAPIURL(cfg.APIURL))
	} else if cfg.WebsocketURL == "" { // http://host/api: ws://host/connection/websocket
		u, _ := url.Parse(cfg.APIURL)
		u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
		u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api") + "/connection/websocket"
		cfg.WebsocketURL = u.String()
	}
	for k, u := range cfg.APIURLs {
		if err := checkAPIURL(u); err != nil {
			bad("APIURLs[%d]: %w", k, err)
		}
	}
	if ws := cfg.WebsocketURL; ws != "" && !(cfg.Server != nil && strings.HasPrefix(ws, "/") && !strings.HasPrefix(ws, "//")) {
		if err := checkHTTPURL(ws, "ws", "wss"); err != nil {
			bad("WebsocketURL: %w", err)
		} else if u, _ := url.Parse(ws); u.User != nil {
			bad("WebsocketURL must not hold credentials: every visitor is told it")
		}
	}
	cfg.SiteSlug = cmp.Or(cfg.SiteSlug, "site")
	cfg.SiteName = cmp.Or(cfg.SiteName, cfg.SiteSlug)
	if len(cfg.SiteSlug) > 64 || !namespaceChars(cfg.SiteSlug) {
		bad("SiteSlug: %q may hold only letters, digits, '_', '-' and '.', at most 64 bytes", cfg.SiteSlug)
	}
	duration := func(name string, d *time.Duration, def, atLeast time.Duration) {
		if *d == 0 {
			*d = def
		} else if *d < atLeast {
			bad("%s must be at least %v, got %v", name, atLeast, *d)
		}
	}
	duration("ConnectionTokenTTL", &cfg.ConnectionTokenTTL, 10*time.Minute, time.Second)
	duration("SubscriptionTokenTTL", &cfg.SubscriptionTokenTTL, 5*time.Minute, time.Second)
	duration("PublishTimeout", &cfg.PublishTimeout, 5*time.Second, time.Millisecond)
	cfg.OutboxTable = cmp.Or(cfg.OutboxTable, defaultOutboxTable)
	outbox, err := newOutboxNames(cfg.OutboxTable)
	if err != nil {
		bad("OutboxTable: %w", err)
	}
	if cfg.OutboxPartitions = cmp.Or(cfg.OutboxPartitions, 1); cfg.OutboxPartitions < 0 || cfg.OutboxPartitions > 1024 {
		bad("OutboxPartitions must be 1 to 1024, got %d", cfg.OutboxPartitions)
	}
	table := buildChannelTable(&cfg, bad)
	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.TrustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			bad("TrustedOrigins: %w", err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.HTTPClient = cmp.Or(cfg.HTTPClient, &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()})
	cfg.APIURLs = slices.Clone(cfg.APIURLs) // the caller's slice stays theirs
	key := []byte(cfg.TokenSecret)
	inst := &Instant{cfg: cfg, channels: table, cop: cop, outboxTable: outbox,
		tokenKey: key, origins: newOriginPool(key), proxyKey: hex.EncodeToString(deriveKey(key, "proxy")),
		clock: clock{time.Now, time.After}}
	inst.rules.Store(&[]rule{})
	if cfg.Server != nil {
		if err := inst.bindServer(cfg.Server); err != nil {
			return nil, fmt.Errorf("%w: Server: %w", ErrConfig, err)
		}
		return inst, nil
	}
	secrets := []string{cfg.APIKey, cfg.TokenSecret}
	for _, u := range append([]string{cfg.APIURL}, cfg.APIURLs...) {
		inst.nodes = append(inst.nodes, newGocentAPI(u, cfg.APIKey, cfg.HTTPClient, secrets))
	}
	return inst, nil
}

// checkHTTPURL checks that raw is a URL of one of schemes, with a host.
func checkHTTPURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL") // the text may hold credentials: not repeated
	case !slices.Contains(schemes, u.Scheme):
		return fmt.Errorf("scheme must be %s, got %q", strings.Join(schemes, " or "), u.Scheme)
	case u.Host == "":
		return fmt.Errorf("no host in %q", u.Redacted())
	}
	return nil
}

// checkAPIURL checks raw is Centrifugo's API: elsewhere, 200 may not publish.
func checkAPIURL(raw string) error {
	if err := checkHTTPURL(raw, "http", "https"); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	switch {
	case u.User != nil: // never repeated: it holds a password
		return errors.New("must not hold credentials (user:password@): the API key takes the Authorization header, so they would never be sent; give a proxy's through HTTPClient's Transport")
	case !strings.HasSuffix(u.Path, "/api"):
		return fmt.Errorf("the path must be Centrifugo's API endpoint, ending in /api, got %q", u.Path)
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("no query or fragment, please")
	}
	return nil
}

// ConfigFromEnv reads a Config from the environment (Centrifugo v6 reads
// the CENTRIFUGO_ variables too):
//
//	CENTRIFUGO_HTTP_API_KEY                  APIKey
//	CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY  TokenSecret
//	INSTANT_API_URL, INSTANT_API_URLS        APIURL, APIURLs (comma-separated)
//	INSTANT_WEBSOCKET_URL                    WebsocketURL
//	INSTANT_SITE_NAME, _SLUG, _ORIGIN        SiteName, SiteSlug, SiteOrigin
//	INSTANT_{USERS,STAFF,SUPERUSER}_CHANNELS  UsersChannels, StaffChannels, SuperuserChannels (comma-separated)
//	INSTANT_REDIS_URL                        the embedded server's Redis
//
// Unset leaves a field zero; a list set empty is none. Naming no Centrifugo
// (the API URLs, websocket URL, API key), a program importing the embedded
// package gets its Server and, if unset, a token secret of its own.
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
		srv, err := f(os.Getenv)
		if err != nil {
			srv = failedServer{err}
		}
		cfg.Server = srv
		if cfg.TokenSecret == "" {
			cfg.TokenSecret = newEventID() + newEventID() // 32 random bytes, in hex
			slog.Default().Warn("instant: no token secret in the environment (CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY): this process made one of its own, which another process or a restart does not accept: set one for several processes")
		}
	}
	return cfg
}

// envList reads a comma-separated list: nil when the variable is unset,
// empty when it is set empty.
func envList(name string) []string {
	v, set := os.LookupEnv(name)
	if !set {
		return nil
	}
	out := strings.Split(v, ",")
	for k := range out {
		out[k] = strings.TrimSpace(out[k])
	}
	return slices.DeleteFunc(out, func(item string) bool { return item == "" }) // set empty: none
}
