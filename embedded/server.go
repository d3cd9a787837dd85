package embedded

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/gin-instant/instant/internal/seam"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is the realtime server in the app's process, for one Instant
// (instant.Config.Server). Its methods are safe for concurrent use.
type Server struct {
	opts    Options
	node    *centrifuge.Node
	shard   *centrifuge.RedisShard // nil in memory
	handler http.Handler
	policy  atomic.Pointer[seam.Policy] // set once, by Bind

	mu         sync.Mutex // for the fields below, and Bind
	closed     bool
	stopOutbox func()
	closeErr   error
}

// New starts a Server as CentrifugoConfig configures Centrifugo, on Redis
// (which must answer) or in memory, with a Prometheus registry of its own.
func New(o Options) (*Server, error) {
	o, err := o.checked()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, stopOutbox: func() {}}
	s.node, err = centrifuge.New(centrifuge.Config{ // unset: centrifuge's defaults, as Centrifugo's
		LogLevel:                     centrifuge.LogLevelWarn,
		LogHandler:                   s.log,
		ClientStaleCloseDelay:        10 * time.Second,
		ClientExpiredSubCloseDelay:   5 * time.Second,
		ClientPresenceUpdateInterval: 5 * time.Second,
		RecoveryMaxPublicationLimit:  o.HistorySize,
		Metrics:                      centrifuge.MetricsConfig{MetricsNamespace: "instant", RegistererGatherer: prometheus.NewRegistry()},
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if o.RedisAddress != "" {
		if err := s.useRedis(); err != nil {
			s.closeRedis()
			return nil, fmt.Errorf("embedded: Redis at %s: %w", redactedRedis(o.RedisAddress), err)
		}
	}
	s.node.OnConnecting(s.onConnecting)
	s.node.OnConnect(s.onConnect)
	s.node.OnSurvey(s.onSurvey)
	if err := s.node.Run(); err != nil {
		s.closeRedis()
		return nil, fmt.Errorf("embedded: starting the node: %w", err)
	}
	s.handler = centrifuge.NewWebsocketHandler(s.node, centrifuge.WebsocketConfig{CheckOrigin: s.checkOrigin, MessageSizeLimit: 64 << 10})
	return s, nil
}

// Close stops the outbox and the node within 5 seconds, telling clients to
// reconnect and recover; closing again returns the first result.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true // and Bind refused
		s.stopOutbox()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.node.Shutdown(ctx); err != nil {
			s.closeErr = fmt.Errorf("embedded: close: %w", err)
		}
		s.closeRedis()
	}
	return s.closeErr
}

// Bind, called by instant.New, starts serving p and the outbox (within 10
// seconds); a second Bind, or one after Close, is an error.
func (s *Server) Bind(p seam.Policy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.policy.Load() != nil {
		return errors.New("embedded: this Server already serves an Instant: give each Instant a Server of its own")
	}
	if s.closed {
		return errors.New("embedded: this Server is closed")
	}
	if s.opts.OutboxDB == nil {
		s.policy.Store(&p)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The table first: a Bind that fails has served no client. The policy
	// then, which the outbox's first rows need.
	if err := checkOutbox(ctx, s.opts.OutboxDB, p); err != nil {
		return err
	}
	s.policy.Store(&p)
	s.stopOutbox = runOutbox(ctx, s.opts.OutboxDB, p, s.applyCommand, s.opts.Logger)
	return nil
}

// Handler is the websocket endpoint: 403 for a page of an origin not allowed.
func (s *Server) Handler() http.Handler { return s.handler }

// checkOrigin allows no Origin, the page's host, AllowedOrigins, SiteOrigin and TrustedOrigins.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	u, err := url.Parse(origin)
	switch {
	case origin == "":
		return true
	case err != nil || u.Host == "":
		return false
	case strings.EqualFold(u.Host, r.Host):
		return true
	}
	want := u.Scheme + "://" + u.Host
	match := func(a string) bool { return a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), want) }
	p := s.policy.Load()
	return slices.ContainsFunc(s.opts.AllowedOrigins, match) || p != nil && slices.ContainsFunc(p.Origins, match)
}

// Describe names the server for a log line: "embedded, memory" or "embedded, redis <address>".
func (s *Server) Describe() string {
	if s.opts.RedisAddress == "" {
		return "embedded, memory"
	}
	return "embedded, redis " + redactedRedis(s.opts.RedisAddress)
}

// Check reports Redis silent within ctx, and an outbox table not OutboxDDL's.
func (s *Server) Check(ctx context.Context) (err error) {
	if s.shard != nil {
		done := make(chan error, 2)
		go func() { _, err := s.node.PresenceStats("instant-check"); done <- err }() // changes nothing
		defer context.AfterFunc(ctx, func() { done <- fmt.Errorf("did not answer: %w", ctx.Err()) })()
		if err = <-done; err != nil {
			err = fmt.Errorf("embedded: Redis at %s: %w", redactedRedis(s.opts.RedisAddress), err)
		}
	}
	if p := s.policy.Load(); p != nil && s.opts.OutboxDB != nil {
		err = errors.Join(err, checkOutbox(ctx, s.opts.OutboxDB, *p))
	}
	return err
}

func (s *Server) log(e centrifuge.LogEntry) {
	level := slog.LevelWarn
	if e.Level >= centrifuge.LogLevelError {
		level = slog.LevelError
	}
	s.opts.Logger.Log(context.Background(), level, "embedded: "+e.Message, "fields", e.Fields, "error", e.Error)
}

// init registers the server of the package-level Session and Register, on INSTANT_REDIS_URL.
func init() {
	seam.Register(func(env func(string) string) (seam.Server, error) {
		return New(Options{RedisAddress: env("INSTANT_REDIS_URL")})
	})
}

func (s *Server) useRedis() (err error) {
	if s.shard, err = centrifuge.NewRedisShard(s.node, centrifuge.RedisShardConfig{Address: s.opts.RedisAddress}); err != nil {
		return err
	}
	broker, err := centrifuge.NewRedisBroker(s.node, centrifuge.RedisBrokerConfig{Shards: []*centrifuge.RedisShard{s.shard}})
	if err != nil {
		return err
	}
	s.node.SetBroker(broker)
	presence, err := centrifuge.NewRedisPresenceManager(s.node, centrifuge.RedisPresenceManagerConfig{Shards: []*centrifuge.RedisShard{s.shard}})
	s.node.SetPresenceManager(presence) // on an error, the node is dropped
	return err
}

func (s *Server) closeRedis() {
	if s.shard != nil {
		s.shard.Close()
	}
}

// Options configures a Server. The zero value works: one process, in memory,
// same-origin browsers, presence and history on private channels.
type Options struct {
	// AllowedOrigins are more origins (scheme://host[:port]; "*": all) whose pages may open the websocket.
	AllowedOrigins []string
	// RedisAddress ("redis://host:6379") makes the processes on that Redis serve as one. Default: memory.
	RedisAddress string
	// OutboxDB (PostgreSQL) holds BroadcastTx's outbox: each committed row is published once, in order per partition.
	OutboxDB *sql.DB
	// NoPresence turns off presence, joins and leaves on private channels (public ones have none).
	NoPresence bool
	// HistorySize and HistoryTTL keep each private channel's latest
	// publications for recovery. Zero: 100 and 2 minutes; -1: none.
	HistorySize int
	HistoryTTL  time.Duration
	// Logger receives warnings and errors. Default: slog.Default().
	Logger *slog.Logger
}

func (o Options) checked() (Options, error) {
	var errs []error
	o.AllowedOrigins = slices.Clone(o.AllowedOrigins) // the caller's stays theirs
	for k, origin := range o.AllowedOrigins {
		u, err := url.Parse(origin)
		if origin != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil) {
			errs = append(errs, fmt.Errorf("embedded: AllowedOrigins[%d] %q is not an origin (scheme://host[:port])", k, origin))
		}
	}
	switch {
	case o.HistorySize == -1 || o.HistoryTTL == -1:
		o.HistorySize, o.HistoryTTL = 0, 0
	case o.HistorySize < 0 || o.HistoryTTL < 0:
		errs = append(errs, fmt.Errorf("embedded: HistorySize and HistoryTTL must be above zero, zero (the defaults, 100 and 2 minutes) or -1 (none), got %d and %v", o.HistorySize, o.HistoryTTL))
	case o.HistoryTTL > 0 && o.HistoryTTL < time.Second:
		errs = append(errs, fmt.Errorf("embedded: HistoryTTL must be at least a second, got %v", o.HistoryTTL))
	default:
		o.HistorySize, o.HistoryTTL = cmp.Or(o.HistorySize, 100), cmp.Or(o.HistoryTTL, 2*time.Minute)
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
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
