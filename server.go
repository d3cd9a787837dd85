package instant

// The realtime server in the app's own process (Config.Server), behind the
// same apiClient as Centrifugo's HTTP API: the core never knows which one
// it talks to.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-instant/instant/internal/seam"
)

// Server is a realtime server that runs in the app's own process, in
// place of a Centrifugo: *embedded.Server, from the package
// github.com/gin-instant/instant/embedded, which is the only
// implementation (its methods are this module's own). Set
// Config.Server to it; see that field.
type Server interface{ seam.Server }

// serverAPI is the apiClient of a Server.
type serverAPI struct{ s seam.Server }

// bindServer tells s what i decides: its token secret and its channels.
func (i *Instant) bindServer(s seam.Server) error {
	configured := map[string]bool{} // the namespaces of configured channels
	for name := range i.channels.byName {
		configured[namespaceOf(name)] = true
	}
	return s.Bind(seam.Policy{
		TokenSecret:       []byte(i.cfg.TokenSecret),
		DisallowAnonymous: i.cfg.DisallowAnonymous,
		Origins:           trustedOrigins(i.cfg),
		Logger:            i.logger,
		OutboxTable:       i.outboxTable.table,
		OutboxPartitions:  i.cfg.OutboxPartitions,
		NotifyChannel:     i.outboxTable.notify,
		Channel: func(ch string) (seam.Channel, bool) {
			if validChannel(ch) != nil {
				return seam.Channel{}, false
			}
			if ns := namespaceOf(ch); ns != "" && !configured[ns] && !i.declares(ns) {
				return seam.Channel{}, false
			}
			return seam.Channel{Private: isPrivate(ch)}, true
		},
	})
}

// declares reports whether ns is the namespace of the personal channels
// or of a rule (which Authorize may add at any time).
func (i *Instant) declares(ns string) bool {
	if ns == i.channels.userNamespace {
		return true
	}
	for _, r := range *i.rules.Load() {
		if r.namespace == ns {
			return true
		}
	}
	return false
}

// serverError turns a Server's error into the plugin's: a *PublishError
// whose code is Centrifugo's for the same refusal.
func serverError(op string, channels []string, err error) error {
	if err == nil {
		return nil
	}
	var pe *PublishError
	if errors.As(err, &pe) {
		return err
	}
	code := 0
	switch {
	case errors.Is(err, seam.ErrUnknownChannel):
		code = codeUnknownChannel
		err = fmt.Errorf("%w: %w", ErrStaleConfig, err)
	case errors.Is(err, seam.ErrNotAvailable):
		code = codeNotAvailable
	}
	return &PublishError{Op: op, Channels: channels, Code: code, Err: err}
}

func (a serverAPI) publish(ctx context.Context, channels []string, payloads [][]byte, keys, origins []string) error {
	pubs := make([]seam.Publication, len(channels))
	for k := range channels {
		pubs[k] = seam.Publication{Channel: channels[k], Data: payloads[k], IdempotencyKey: keys[k]}
		if origins != nil {
			pubs[k].Origin = origins[k]
		}
	}
	failed, err := a.s.Publish(ctx, pubs)
	if err == nil {
		return nil
	}
	var failedChannels []string
	for _, k := range failed {
		failedChannels = append(failedChannels, channels[k])
	}
	perr := serverError("publish", failedChannels, err)
	if pe, ok := perr.(*PublishError); ok {
		pe.failedPubs = failed
	}
	return perr
}

func (a serverAPI) unsubscribe(ctx context.Context, channel, user string) error {
	return serverError("unsubscribe", []string{channel}, a.s.Unsubscribe(ctx, user, []string{channel}))
}

func (a serverAPI) unsubscribeAll(ctx context.Context, user string, channels []string) (int, error) {
	if err := a.s.Unsubscribe(ctx, user, channels); err != nil {
		return 0, serverError("unsubscribe", channels, err)
	}
	return 0, nil
}

func (a serverAPI) disconnect(ctx context.Context, user string) error {
	return serverError("disconnect", nil, a.s.Disconnect(ctx, user))
}

func (a serverAPI) info(context.Context) error { return nil }

func (a serverAPI) presenceBatch(ctx context.Context, channels []string) ([][]presenceClient, error) {
	res, err := a.s.Presence(ctx, channels)
	if err != nil {
		return nil, serverError("presence", channels, err)
	}
	out := make([][]presenceClient, len(res))
	for k, clients := range res {
		out[k] = make([]presenceClient, len(clients))
		for j, c := range clients {
			out[k][j] = presenceClient{client: c.ID, user: c.User, chanInfo: c.Info}
		}
	}
	return out, nil
}

func (a serverAPI) presence(ctx context.Context, channel string) ([]presenceClient, error) {
	res, err := a.presenceBatch(ctx, []string{channel})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// channels is not asked of a Server: Reauthorize asks userChannels.
func (a serverAPI) channels(context.Context, string) ([]string, error) {
	return nil, &PublishError{Op: "channels", Code: codeNotAvailable, Err: seam.ErrNotAvailable}
}

// holders: the channels came from userChannels, so the user holds them.
func (a serverAPI) holders(_ context.Context, _ string, channels []string) ([]string, bool, error) {
	return channels, false, nil
}

func (a serverAPI) userChannels(ctx context.Context, user string) ([]string, bool, error) {
	chs, err := a.s.UserChannels(ctx, user)
	return chs, true, serverError("user channels", nil, err)
}

// logServer says, once, which server an Instant uses.
func (i *Instant) logServer() {
	if i.server != nil {
		i.logger.Info("instant: realtime served from this process", slog.String("server", i.server.Describe()))
		return
	}
	i.logger.Info("instant: realtime served by centrifugo", slog.String("api", redactedURL(i.cfg.APIURL)), slog.String("websocket", i.cfg.WebsocketURL))
}

// failedServer stands for a Server that could not be built (ConfigFromEnv):
// New reports its error.
type failedServer struct{ err error }

func (f failedServer) Bind(seam.Policy) error { return f.err }
func (f failedServer) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "instant: no realtime server", http.StatusServiceUnavailable)
	})
}
func (f failedServer) Publish(context.Context, []seam.Publication) ([]int, error) { return nil, f.err }
func (f failedServer) Unsubscribe(context.Context, string, []string) error        { return f.err }
func (f failedServer) Disconnect(context.Context, string) error                   { return f.err }
func (f failedServer) History(context.Context, string, int) ([]json.RawMessage, error) {
	return nil, f.err
}
func (f failedServer) Presence(context.Context, []string) ([][]seam.Client, error) { return nil, f.err }
func (f failedServer) UserChannels(context.Context, string) ([]string, error)      { return nil, f.err }
func (f failedServer) Check(context.Context) error                                 { return f.err }
func (f failedServer) Describe() string                                            { return "none: " + f.err.Error() }

// trustedOrigins are cfg's SiteOrigin and TrustedOrigins, as browsers send
// them (scheme://host[:port], lower case).
func trustedOrigins(cfg Config) []string {
	var out []string
	for _, o := range append([]string{cfg.SiteOrigin}, cfg.TrustedOrigins...) {
		if o = strings.ToLower(strings.TrimSuffix(o, "/")); o != "" {
			out = append(out, o)
		}
	}
	return out
}
