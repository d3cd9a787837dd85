package instant

// Unit tests of how a replica follows the access log, against a stand-in
// for the history call (reauth_test.go runs the real Centrifugo).

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeLog answers the history calls of the access records from memory.
type fakeLog struct {
	apiClient // nil: any other call panics
	mu        sync.Mutex
	epoch     string
	pubs      []streamPub                // the log, offsets from first
	records   map[string]json.RawMessage // per record channel
	fail      error
	calls     int
}

func (f *fakeLog) historyPage(_ context.Context, channel string, limit int, since *streamPosition, _ bool) ([]streamPub, streamPosition, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return nil, streamPosition{}, f.fail
	}
	if rec, ok := f.records[channel]; ok {
		return []streamPub{{offset: 1, data: rec}}, streamPosition{offset: 1, epoch: "r"}, nil
	}
	if f.records != nil && channel != "$site_access_log:all" {
		return nil, streamPosition{epoch: "r"}, nil
	}
	top := streamPosition{epoch: f.epoch}
	if len(f.pubs) > 0 {
		top.offset = f.pubs[len(f.pubs)-1].offset
	}
	var out []streamPub
	for _, p := range f.pubs {
		if since != nil && p.offset > since.offset && len(out) < limit {
			out = append(out, p)
		}
	}
	return out, top, nil
}

func (f *fakeLog) add(offset uint64, u User, at int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pubs = append(f.pubs, streamPub{offset: offset, data: recordBytes(u, at)})
}

func recordBytes(u User, at int64) json.RawMessage {
	raw, _ := json.Marshal(u)
	out, _ := json.Marshal(recordJSON{User: raw, At: at})
	return out
}

func fakeLogInstant(t testing.TB) (*Instant, *fakeLog) {
	inst, err := New(Config{TokenSecret: "test-secret-0123456789abcdef0123456789", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLog{epoch: "e1", records: map[string]json.RawMessage{}}
	inst.nodes = []apiClient{f}
	return inst, f
}

// nextPoll makes the replica's last look at the log old.
func nextPoll(i *Instant) {
	i.access.mu.Lock()
	i.access.polled = time.Now().Add(-2 * accessPollEvery)
	i.access.mu.Unlock()
}

func staffOf(i *Instant, id string, loginAt int64) bool {
	return i.reauthorized(context.Background(), &User{ID: id, Staff: true}, loginAt).Staff
}

func TestAccessLogFollowed(t *testing.T) {
	i, f := fakeLogInstant(t)
	f.add(1, User{ID: "x"}, 5) // before the replica's first look: read from the record channel
	f.records[i.accessChannel("x")] = recordBytes(User{ID: "x"}, 5)
	if staffOf(i, "x", 1) {
		t.Fatal("a record newer than the login did not apply")
	}
	if !staffOf(i, "x", 9) {
		t.Fatal("a record older than the login applied")
	}
	if !staffOf(i, "y", 1) {
		t.Fatal("a user with no record lost their roles")
	}

	// The log goes on: y is demoted, x promoted back; read at the next look.
	f.add(2, User{ID: "y"}, 10)
	f.add(3, User{ID: "x", Staff: true}, 11)
	if staffOf(i, "y", 1) != true {
		t.Fatal("the log was read before a second passed")
	}
	nextPoll(i)
	if staffOf(i, "y", 1) || !staffOf(i, "x", 1) {
		t.Fatal("the log's changes were not applied")
	}
	calls := f.calls
	for range 100 {
		staffOf(i, "y", 1)
	}
	if f.calls != calls {
		t.Errorf("%d calls for 100 requests within a second, want none", f.calls-calls)
	}
}

func TestAccessLogGapsForget(t *testing.T) {
	for name, change := range map[string]func(f *fakeLog){
		"gap":   func(f *fakeLog) { f.add(5, User{ID: "z"}, 20) }, // 2..4 lost
		"epoch": func(f *fakeLog) { f.epoch = "e2" },
		"cut": func(f *fakeLog) { // more than a look reads
			for k := range accessLogSize + 1 {
				f.add(uint64(2+k), User{ID: "n" + strconv.Itoa(k)}, 20)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			i, f := fakeLogInstant(t)
			f.add(1, User{ID: "a"}, 1)
			staffOf(i, "x", 1) // the first look
			if len(i.access.users) != 1 {
				t.Fatalf("%d users known", len(i.access.users))
			}
			change(f)
			nextPoll(i)
			i.pollAccess(context.Background())
			if n := len(i.access.users); n != 0 {
				t.Errorf("%d users still known after the %s", n, name)
			}
		})
	}
}

func TestAccessReadFailures(t *testing.T) {
	i, f := fakeLogInstant(t)
	f.records[i.accessChannel("x")] = recordBytes(User{ID: "x"}, 5)
	if staffOf(i, "x", 1) {
		t.Fatal("record not applied")
	}
	f.mu.Lock()
	f.fail = &PublishError{Op: "history", Err: &url.Error{Op: "Post", Err: errors.New("refused")}}
	f.mu.Unlock()
	nextPoll(i)
	if staffOf(i, "x", 1) {
		t.Error("a failed look forgot what the replica knew")
	}
	if !i.access.down {
		t.Fatal("a failed look did not mark Centrifugo down")
	}
	// While down, looks go on in the background: a request does not wait.
	nextPoll(i)
	start := time.Now()
	staffOf(i, "w", 1)
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("a request waited %v while Centrifugo is down", d)
	}
	waitLook(i)
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	nextPoll(i)
	staffOf(i, "w", 1) // starts a look in the background
	waitLook(i)
	if i.access.down {
		t.Error("still down after a look succeeded")
	}
}

func waitLook(i *Instant) {
	i.access.mu.Lock()
	wait := i.access.polling
	i.access.mu.Unlock()
	if wait != nil {
		<-wait
	}
}

func TestAccessRecordsOnlyGetNewer(t *testing.T) {
	var a accessCache
	now := time.Now().Add(time.Hour)
	newer := &accessRecord{user: &User{ID: "x"}, at: 10}
	a.store("x", newer, now)
	a.store("x", &accessRecord{user: &User{ID: "x", Staff: true}, at: 9}, now)
	a.store("x", nil, now)
	if a.users["x"].rec != newer {
		t.Errorf("record %+v, want the newer one kept", a.users["x"].rec)
	}
}

func TestLoginAtRoundTrip(t *testing.T) {
	raw, _ := json.Marshal(User{ID: "1", Username: "a"})
	now := time.Unix(1700000000, 123)
	got := withLoginAt(raw, now)
	if at := loginAt(string(got)); at != now.UnixNano() {
		t.Errorf("login_at %d, want %d (%s)", at, now.UnixNano(), got)
	}
	if u := decodeUser(string(got)); u == nil || u.ID != "1" || u.Username != "a" {
		t.Errorf("user %+v from %s", u, got)
	}
	if at := loginAt(string(raw)); at != 0 {
		t.Errorf("a value without login_at: %d", at)
	}
	if got := withLoginAt([]byte("{}"), now); !json.Valid(got) {
		t.Errorf("{} became %s", got)
	}
}

// BenchmarkReauthorizedLookup is what a Login session's request adds: the
// look-up of the user's record in a replica that knows it.
func BenchmarkReauthorizedLookup(b *testing.B) {
	i, _ := fakeLogInstant(b)
	u := &User{ID: "x", Staff: true}
	i.reauthorized(context.Background(), u, 1)
	i.access.polled = time.Now().Add(time.Hour) // no look at the log within the loop
	b.ReportAllocs()
	for b.Loop() {
		if i.reauthorized(context.Background(), u, 1) != u {
			b.Fatal("wrong user")
		}
	}
}
