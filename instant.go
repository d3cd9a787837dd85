package instant

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Instant is the plugin: token routes, session middleware and a publisher
// bound to one Centrifugo or Server. Safe for concurrent use.
type Instant struct {
	cfg         Config     // with defaults filled in
	tokenKey    []byte     // TokenSecret
	origins     *sync.Pool // HMAC states for origin ids (origin.go)
	channels    channelTable
	rules       atomic.Pointer[[]rule]
	cop         *http.CrossOriginProtection
	nodes       []*gocentAPI // APIURL, then APIURLs; none with a Server (pointers: a call passes one as an apiClient without a copy)
	outboxTable outboxNames
	stats       counters
	users       userCache
	clock       clock  // time's, or a test's fake
	proxyKey    string // authenticates Centrifugo's proxy requests, so no secret travels; never logged
}

// WebsocketURL is the address browsers connect to, as the channels route
// reports it (Config.WebsocketURL, or derived from APIURL).
func (i *Instant) WebsocketURL() string {
	if i == nil {
		return ""
	}
	return i.cfg.WebsocketURL
}

var defaultInstant = sync.OnceValues(func() (*Instant, error) {
	inst, err := New(ConfigFromEnv())
	if err == nil {
		inst.logServer()
	}
	return inst, err
})

// packageDefault returns the package default Instant, or panics at every
// call naming the unset variables and New's errors, never a value.
func packageDefault() *Instant {
	inst, err := defaultInstant()
	if err == nil {
		return inst
	}
	unset := slices.DeleteFunc([]string{"CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "CENTRIFUGO_HTTP_API_KEY"},
		func(name string) bool { return os.Getenv(name) != "" })
	msg := "instant: the package-level Session and Register need the environment to configure them (see ConfigFromEnv)"
	if len(unset) > 0 {
		msg += "; unset: " + strings.Join(unset, ", ")
	}
	panic(msg + ": " + strings.ReplaceAll(err.Error(), "\n", "; ") + `; or import _ "github.com/gin-instant/instant/embedded" to serve realtime from this process; or build an Instant with New and use its Session and Register methods`)
}
