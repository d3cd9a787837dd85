package instant

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkBroadcastUsers measures what Broadcast does before it sends an
// event to many users' personal channels (Event.Users): listing the
// channels once each, checking them, and encoding one payload each
// (prepareEvent, which BroadcastBatch and BroadcastTx share). The time per
// user must stay flat from 1k to 64k users: it was quadratic (32k users
// took 1.27 s, ×3.8 per doubling).
func BenchmarkBroadcastUsers(b *testing.B) {
	inst, err := New(Config{APIURL: "http://127.0.0.1:1/api", TokenSecret: "bench-secret-0123456789abcdef0123456789"})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for _, n := range []int{1 << 10, 8 << 10, 64 << 10} {
		users := make([]string, n)
		for k := range users {
			users[k] = strconv.Itoa(1_000_000 + k)
		}
		b.Run(strconv.Itoa(n>>10)+"k", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := Event{Users: users, Message: "order shipped", EventClass: "order", Data: map[string]int{"order": 42}}
				channels, _, err := inst.prepareEvent(&ev, now)
				if err != nil || len(channels) != n {
					b.Fatalf("%d channels, %v", len(channels), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/user")
		})
	}
}

// TestBroadcastUsersIsLinear: listing the personal channels of Event.Users
// was quadratic (each channel looked for in every one kept before it:
// 32,768 users took 1.27 s before sending, ×3.8 per doubling). For 32,000
// users it must now cost about what the least any listing does costs:
// naming and checking each user's channel once. Both run on the same
// users, in turns, on one thread whose CPU time is taken, the fastest of
// several runs each: the collector, the caches, the race detector and the
// machine's load weigh on both alike. Linear listing costs 1 to 3 times
// that floor; the quadratic one cost over 100 times.
func TestBroadcastUsersIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("lists 32,000 users several times")
	}
	inst, err := New(Config{APIURL: "http://127.0.0.1:1/api", TokenSecret: "test-secret-0123456789abcdef0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 32_000
	users := make([]string, n)
	for k := range users {
		users[k] = strconv.Itoa(1_000_000 + k)
	}
	floor := func() {
		channels := make([]string, 0, n)
		for _, id := range users {
			ch := inst.UserChannel(id)
			if validChannel(ch) != nil || inst.privateTwin(ch) != "" {
				t.Fatalf("user %s: channel %q", id, ch)
			}
			channels = append(channels, ch)
		}
		if len(channels) != n {
			t.Fatalf("%d channels", len(channels))
		}
	}
	list := func() {
		ev := Event{Users: users, Message: "m"}
		if channels, err := inst.eventChannels(&ev); err != nil || len(channels) != n {
			t.Fatalf("%d channels, %v", len(channels), err)
		}
	}
	var bestFloor, bestList time.Duration
	for range 5 {
		if d := threadTime(floor); bestFloor == 0 || d < bestFloor {
			bestFloor = d
		}
		if d := threadTime(list); bestList == 0 || d < bestList {
			bestList = d
		}
		if bestList < 10*bestFloor {
			t.Logf("%d users listed in %v, naming and checking their channels %v: ×%.1f", n, bestList, bestFloor, float64(bestList)/float64(bestFloor))
			return
		}
	}
	t.Errorf("%d users listed in %v, more than 10 times the %v of naming and checking their channels: quadratic rather than linear", n, bestList, bestFloor)
}

// wallTime returns how long f took.
func wallTime(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}
