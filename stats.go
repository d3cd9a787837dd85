package instant

import "sync/atomic"

// Stats are counters of the calls to Centrifugo, totals since New.
type Stats struct {
	// Published counts events published in full (of a partly failed batch too).
	Published uint64 `json:"published"`
	// Retried counts attempts made again on the same node, after a backoff.
	Retried uint64 `json:"retried"`
	// FailedOver counts moves to the next node of APIURLs.
	FailedOver uint64 `json:"failed_over"`
	// Failed counts calls that returned an error in the end.
	Failed uint64 `json:"failed"`
	// NodesDown counts nodes marked down now (refused or silent, no probe answered since, one every
	// 500ms at most): calls skip them, and fail at once with ErrUnreachable while all are down.
	NodesDown int `json:"nodes_down"`
	// OutboxWritten counts events written to the outbox (BroadcastTx).
	OutboxWritten uint64 `json:"outbox_written"`
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
