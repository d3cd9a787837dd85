package main

import (
	"container/list"
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// Every login attempt that reaches bcrypt costs about 50 ms of CPU, so
// the site throttles them: per account name, a few failures a minute (a
// password cannot be guessed), and per client address, a bounded number
// of attempts a minute (one client cannot keep the CPU busy). An attempt
// over either limit gets 429 with Retry-After, and no bcrypt.
const (
	// loginWindow is the length of a throttle window. A window starts
	// with the first attempt counted for its key.
	loginWindow = time.Minute
	// maxFailuresPerAccount is how many failed logins an account name
	// may have in a window; the next attempt waits for the window to end,
	// whatever its password. Names that are no account count the same,
	// so that a 429 does not tell which accounts exist.
	maxFailuresPerAccount = 5
	// maxAttemptsPerAddress is how many logins, failed or not, one client
	// address may try in a window.
	maxAttemptsPerAddress = 30
	// maxThrottleKeys bounds each table (account names, addresses), so
	// that a flood of distinct names or addresses cannot fill memory.
	maxThrottleKeys = 10000
)

// loginThrottle counts login attempts per account name and per client
// address. It is safe for concurrent use.
type loginThrottle struct {
	mu        sync.Mutex
	now       func() time.Time
	accounts  *windowCounter // failed logins per account name
	addresses *windowCounter // attempts per client address
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{
		now:       time.Now,
		accounts:  newWindowCounter(maxFailuresPerAccount, loginWindow, maxThrottleKeys),
		addresses: newWindowCounter(maxAttemptsPerAddress, loginWindow, maxThrottleKeys),
	}
}

// begin reports whether an attempt to log in as name from the client
// address addr may check the password. If it may, begin counts the
// attempt against the address, and against the account as a failure
// until succeeded says otherwise (so that concurrent attempts cannot pass
// the limit together). If it may not, begin counts nothing and returns
// how long until the attempt may be made.
func (t *loginThrottle) begin(name, addr string) (wait time.Duration, ok bool) {
	account := accountKey(name)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	wait = max(t.accounts.wait(account, now), t.addresses.wait(addr, now))
	if wait > 0 {
		return wait, false
	}
	t.accounts.add(account, now)
	t.addresses.add(addr, now)
	return 0, true
}

// succeeded takes back the failure that begin counted against name: the
// attempt logged in. The attempt still counts against its address.
func (t *loginThrottle) succeeded(name string) {
	account := accountKey(name)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accounts.undo(account, t.now())
}

// accountKey is the key of an account name in the throttle: a digest,
// so that every key is small, however long a name is sent.
func accountKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return string(sum[:])
}

// clientAddress is the throttle's key for the client that sent a request
// whose RemoteAddr is remoteAddr: its IP address, or for IPv6 its /64
// network (one host usually has a whole /64). It is the address of the
// TCP peer, never a header such as X-Forwarded-For that anyone can send:
// the demo serves browsers directly. Behind a reverse proxy, use the
// address the proxy reports (gin's SetTrustedProxies, then ClientIP).
func clientAddress(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}

// windowCounter counts events per key in fixed windows: a key's window
// starts with its first event and lasts window, and a key with limit
// events in its window is blocked until the window ends. It keeps at
// most max keys: when full, it forgets the keys whose window has ended,
// then the key whose window started first. It is not safe for concurrent
// use; the times given to it must not go backwards.
type windowCounter struct {
	limit, max int
	window     time.Duration
	keys       map[string]*list.Element // values are *windowCount
	order      *list.List               // the windows, oldest first
}

type windowCount struct {
	key   string
	start time.Time
	n     int
}

func newWindowCounter(limit int, window time.Duration, maxKeys int) *windowCounter {
	return &windowCounter{limit: limit, max: maxKeys, window: window, keys: map[string]*list.Element{}, order: list.New()}
}

// current is key's window if it has not ended, or nil.
func (w *windowCounter) current(key string, now time.Time) *windowCount {
	e, ok := w.keys[key]
	if !ok {
		return nil
	}
	c := e.Value.(*windowCount)
	if now.Sub(c.start) >= w.window {
		w.order.Remove(e)
		delete(w.keys, key)
		return nil
	}
	return c
}

// wait is how long key stays blocked: 0 when it may have another event.
func (w *windowCounter) wait(key string, now time.Time) time.Duration {
	c := w.current(key, now)
	if c == nil || c.n < w.limit {
		return 0
	}
	return c.start.Add(w.window).Sub(now)
}

// add counts one event of key.
func (w *windowCounter) add(key string, now time.Time) {
	if c := w.current(key, now); c != nil {
		c.n++
		return
	}
	// Forget the windows that have ended, then, if still full, the oldest.
	for e := w.order.Front(); e != nil; e = w.order.Front() {
		c := e.Value.(*windowCount)
		if w.order.Len() < w.max && now.Sub(c.start) < w.window {
			break
		}
		w.order.Remove(e)
		delete(w.keys, c.key)
	}
	w.keys[key] = w.order.PushBack(&windowCount{key: key, start: now, n: 1})
}

// undo takes back one event of key, if its window has not ended.
func (w *windowCounter) undo(key string, now time.Time) {
	if c := w.current(key, now); c != nil && c.n > 0 {
		c.n--
	}
}

// size is the number of keys kept.
func (w *windowCounter) size() int { return len(w.keys) }
