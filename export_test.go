package instant

import (
	"context"
	"encoding/json"
)

// Test-only access for the black-box tests (package instant_test) to
// unexported names (SiteName, ChannelsFor, ...), and the calls to
// Centrifugo only the tests make (Unsubscribe, History, PresenceStats: to
// watch what the library did; PublishBytes: to time the publish request).
// Built only by go test, never part of the API.

var (
	ValidChannel  = validChannel
	IsPrivate     = isPrivate
	ErrLoadUser   = errLoadUser
	ErrRuleFailed = errRuleFailed
)

// PresenceStats is presenceCount.
type PresenceStats = presenceCount

func (i *Instant) ProxyKey() string { return i.proxyKey }

func (i *Instant) ChannelsFor(u *User) []Channel { return i.channelsFor(u) }

func (i *Instant) ChannelsAt(l Level) []string { return i.channelsAt(l) }

// PublishBytes sends already-encoded payloads through the request
// Broadcast and BroadcastBatch send (call, with its retries, and the
// hand-written publish), for bench_test.go to time it beside a bare POST
// of the same bytes. Test builds only.
func (i *Instant) PublishBytes(ctx context.Context, channels []string, payloads [][]byte, keys []string) error {
	return i.call(ctx, func(ctx context.Context, api apiClient) error { return api.publish(ctx, channels, payloads, keys, nil) })
}

// Unsubscribe removes user from channel on every connection of theirs, for
// instance after the user lost the right to read it.
func (i *Instant) Unsubscribe(ctx context.Context, channel, userID string) error {
	if i == nil {
		return ErrNotInstalled
	}
	if err := validChannel(channel); err != nil {
		return err
	}
	return i.call(ctx, func(ctx context.Context, api apiClient) error { return api.unsubscribe(ctx, channel, userID) })
}

// History returns up to limit of channel's latest publications (the event
// payloads, newest last), when the channel keeps history.
func (i *Instant) History(ctx context.Context, channel string, limit int) ([]json.RawMessage, error) {
	if i == nil {
		return nil, ErrNotInstalled
	}
	if err := validChannel(channel); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []json.RawMessage
	err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
		out, err = api.history(ctx, channel, limit)
		return err
	})
	return out, err
}

// PresenceStats counts the subscriptions to channel and their distinct
// users (anonymous subscriptions count as one user with an empty ID). The
// channel must have presence on.
func (i *Instant) PresenceStats(ctx context.Context, channel string) (PresenceStats, error) {
	if i == nil {
		return presenceCount{}, ErrNotInstalled
	}
	if err := validChannel(channel); err != nil {
		return presenceCount{}, err
	}
	var stats presenceCount
	err := i.call(ctx, func(ctx context.Context, api apiClient) (err error) {
		stats, err = api.presenceStats(ctx, channel)
		return err
	})
	return stats, err
}

// SiteName is the name every event payload carries as "site".
func (i *Instant) SiteName() string {
	if i == nil {
		return ""
	}
	return i.cfg.SiteName
}
