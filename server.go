package instant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/gin-instant/instant/internal/seam"
)

// Server is a realtime server in the app's own process, in place of a
// Centrifugo: *embedded.Server (github.com/gin-instant/instant/embedded).
type Server interface{ seam.Server }

type serverAPI struct{ s seam.Server }

// bindServer tells s i's secret, origins and channels: a valid channel is known
// in a namespace of a configured channel, the personal ones or a rule.
func (i *Instant) bindServer(s seam.Server) error {
	configured := map[string]bool{i.channels.userNamespace: true}
	for name := range i.channels.byName {
		configured[namespaceOf(name)] = true
	}
	return s.Bind(seam.Policy{
		TokenSecret:       []byte(i.cfg.TokenSecret),
		DisallowAnonymous: i.cfg.DisallowAnonymous,
		Origins:           append([]string{i.cfg.SiteOrigin}, i.cfg.TrustedOrigins...),
		OutboxTable:       i.outboxTable.table,
		OutboxPartitions:  i.cfg.OutboxPartitions,
		Channel: func(ch string) (seam.Channel, bool) {
			ns := namespaceOf(ch)
			known := validChannel(ch) == nil && (ns == "" || configured[ns] ||
				slices.ContainsFunc(*i.rules.Load(), func(r rule) bool { return r.namespace == ns }))
			return seam.Channel{Private: isPrivate(ch)}, known
		},
	})
}

// serverError makes err a *PublishError with Centrifugo's code.
func serverError(op string, channels []string, err error) error {
	var pe *PublishError
	if err == nil || errors.As(err, &pe) {
		return err
	}
	pe = &PublishError{Op: op, Channels: channels, Err: err}
	switch {
	case errors.Is(err, seam.ErrUnknownChannel):
		pe.Code, pe.Err = codeUnknownChannel, fmt.Errorf("%w: %w", ErrStaleConfig, err)
	case errors.Is(err, seam.ErrNotAvailable):
		pe.Code = codeNotAvailable
	}
	return pe
}

func (a serverAPI) publish(ctx context.Context, channels []string, payloads [][]byte, keys, origins []string) error {
	pubs := make([]seam.Publication, len(channels))
	for k := range channels {
		pubs[k] = seam.Publication{Channel: channels[k], Data: payloads[k], IdempotencyKey: keys[k], Origin: origins[k]}
	}
	failed, err := a.s.Publish(ctx, pubs)
	err = serverError("publish", nil, err)
	if pe, ok := err.(*PublishError); ok {
		for _, k := range failed {
			pe.Channels = append(pe.Channels, channels[k])
		}
		pe.failedPubs = failed
	}
	return err
}

func (a serverAPI) unsubscribeAll(ctx context.Context, user string, channels []string) (int, error) {
	return 0, serverError("unsubscribe", channels, a.s.Unsubscribe(ctx, user, channels))
}

func (a serverAPI) disconnect(ctx context.Context, user string) error {
	return serverError("disconnect", nil, a.s.Disconnect(ctx, user))
}

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

// Reauthorize asks a Server userChannels, never channels; the user holds those (holders).
func (a serverAPI) channels(context.Context, string) ([]string, error) {
	return nil, &PublishError{Op: "channels", Code: codeNotAvailable, Err: seam.ErrNotAvailable}
}

func (a serverAPI) holders(_ context.Context, _ string, channels []string) ([]string, bool, error) {
	return channels, false, nil
}

func (a serverAPI) userChannels(ctx context.Context, user string) ([]string, bool, error) {
	chs, err := a.s.UserChannels(ctx, user)
	return chs, true, serverError("user channels", nil, err)
}

// logServer says, once, which server an Instant uses.
func (i *Instant) logServer() {
	if i.cfg.Server != nil {
		i.cfg.Logger.Info("instant: realtime served from this process", slog.String("server", i.cfg.Server.Describe()))
		return
	}
	i.cfg.Logger.Info("instant: realtime served by centrifugo", slog.String("api", redactedURL(i.cfg.APIURL)), slog.String("websocket", i.cfg.WebsocketURL))
}

// failedServer is a Server ConfigFromEnv could not build; Bind says why.
type failedServer struct{ err error }

func (f failedServer) Bind(seam.Policy) error                                      { return f.err }
func (f failedServer) Handler() http.Handler                                       { return http.NotFoundHandler() }
func (f failedServer) Publish(context.Context, []seam.Publication) ([]int, error)  { return nil, f.err }
func (f failedServer) Unsubscribe(context.Context, string, []string) error         { return f.err }
func (f failedServer) Disconnect(context.Context, string) error                    { return f.err }
func (f failedServer) Presence(context.Context, []string) ([][]seam.Client, error) { return nil, f.err }
func (f failedServer) UserChannels(context.Context, string) ([]string, error)      { return nil, f.err }
func (f failedServer) Check(context.Context) error                                 { return f.err }
func (f failedServer) Describe() string                                            { return "none: " + f.err.Error() }
