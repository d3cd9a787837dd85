package embedded

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/gin-instant/instant/internal/seam"
)

// Publish publishes in order, each key once per channel within 5 minutes, Origin
// as the tag "origin"; it returns the indices that failed and the first error
// (seam.ErrUnknownChannel for a channel the Instant lacks).
func (s *Server) Publish(ctx context.Context, pubs []seam.Publication) (failed []int, err error) {
	for k, pub := range pubs {
		if e := s.publish(ctx, pub); e != nil {
			failed = append(failed, k)
			err = cmp.Or(err, e)
		}
	}
	return failed, err
}

func (s *Server) publish(ctx context.Context, pub seam.Publication) error {
	ch, err := s.channel("publish to", pub.Channel, nil)
	if err = cmp.Or(ctx.Err(), err); err != nil {
		return err
	}
	// A stream position needs history: centrifuge drops a publication without one that comes during a subscribe.
	size, ttl := 1, time.Second
	if ch.Private && s.opts.HistorySize > 0 {
		size, ttl = s.opts.HistorySize, s.opts.HistoryTTL
	}
	opts := append(make([]centrifuge.PublishOption, 0, 3), centrifuge.WithHistory(size, ttl))
	if pub.IdempotencyKey != "" {
		opts = append(opts, centrifuge.WithIdempotencyKey(pub.IdempotencyKey))
	}
	if pub.Origin != "" {
		opts = append(opts, centrifuge.WithTags(map[string]string{"origin": pub.Origin}))
	}
	if _, err := s.node.Publish(pub.Channel, pub.Data, opts...); err != nil {
		return fmt.Errorf("embedded: publish to %q: %w", pub.Channel, err)
	}
	return nil
}

// Unsubscribe ends user's subscriptions to channels in every process (code 2000).
func (s *Server) Unsubscribe(ctx context.Context, user string, channels []string) error {
	for _, ch := range channels {
		if err := cmp.Or(ctx.Err(), s.node.Unsubscribe(user, ch)); err != nil {
			return fmt.Errorf("embedded: unsubscribe from %q: %w", ch, err)
		}
	}
	return nil
}

// Disconnect closes user's connections in every process with 4001: they reconnect.
func (s *Server) Disconnect(_ context.Context, user string) error {
	if err := s.node.Disconnect(user, centrifuge.WithCustomDisconnect(centrifuge.Disconnect{Code: 4001, Reason: "session changed"})); err != nil {
		return fmt.Errorf("embedded: disconnect: %w", err)
	}
	return nil
}

// channel answers how channel is served, or an error (not bound yet), seam.ErrUnknownChannel,
// or seam.ErrNotAvailable (108) when off says so.
func (s *Server) channel(op, channel string, off func(seam.Channel) bool) (seam.Channel, error) {
	p := s.policy.Load()
	if p == nil {
		return seam.Channel{}, errors.New("embedded: the server serves no Instant yet (give it to instant.New as Config.Server)")
	}
	ch, known := p.Channel(channel)
	switch {
	case !known:
		return ch, fmt.Errorf("embedded: %s %q: %w", op, channel, seam.ErrUnknownChannel)
	case off != nil && off(ch):
		return ch, fmt.Errorf("embedded: %s %q: %w: it keeps no %s", op, channel, seam.ErrNotAvailable, strings.TrimSuffix(op, " of"))
	}
	return ch, nil
}

// History returns up to limit of channel's latest publications, oldest
// first; seam.ErrNotAvailable for a channel without history.
func (s *Server) History(_ context.Context, channel string, limit int) ([]json.RawMessage, error) {
	if _, err := s.channel("history of", channel, func(ch seam.Channel) bool { return !ch.Private || s.opts.HistorySize <= 0 }); err != nil || limit <= 0 {
		return nil, err
	}
	res, err := s.node.History(channel, centrifuge.WithLimit(limit), centrifuge.WithReverse(true))
	if err != nil {
		return nil, fmt.Errorf("embedded: history of %q: %w", channel, err)
	}
	out := make([]json.RawMessage, len(res.Publications))
	for k, pub := range res.Publications {
		out[len(out)-1-k] = pub.Data // newest first: turned around
	}
	return out, nil
}

// Presence returns each channel's subscriptions sorted by user then
// client; seam.ErrNotAvailable for a channel without presence.
func (s *Server) Presence(ctx context.Context, channels []string) ([][]seam.Client, error) {
	out := make([][]seam.Client, len(channels))
	for k, channel := range channels {
		_, err := s.channel("presence of", channel, func(ch seam.Channel) bool { return !ch.Private || s.opts.NoPresence })
		if err = cmp.Or(err, ctx.Err()); err != nil {
			return nil, err
		}
		res, err := s.node.Presence(channel)
		if err != nil {
			return nil, fmt.Errorf("embedded: presence of %q: %w", channel, err)
		}
		for _, info := range res.Presence {
			out[k] = append(out[k], seam.Client{ID: info.ClientID, User: info.UserID, Info: info.ChanInfo})
		}
		slices.SortFunc(out[k], func(a, b seam.Client) int { return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.ID, b.ID)) })
	}
	return out, nil
}

// applyCommand publishes an outbox row, leaving out (logged) channels the
// Instant does not declare, as of another version of the app.
func (s *Server) applyCommand(ctx context.Context, method string, params json.RawMessage) error {
	var cmd struct {
		Channel        string            `json:"channel"`
		Channels       []string          `json:"channels"`
		Data           json.RawMessage   `json:"data"`
		IdempotencyKey string            `json:"idempotency_key"`
		Tags           map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(params, &cmd); err != nil {
		return fmt.Errorf("%w: %s: params: %w", errOutboxInvalid, method, err)
	}
	if method == "publish" {
		cmd.Channels = []string{cmd.Channel}
	} else if method != "broadcast" {
		return fmt.Errorf("%w: method %q is neither publish nor broadcast", errOutboxInvalid, method)
	}
	if len(cmd.Data) == 0 || len(cmd.Channels) == 0 || slices.Contains(cmd.Channels, "") {
		return fmt.Errorf("%w: %s: no data or no channel", errOutboxInvalid, method)
	}
	left := 0
	for _, ch := range cmd.Channels {
		err := s.publish(ctx, seam.Publication{Channel: ch, Data: cmd.Data, IdempotencyKey: cmd.IdempotencyKey, Origin: cmd.Tags["origin"]})
		if errors.Is(err, seam.ErrUnknownChannel) {
			left++
		} else if err != nil {
			return err
		}
	}
	if left > 0 {
		s.opts.Logger.Warn("embedded: outbox: channels of namespaces the Instant does not declare left out", "method", method, "channels", left)
	}
	if left == len(cmd.Channels) {
		return fmt.Errorf("%w: %s: %w", errOutboxInvalid, method, seam.ErrUnknownChannel)
	}
	return nil
}

// UserChannels returns, sorted, the channels user is subscribed to in the
// processes that answer its survey within a second (a warning names those
// that do not; a process younger than 3 seconds may not know them all).
func (s *Server) UserChannels(ctx context.Context, user string) ([]string, error) {
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	results, err := s.node.Survey(sctx, "instant.user_channels", []byte(user), "") // the only survey
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		info, _ := s.node.Info() // zero on an error
		s.opts.Logger.Warn("embedded: some processes did not say which channels the user reads; only the answers are used",
			"answered", len(results), "processes", len(info.Nodes), "waited", time.Second)
	case err != nil:
		return nil, fmt.Errorf("embedded: asking the processes for the user's channels: %w", err)
	}
	var out []string
	for _, r := range results {
		var chs []string
		if r.Code == 0 && json.Unmarshal(r.Data, &chs) == nil {
			out = append(out, chs...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// onSurvey answers UserChannels with this process's channels of the user.
func (s *Server) onSurvey(e centrifuge.SurveyEvent, cb centrifuge.SurveyCallback) {
	chs := []string{}
	for _, c := range s.node.Hub().UserConnections(string(e.Data)) {
		chs = append(chs, c.Channels()...)
	}
	data, _ := json.Marshal(chs)
	cb(centrifuge.SurveyReply{Data: data})
}
