package instant

import (
	"context"
	"encoding/json"
)

// Test-only access for the black-box tests (package instant_test) to what
// is no longer exported: built only by go test, never part of the API.

var (
	ValidChannel  = validChannel
	IsPrivate     = isPrivate
	ErrLoadUser   = errLoadUser
	ErrRuleFailed = errRuleFailed
)

// PresenceStats is presenceCount.
type PresenceStats = presenceCount

func (i *Instant) ProxyKey() string { return i.proxyKey }

func (i *Instant) SiteName() string { return i.siteName() }

func (i *Instant) ChannelsFor(u *User) []Channel { return i.channelsFor(u) }

func (i *Instant) ChannelsAt(l Level) []string { return i.channelsAt(l) }

func (i *Instant) Unsubscribe(ctx context.Context, channel, userID string) error {
	return i.unsubscribe(ctx, channel, userID)
}

func (i *Instant) History(ctx context.Context, channel string, limit int) ([]json.RawMessage, error) {
	return i.history(ctx, channel, limit)
}

func (i *Instant) PresenceStats(ctx context.Context, channel string) (PresenceStats, error) {
	return i.presenceStats(ctx, channel)
}

// PublishBytes sends already-encoded payloads through the request
// Broadcast and BroadcastBatch send (call, with its retries, and the
// hand-written publish), for bench_test.go to time it beside a bare POST
// of the same bytes. Test builds only.
func (i *Instant) PublishBytes(ctx context.Context, channels []string, payloads [][]byte, keys []string) error {
	return i.call(ctx, func(ctx context.Context, api apiClient) error { return api.publish(ctx, channels, payloads, keys, nil) })
}
