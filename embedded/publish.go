package embedded

// What the Instant asks of the server (its apiClient): publications,
// unsubscribes, disconnects, history and presence, each crossing
// processes on Redis.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/gin-instant/instant/internal/seam"
)

// errNotBound is what a Server answers before an Instant binds it.
var errNotBound = errors.New("embedded: the server serves no Instant yet (give it to instant.New as Config.Server)")

// reconnectDisconnect is what Disconnect closes connections with: a code
// that tells clients to reconnect (4000-4499), the one the core sends
// Centrifugo (4001, "session changed"), so they ask for new tokens.
var reconnectDisconnect = centrifuge.Disconnect{Code: 4001, Reason: "session changed"}

// positionTTL is how long a channel without history (a public one, or
// any with history off) keeps its latest publication. It is kept only
// for its position in the channel's stream: centrifuge (v0.40) drops a
// publication without one that comes while a client subscribes, after
// the client was told it is subscribed, where Centrifugo v6.9.1 delivers
// it (TestPublishRightAfterSubscribing, TestPublicationsHaveAPosition).
// The channel's stream meta is kept as for the channels with history
// (centrifuge's HistoryMetaTTL, 30 days). Nothing reads these publications back: History answers
// ErrNotAvailable for such channels, and their subscriptions do not
// recover.
const positionTTL = time.Second

// Publish publishes each publication, in order, with its idempotency key
// (a key published within 5 minutes is not published again on that
// channel) and its origin as the tag "origin"; a private channel's go to
// its history (the others' to a stream of one, see positionTTL). A channel the Instant does not declare fails with
// seam.ErrUnknownChannel. It returns the indices of the publications
// that failed and the first error; when ctx ends, those not yet published
// fail with ctx's error.
func (s *Server) Publish(ctx context.Context, pubs []seam.Publication) (failed []int, err error) {
	p := s.policy.Load()
	if p == nil {
		return allIndices(len(pubs)), errNotBound
	}
	for k, pub := range pubs {
		if e := s.publish(ctx, p, pub); e != nil {
			failed = append(failed, k)
			if err == nil {
				err = e
			}
		}
	}
	return failed, err
}

func (s *Server) publish(ctx context.Context, p *seam.Policy, pub seam.Publication) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch, known := p.Channel(pub.Channel)
	if !known {
		return fmt.Errorf("embedded: publish to %q: %w", pub.Channel, seam.ErrUnknownChannel)
	}
	opts := make([]centrifuge.PublishOption, 0, 3)
	if pub.IdempotencyKey != "" {
		opts = append(opts, centrifuge.WithIdempotencyKey(pub.IdempotencyKey))
	}
	if pub.Origin != "" {
		opts = append(opts, centrifuge.WithTags(map[string]string{"origin": pub.Origin}))
	}
	if ch.Private && s.opts.HistorySize > 0 {
		opts = append(opts, centrifuge.WithHistory(s.opts.HistorySize, s.opts.HistoryTTL))
	} else {
		opts = append(opts, centrifuge.WithHistory(1, positionTTL))
	}
	if _, err := s.node.Publish(pub.Channel, pub.Data, opts...); err != nil {
		return fmt.Errorf("embedded: publish to %q: %w", pub.Channel, err)
	}
	return nil
}

func allIndices(n int) []int {
	out := make([]int, n)
	for k := range out {
		out[k] = k
	}
	return out
}

// Unsubscribe ends user's subscriptions to channels on every connection
// of theirs, in every process (on Redis, the unsubscribe crosses to the
// other processes). The clients are told (unsubscribe code 2000, as
// Centrifugo's server API sends) and do not subscribe again by
// themselves.
func (s *Server) Unsubscribe(ctx context.Context, user string, channels []string) error {
	for _, ch := range channels {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.node.Unsubscribe(user, ch); err != nil {
			return fmt.Errorf("embedded: unsubscribe from %q: %w", ch, err)
		}
	}
	return nil
}

// Disconnect closes every connection of user in every process with code
// 4001 ("session changed"): the clients reconnect, asking the routes for
// new tokens, and so come back as whoever their session now holds.
func (s *Server) Disconnect(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.node.Disconnect(user, centrifuge.WithCustomDisconnect(reconnectDisconnect)); err != nil {
		return fmt.Errorf("embedded: disconnect: %w", err)
	}
	return nil
}

// History returns the data of up to limit of channel's latest
// publications, oldest first. A channel that keeps no history (a public
// one, or any with Options.HistorySize -1) is seam.ErrNotAvailable, as
// Centrifugo answers 108; one the Instant does not declare is
// seam.ErrUnknownChannel.
func (s *Server) History(ctx context.Context, channel string, limit int) ([]json.RawMessage, error) {
	p := s.policy.Load()
	if p == nil {
		return nil, errNotBound
	}
	ch, known := p.Channel(channel)
	switch {
	case !known:
		return nil, fmt.Errorf("embedded: history of %q: %w", channel, seam.ErrUnknownChannel)
	case !ch.Private || s.opts.HistorySize <= 0:
		return nil, fmt.Errorf("embedded: history of %q: %w: it keeps no history", channel, seam.ErrNotAvailable)
	case limit <= 0:
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := s.node.History(channel, centrifuge.WithLimit(limit), centrifuge.WithReverse(true))
	if err != nil {
		return nil, fmt.Errorf("embedded: history of %q: %w", channel, err)
	}
	out := make([]json.RawMessage, len(res.Publications))
	for k, pub := range res.Publications {
		out[len(out)-1-k] = json.RawMessage(pub.Data) // newest first: turned around
	}
	return out, nil
}

// Presence returns each channel's subscriptions, in the order of
// channels, each with its user and the info its token carried, sorted by
// user then client. A channel that keeps no presence (a public one, or
// any with Options.NoPresence) is seam.ErrNotAvailable; one the Instant
// does not declare is seam.ErrUnknownChannel.
func (s *Server) Presence(ctx context.Context, channels []string) ([][]seam.Client, error) {
	p := s.policy.Load()
	if p == nil {
		return nil, errNotBound
	}
	out := make([][]seam.Client, len(channels))
	for k, channel := range channels {
		ch, known := p.Channel(channel)
		switch {
		case !known:
			return nil, fmt.Errorf("embedded: presence of %q: %w", channel, seam.ErrUnknownChannel)
		case !ch.Private || s.opts.NoPresence:
			return nil, fmt.Errorf("embedded: presence of %q: %w: it keeps no presence", channel, seam.ErrNotAvailable)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := s.node.Presence(channel)
		if err != nil {
			return nil, fmt.Errorf("embedded: presence of %q: %w", channel, err)
		}
		clients := make([]seam.Client, 0, len(res.Presence))
		for _, info := range res.Presence {
			clients = append(clients, seam.Client{ID: info.ClientID, User: info.UserID, Info: json.RawMessage(info.ChanInfo)})
		}
		slices.SortFunc(clients, func(a, b seam.Client) int {
			return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.ID, b.ID))
		})
		out[k] = clients
	}
	return out, nil
}

// applyCommand applies one command of Centrifugo's server API, as the
// outbox holds them: "publish" {channel, data, idempotency_key, tags} or
// "broadcast" {channels, data, idempotency_key, tags}, through Publish.
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
	var channels []string
	switch method {
	case "publish":
		channels = []string{cmd.Channel}
	case "broadcast":
		channels = cmd.Channels
	default:
		return fmt.Errorf("%w: method %q is neither publish nor broadcast", errOutboxInvalid, method)
	}
	if len(cmd.Data) == 0 || len(channels) == 0 || slices.Contains(channels, "") {
		return fmt.Errorf("%w: %s: no data or no channel", errOutboxInvalid, method)
	}
	// A channel this server does not know (a row of another version of
	// the app, in a rolling deploy) is left out, logged; the rest is
	// published, and any failure of theirs keeps the row for a retry (the
	// idempotency key keeps what went out from going out twice).
	pubs := make([]seam.Publication, 0, len(channels))
	var unknown []string
	p := s.policy.Load()
	for _, ch := range channels {
		if p != nil {
			if _, known := p.Channel(ch); !known {
				unknown = append(unknown, ch)
				continue
			}
		}
		pubs = append(pubs, seam.Publication{Channel: ch, Data: cmd.Data, IdempotencyKey: cmd.IdempotencyKey, Origin: cmd.Tags["origin"]})
	}
	if len(unknown) > 0 {
		s.logger.Warn("embedded: outbox: channels of namespaces the Instant does not declare left out", "method", method, "channels", len(unknown))
	}
	if len(pubs) == 0 {
		return fmt.Errorf("%w: %s: %w", errOutboxInvalid, method, seam.ErrUnknownChannel)
	}
	_, err := s.Publish(ctx, pubs)
	if errors.Is(err, seam.ErrUnknownChannel) {
		return fmt.Errorf("embedded: %s: %s", method, err.Error()) // not the row's fault alone: kept
	}
	return err
}
