package instant

import "sync/atomic"

// Stats are counters of the calls to Centrifugo, totals since New.
type Stats struct {
	Published  uint64 `json:"published"`   // events published in full (of a partly failed batch too)
	Retried    uint64 `json:"retried"`     // attempts made again on the same node, after a backoff
	FailedOver uint64 `json:"failed_over"` // moves to the next node of APIURLs
	Failed     uint64 `json:"failed"`      // calls that returned an error in the end
	// NodesDown counts nodes marked down now (refused or silent, no probe answered since, one every
	// 500ms at most): calls skip them, and fail at once with ErrUnreachable while all are down.
	NodesDown     int    `json:"nodes_down"`
	OutboxWritten uint64 `json:"outbox_written"` // events written to the outbox (BroadcastTx)
}

type counters struct {
	published, retried, failedOver, failed, outboxWritten atomic.Uint64
}

// Stats returns the counters so far. Safe for concurrent use.
func (i *Instant) Stats() Stats {
	if i == nil {
		return Stats{}
	}
	return Stats{
		Published:     i.stats.published.Load(),
		Retried:       i.stats.retried.Load(),
		FailedOver:    i.stats.failedOver.Load(),
		Failed:        i.stats.failed.Load(),
		OutboxWritten: i.stats.outboxWritten.Load(),
		NodesDown:     i.nodesDown(),
	}
}
