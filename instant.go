package instant

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gin-instant/instant/internal/seam"
)

// Instant is the plugin: token routes, session middleware and a publisher
// bound to one Centrifugo or Server. Safe for concurrent use once built by
// New.
type Instant struct {
	cfg         Config     // with defaults filled in
	tokenKey    []byte     // TokenSecret
	origins     *sync.Pool // HMAC states for origin ids (origin.go)
	logger      *slog.Logger
	channels    channelTable
	rules       atomic.Pointer[[]rule]
	cop         *http.CrossOriginProtection
	nodes       []apiClient // APIURL, then APIURLs; or the Server alone
	server      seam.Server // Config.Server, or nil
	outboxTable outboxNames
	stats       counters
	users       userCache
	proxyKey    string
}

// New checks cfg, fills in its defaults and returns a ready Instant. It
// reports every problem at once, joined with errors.Join, each wrapping
// ErrConfig and naming its field.
func New(cfg Config) (*Instant, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	cfg.APIURLs = slices.Clone(cfg.APIURLs) // the caller's slice stays theirs
	inst, err := cfg.check()
	if err != nil {
		return nil, err
	}
	cfg = inst.cfg
	inst.tokenKey = []byte(cfg.TokenSecret)
	inst.origins = newOriginPool(inst.tokenKey)
	inst.proxyKey = deriveProxyKey(inst.tokenKey)
	inst.logger = cfg.Logger
	inst.rules.Store(&[]rule{})
	if cfg.Server != nil {
		inst.server = cfg.Server
		inst.nodes = []apiClient{serverAPI{cfg.Server}}
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

// WebsocketURL is the address browsers connect to (Config.WebsocketURL, or
// the one derived from APIURL), as the channels route reports it.
func (i *Instant) WebsocketURL() string {
	if i == nil {
		return ""
	}
	return i.cfg.WebsocketURL
}

// defaultInstant builds the package default Instant, once, from the
// environment.
var defaultInstant = sync.OnceValues(func() (*Instant, error) {
	inst, err := New(ConfigFromEnv())
	if err == nil {
		inst.logServer()
	}
	return inst, err
})

// packageDefault returns the package default Instant. When the environment
// does not configure it, it panics, at every call (at startup: Session and
// Register), naming the unset variables and New's errors, never a value.
func packageDefault() *Instant {
	inst, err := defaultInstant()
	if err == nil {
		return inst
	}
	var unset []string
	for _, name := range []string{"CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "CENTRIFUGO_HTTP_API_KEY"} {
		if os.Getenv(name) == "" {
			unset = append(unset, name)
		}
	}
	msg := "instant: the package-level Session and Register need the environment to configure them (see ConfigFromEnv)"
	if len(unset) > 0 {
		msg += "; unset: " + strings.Join(unset, ", ")
	}
	panic(msg + ": " + strings.ReplaceAll(err.Error(), "\n", "; ") + `; or import _ "github.com/gin-instant/instant/embedded" to serve realtime from this process; or build an Instant with New and use its Session and Register methods`)
}
