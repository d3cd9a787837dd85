package instant

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// BenchmarkPrepareEvent times what Broadcast does before its request: the
// event's checks (its channels, the UTF-8 of its text, its Data's
// validity and depth) and its encoding, for a small event as
// BenchmarkBroadcast sends it, and for 16 KiB of raw Data, where the
// one-pass check of checkJSON is a cost of its own (checkJSON16K: that
// check alone).
func BenchmarkPrepareEvent(b *testing.B) {
	inst, err := New(Config{TokenSecret: strings.Repeat("s", 32)})
	if err != nil {
		b.Fatal(err)
	}
	row := `{"id":1234,"name":"Ren\u00e9 \u2603","tags":["a","b"],"ok":true},`
	raw := json.RawMessage("[" + strings.Repeat(row, 16<<10/len(row)) + "1]")
	now := time.Now()
	for name, ev := range map[string]Event{
		"small":  {Channel: "site_public", Message: "bench 1234", Data: map[string]int{"k": 1234}},
		"raw16K": {Channel: "site_public", Message: "bench 1234", Data: raw},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := ev
				if _, _, err := inst.prepareEvent(&ev, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("checkJSON16K", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if err := checkJSON(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
