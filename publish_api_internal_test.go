package instant

import "context"

// PublishBytes sends already-encoded payloads through the request
// Broadcast and BroadcastBatch send (call, with its retries, and the
// hand-written publish), for bench_test.go to time it beside a bare POST
// of the same bytes. Test builds only.
func (i *Instant) PublishBytes(ctx context.Context, channels []string, payloads [][]byte, keys []string) error {
	return i.call(ctx, func(ctx context.Context, api apiClient) error { return api.publish(ctx, channels, payloads, keys, nil) })
}
