package instant

import (
	"sync"
	"sync/atomic"
)

// Stats are counters of the calls to Centrifugo, for an app to export.
// Each is a total since New.
type Stats struct {
	// Published counts events Centrifugo published in full, every
	// publication of theirs (Broadcast, BroadcastBatch: the events of a
	// partly failed batch that went out count too).
	Published uint64 `json:"published"`
	// Retried counts attempts made again after a transport failure or a
	// 408, 429 or 5xx answer, on the same node after a backoff.
	Retried uint64 `json:"retried"`
	// FailedOver counts moves to the next node of APIURLs after one did not
	// answer, or was skipped as down (see NodesDown).
	FailedOver uint64 `json:"failed_over"`
	// Failed counts calls that returned an error in the end, those that
	// failed at once while every node was down included.
	Failed uint64 `json:"failed"`
	// NodesDown is how many nodes of APIURL and APIURLs are marked down
	// now: their last attempt was refused (nothing listening: a connection
	// refused, no route to the host) or went unanswered until its time ran
	// out (a node that hangs), and no probe has had an answer since. Calls
	// skip a node marked down; one probe at a time (Centrifugo's info
	// call, at most every 500ms, its own timeout PublishTimeout but at
	// most 1s) asks it whether it answers again. While every node is down,
	// a call fails at once with ErrUnreachable. 0 when all answer.
	NodesDown int `json:"nodes_down"`
	// OutboxWritten counts events written to the outbox (BroadcastTx).
	OutboxWritten uint64 `json:"outbox_written"`
}

type counters struct {
	published, retried, failedOver, failed, outboxWritten atomic.Uint64

	nodeOnce sync.Once
	nodes    []nodeState // what the calls know of each node (nodes.go)
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
