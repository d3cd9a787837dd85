package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/gin-instant/instant/internal/seam"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is the realtime server in the app's process: a centrifuge node
// that checks the tokens an Instant's routes sign and serves the channels
// the Instant declares. Give it to one Instant (instant.Config.Server),
// which binds it; Register then serves its websocket. Its methods are
// safe for concurrent use.
type Server struct {
	opts    Options
	node    *centrifuge.Node
	shard   *centrifuge.RedisShard // nil in memory
	handler http.Handler
	logger  *slog.Logger

	policy atomic.Pointer[seam.Policy] // set once, by Bind

	mu         sync.Mutex
	bound      bool
	closed     bool // Close ran: no Bind any more
	stopOutbox func()
	closeOnce  sync.Once
	closeErr   error
}

var _ seam.Server = (*Server)(nil)

// Client limits, as Centrifugo's defaults and the config CentrifugoConfig
// writes for it.
const (
	// staleCloseDelay closes a connection that sent no connect command.
	staleCloseDelay = 10 * time.Second
	// expiredSubCloseDelay and presenceUpdateInterval: a subscription whose
	// token expired and was not refreshed is closed within their sum; the
	// same values CentrifugoConfig writes (client.expired_sub_close_delay,
	// client.presence_update_interval).
	expiredSubCloseDelay   = 5 * time.Second
	presenceUpdateInterval = 5 * time.Second
	// expiredCloseDelay is Centrifugo's for a connection's token.
	expiredCloseDelay = 25 * time.Second
	// messageSizeLimit is the largest websocket message a client may send.
	messageSizeLimit = 64 << 10
)

// New starts a Server: a centrifuge node with Centrifugo's client limits,
// its Prometheus metrics in a registry of its own (never the default
// one), on Redis when o.RedisAddress is set (New fails when Redis does not
// answer) or in memory. It serves nobody until an Instant binds it
// (instant.New with Config.Server). Close stops it.
func New(o Options) (*Server, error) {
	o, err := o.checked()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, logger: o.Logger}
	node, err := centrifuge.New(centrifuge.Config{
		LogLevel:                     centrifuge.LogLevelWarn,
		LogHandler:                   s.log,
		ClientStaleCloseDelay:        staleCloseDelay,
		ClientExpiredCloseDelay:      expiredCloseDelay,
		ClientExpiredSubCloseDelay:   expiredSubCloseDelay,
		ClientPresenceUpdateInterval: presenceUpdateInterval,
		// Centrifugo's defaults, which are centrifuge's too: named here
		// so that a change of the library's does not change ours.
		ClientQueueMaxSize: 1 << 20,
		ClientChannelLimit: 128,
		ChannelMaxLength:   255,
		// A subscriber back from an outage recovers as much as is kept.
		RecoveryMaxPublicationLimit: o.HistorySize,
		Metrics: centrifuge.MetricsConfig{
			MetricsNamespace:   "instant",
			RegistererGatherer: prometheus.NewRegistry(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	s.node = node
	if o.RedisAddress != "" {
		if err := s.useRedis(o.RedisAddress); err != nil {
			return nil, err
		}
	}
	node.OnConnecting(s.onConnecting)
	node.OnConnect(s.onConnect)
	node.OnSurvey(s.onSurvey)
	if err := node.Run(); err != nil {
		s.closeRedis()
		return nil, fmt.Errorf("embedded: starting the node: %w", err)
	}
	s.handler = centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin:      s.checkOrigin,
		MessageSizeLimit: messageSizeLimit,
	})
	return s, nil
}

// useRedis puts the node's broker and presence on the Redis at address.
func (s *Server) useRedis(address string) error {
	shard, err := centrifuge.NewRedisShard(s.node, centrifuge.RedisShardConfig{Address: address})
	if err != nil {
		return fmt.Errorf("embedded: Redis at %s: %w", redactedRedis(address), err)
	}
	s.shard = shard
	broker, err := centrifuge.NewRedisBroker(s.node, centrifuge.RedisBrokerConfig{Shards: []*centrifuge.RedisShard{shard}})
	if err != nil {
		s.closeRedis()
		return fmt.Errorf("embedded: Redis broker at %s: %w", redactedRedis(address), err)
	}
	presence, err := centrifuge.NewRedisPresenceManager(s.node, centrifuge.RedisPresenceManagerConfig{Shards: []*centrifuge.RedisShard{shard}})
	if err != nil {
		s.closeRedis()
		return fmt.Errorf("embedded: Redis presence at %s: %w", redactedRedis(address), err)
	}
	s.node.SetBroker(broker)
	s.node.SetPresenceManager(presence)
	return nil
}

func (s *Server) closeRedis() {
	if s.shard != nil {
		s.shard.Close()
	}
}

// Close stops the server: its outbox consumer, then the node, which
// closes every connection with a code that tells clients to reconnect
// (they come back to another process, or to this one restarted, and
// recover what they missed), waiting for that at most 5 seconds. A second
// Close returns the first one's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true // a Bind from now on is refused
		stop := s.stopOutbox
		s.stopOutbox = nil
		s.mu.Unlock()
		if stop != nil {
			stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.node.Shutdown(ctx); err != nil {
			s.closeErr = fmt.Errorf("embedded: close: %w", err)
		}
		s.closeRedis()
	})
	return s.closeErr
}

// Bind is called by instant.New: it gives the server the Instant's token
// secret and channels, and starts the outbox consumer when
// Options.OutboxDB is set. A Server serves one Instant: a second Bind is
// an error.
func (s *Server) Bind(p seam.Policy) error {
	if len(p.TokenSecret) == 0 || p.Channel == nil {
		return errors.New("embedded: Bind needs a token secret and the channels")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bound {
		return errors.New("embedded: this Server already serves an Instant: give each Instant a Server of its own")
	}
	if s.closed {
		return errors.New("embedded: this Server is closed")
	}
	if p.Logger == nil {
		p.Logger = s.logger
	}
	p.TokenSecret = append([]byte(nil), p.TokenSecret...)
	if s.opts.OutboxDB != nil {
		// The start checks the table: bounded, so that a database that
		// does not answer fails New instead of hanging it.
		ctx, cancel := context.WithTimeout(context.Background(), outboxStartTimeout)
		stop, err := startOutbox(ctx, s.opts.OutboxDB, p, s.applyCommand, s.logger)
		cancel()
		if err != nil {
			return err // "embedded: ..." already
		}
		s.stopOutbox = stop
	}
	s.bound = true
	s.policy.Store(&p)
	return nil
}

// Handler is the websocket endpoint (Register mounts it at GET
// <group>/connection/websocket). It refuses a handshake from a browser
// of another site (see Options.AllowedOrigins) with 403.
func (s *Server) Handler() http.Handler { return s.handler }

// shutdownTimeout bounds how long Close drains the node.
const shutdownTimeout = 5 * time.Second

// outboxStartTimeout bounds Bind's check of the outbox table.
const outboxStartTimeout = 10 * time.Second

// checkOrigin allows a handshake without Origin (no browser), one from
// the page's own host, those of Options.AllowedOrigins, and the
// Instant's own (its SiteOrigin and TrustedOrigins, which its POST routes
// trust too: a proxy that rewrites Host must not lock its pages out).
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	origin = strings.ToLower(u.Scheme + "://" + u.Host)
	for _, allowed := range s.opts.AllowedOrigins {
		if allowed == "*" || allowed == origin {
			return true
		}
	}
	if p := s.policy.Load(); p != nil {
		for _, allowed := range p.Origins {
			if strings.EqualFold(allowed, origin) {
				return true
			}
		}
	}
	return false
}

// Describe names the server for a log line: "embedded, memory", or
// "embedded, redis <address>" (without its credentials).
func (s *Server) Describe() string {
	if s.opts.RedisAddress == "" {
		return "embedded, memory"
	}
	return "embedded, redis " + redactedRedis(s.opts.RedisAddress)
}

// checkChannel is the channel Check reads presence of: a read that
// changes nothing, answered by Redis when the server uses it.
const checkChannel = "instant-check"

// Check reports what can be wrong with the server, every problem joined:
// Redis does not answer (when used), the outbox table cannot be read
// (when Options.OutboxDB is set). Nil when nothing is. It waits no longer
// than ctx allows.
func (s *Server) Check(ctx context.Context) error {
	var errs []error
	if s.shard != nil {
		done := make(chan error, 1)
		go func() {
			_, err := s.node.PresenceStats(checkChannel)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("embedded: Redis at %s: %w", redactedRedis(s.opts.RedisAddress), err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("embedded: Redis at %s did not answer: %w", redactedRedis(s.opts.RedisAddress), ctx.Err()))
		}
	}
	if p := s.policy.Load(); p != nil && s.opts.OutboxDB != nil {
		if err := checkOutbox(ctx, s.opts.OutboxDB, *p); err != nil {
			errs = append(errs, err) // "embedded: ..." already
		}
	}
	return errors.Join(errs...)
}

// log hands centrifuge's warnings and errors to the Logger.
func (s *Server) log(e centrifuge.LogEntry) {
	level := slog.LevelWarn
	if e.Level >= centrifuge.LogLevelError {
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, len(e.Fields)+1)
	for k, v := range e.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	if e.Error != nil {
		attrs = append(attrs, slog.String("error", e.Error.Error()))
	}
	s.logger.LogAttrs(context.Background(), level, "embedded: "+e.Message, attrs...)
}
