//go:build load

package embedded_test

// TestLoadEmbeddedVsCentrifugo is `make load-embedded`: issue 21's
// measures, each taken of the embedded server and of Centrifugo v6.9.1 on
// the same work in the same run, the two alternating so that what the
// shared machine does lands on both alike. Real centrifuge-go clients,
// everything on 127.0.0.1, every loop bounded; it stops what it started.
//
// The apps are processes of their own, so that a server's CPU time and
// memory can be read from /proc as Centrifugo's are: this test binary
// started again (TestLoadChild, with LOAD_CHILD set), serving a Gin app
// with the core's routes and a few load routes, on the embedded server
// ("embedded"), publishing to a Centrifugo ("centrifugo"), or on a server
// that drops every publication ("null": what Broadcast costs the app
// itself, the floor the embedded server's CPU is counted above). The
// clients live in this process and are counted in neither.
//
// LOAD_OUT names the Markdown report to write. LOAD_CONNS (1000), LOAD_PAGES
// (1000), LOAD_EVENTS (2000, the latency phase) and LOAD_BURST (5000, the
// CPU phase, three bursts a server) scale it down.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/cookie"
	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/internal/centrifugotest"
	"github.com/gin-instant/instant/internal/seam"
)

const (
	loadSecret = "load-secret-0123456789abcdef0123456789"
	loadAPIKey = "load-api-key-0123456789abcdef"
	// loadFeed is a public channel in a namespace of public channels
	// only: neither server keeps presence or history there, so fan-out to
	// it is the same work on both.
	loadFeed = "feed:all"
)

var loadCookieKey = []byte("load-cookie-key-0123456789abcdef")

// loadConfig is the Instant's config in every process of the run (the
// tokens this process signs verify in the apps'): users are whatever id
// the session holds. The API key is set where Centrifugo is the server
// (loadCentrifugoConfig, the app on Centrifugo).
func loadConfig() instant.Config {
	return instant.Config{
		TokenSecret:    loadSecret,
		PublicChannels: []string{"site_public", loadFeed},
		LoadUser: func(c *gin.Context) (*instant.User, error) {
			id, _ := sessions.Default(c).Get("uid").(string)
			if id == "" {
				return nil, nil
			}
			return &instant.User{ID: id, Username: "user" + id}, nil
		},
	}
}

// loadInstant is an Instant of cfg with the rule "$room:{id}" that any
// logged-in user may read (their nick as info).
func loadInstant(cfg instant.Config) (*instant.Instant, error) {
	inst, err := instant.New(cfg)
	if err != nil {
		return nil, err
	}
	err = inst.Authorize("$room:{id}", func(_ *gin.Context, u *instant.User, _ map[string]string) (bool, any) {
		if u == nil {
			return false, nil
		}
		return true, map[string]string{"nick": u.Username}
	})
	return inst, err
}

// loadRooms are page k's three rule channels: rooms of 10, 20 and 50
// pages (whose members receive each other's joins and leaves).
func loadRooms(k int) []string {
	return []string{"$room:" + strconv.Itoa(k%100), "$room:" + strconv.Itoa(100+k%50), "$room:" + strconv.Itoa(200+k%20)}
}

// loadCentrifugoConfig is the config the Instant of the app on
// Centrifugo writes for it.
func loadCentrifugoConfig(o instant.CentrifugoOptions) ([]byte, error) {
	cfg := loadConfig()
	cfg.APIKey = loadAPIKey
	inst, err := loadInstant(cfg)
	if err != nil {
		return nil, err
	}
	return inst.CentrifugoConfig(o)
}

// ---- the app process ----

// TestLoadChild is no test of its own: it is the app process
// TestLoadEmbeddedVsCentrifugo starts (LOAD_CHILD = embedded, centrifugo
// or null; LOAD_CHILD_PORT; LOAD_CHILD_REDIS for the embedded server's
// Redis; LOAD_CHILD_API for Centrifugo's API). It serves until SIGTERM
// (a deploy: the listener closes, then the server, which tells its
// clients to reconnect) or until its standard input closes.
func TestLoadChild(t *testing.T) {
	mode := os.Getenv("LOAD_CHILD")
	if mode == "" {
		t.Skip("the app process of TestLoadEmbeddedVsCentrifugo; it runs when that test starts it")
	}
	if err := runLoadChild(mode); err != nil {
		t.Fatal(err)
	}
}

func runLoadChild(mode string) error {
	gin.SetMode(gin.ReleaseMode)
	cfg := loadConfig()
	var srv *embedded.Server
	switch mode {
	case "embedded":
		var err error
		if srv, err = embedded.New(embedded.Options{RedisAddress: os.Getenv("LOAD_CHILD_REDIS")}); err != nil {
			return err
		}
		cfg.Server = srv
	case "centrifugo":
		cfg.APIURL, cfg.APIKey = os.Getenv("LOAD_CHILD_API"), loadAPIKey
	case "null":
		cfg.Server = loadNullServer{}
	default:
		return fmt.Errorf("LOAD_CHILD=%q", mode)
	}
	inst, err := loadInstant(cfg)
	if err != nil {
		return err
	}
	r := gin.New()
	r.Use(sessions.Sessions("app", cookie.NewStore(loadCookieKey)))
	r.Use(inst.Session())
	inst.Register(r.Group("/instant"))
	r.POST("/load/login", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("uid", c.Query("id"))
		_ = s.Save()
		c.Status(http.StatusNoContent)
	})
	// broadcast: one event, its message the tag and the time Broadcast
	// was called (ns since the epoch), as an app's handler sends one.
	r.POST("/load/broadcast", func(c *gin.Context) {
		ch, tag := c.Query("channel"), c.Query("tag")
		start := time.Now()
		err := inst.Broadcast(c.Request.Context(), instant.Event{Channel: ch, Message: tag + " " + strconv.FormatInt(start.UnixNano(), 10)})
		took := time.Since(start)
		if err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"ns": took.Nanoseconds(), "stamp": start.UnixNano()})
	})
	// burst: n events one after the other, as fast as Broadcast returns.
	r.POST("/load/burst", func(c *gin.Context) {
		ch, tag := c.Query("channel"), c.Query("tag")
		n, _ := strconv.Atoi(c.Query("n"))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		for range n {
			now := time.Now()
			if err := inst.Broadcast(c.Request.Context(), instant.Event{Channel: ch, Message: tag + " " + strconv.FormatInt(now.UnixNano(), 10)}); err != nil {
				c.String(http.StatusInternalServerError, err.Error())
				return
			}
		}
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		c.JSON(http.StatusOK, gin.H{"ns": took.Nanoseconds(), "allocs": after.Mallocs - before.Mallocs, "bytes": after.TotalAlloc - before.TotalAlloc})
	})
	// missed: one event to each of the personal channels of users 0..n-1,
	// a hundred to a BroadcastBatch.
	r.POST("/load/missed", func(c *gin.Context) {
		tag := c.Query("tag")
		n, _ := strconv.Atoi(c.Query("n"))
		batch := make([]instant.Event, 0, 100)
		for k := range n {
			batch = append(batch, instant.Event{Channel: inst.UserChannel(strconv.Itoa(k)), Message: tag})
			if len(batch) == cap(batch) || k == n-1 {
				if err := inst.BroadcastBatch(c.Request.Context(), batch); err != nil {
					c.String(http.StatusInternalServerError, err.Error())
					return
				}
				batch = batch[:0]
			}
		}
		c.Status(http.StatusNoContent)
	})
	// cpu: this process's user + system CPU time so far (getrusage: the
	// kernel's precise sum, where /proc/<pid>/stat rounds it to 10 ms).
	r.GET("/load/cpu", func(c *gin.Context) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"ns": ru.Utime.Nano() + ru.Stime.Nano()})
	})
	// mem: the live heap and stacks after a collection.
	r.GET("/load/mem", func(c *gin.Context) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		before := m.HeapInuse
		runtime.GC()
		runtime.ReadMemStats(&m)
		c.JSON(http.StatusOK, gin.H{"heap_inuse": m.HeapInuse, "stack_inuse": m.StackInuse, "freed": int64(before) - int64(m.HeapInuse)})
	})

	var ln net.Listener
	for attempt := 0; ; attempt++ {
		if ln, err = net.Listen("tcp", "127.0.0.1:"+os.Getenv("LOAD_CHILD_PORT")); err == nil {
			break
		}
		if attempt == 50 {
			return err
		}
		time.Sleep(20 * time.Millisecond) // the previous process may hold it a moment more
	}
	hs := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("LOAD_CHILD_READY %d\n", os.Getpid())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-stop:
	case <-eof:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx) // hijacked websockets stay open: the server closes them
	if srv != nil {
		return srv.Close()
	}
	return nil
}

// loadNullServer drops every publication: an app on it pays what
// Broadcast costs the app itself (the event's checks and encoding, the
// handler), and nothing a server does.
type loadNullServer struct{}

func (loadNullServer) Bind(seam.Policy) error                   { return nil }
func (loadNullServer) Handler() http.Handler                    { return http.NotFoundHandler() }
func (loadNullServer) Check(context.Context) error              { return nil }
func (loadNullServer) Describe() string                         { return "null (the load run's floor)" }
func (loadNullServer) Disconnect(context.Context, string) error { return nil }
func (loadNullServer) Publish(context.Context, []seam.Publication) ([]int, error) {
	return nil, nil
}
func (loadNullServer) Unsubscribe(context.Context, string, []string) error { return nil }
func (loadNullServer) History(context.Context, string, int) ([]json.RawMessage, error) {
	return nil, nil
}
func (loadNullServer) Presence(_ context.Context, chs []string) ([][]seam.Client, error) {
	return make([][]seam.Client, len(chs)), nil
}
func (loadNullServer) UserChannels(context.Context, string) ([]string, error) { return nil, nil }

// ---- processes, seen from the test ----

// loadProc is an app process (TestLoadChild), started again on the same
// port after a stop.
type loadProc struct {
	name, mode string
	port       int
	env        []string
	url        string
	log        *loadBuf

	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	done chan struct{}
}

func startLoadProc(t *testing.T, name, mode string, env ...string) *loadProc {
	t.Helper()
	port, err := centrifugotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := &loadProc{name: name, mode: mode, port: port, env: env, url: "http://127.0.0.1:" + strconv.Itoa(port), log: &loadBuf{}}
	p.start(t)
	t.Cleanup(func() { p.stop(t) })
	return p
}

// start runs the process and waits until it listens.
func (p *loadProc) start(t *testing.T) {
	t.Helper()
	var last error
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLoadChild$", "-test.count=1", "-test.timeout=0")
		cmd.Env = append(os.Environ(), "LOAD_CHILD="+p.mode, "LOAD_CHILD_PORT="+strconv.Itoa(p.port))
		cmd.Env = append(cmd.Env, p.env...)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = p.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done, ready := make(chan struct{}), make(chan bool, 1)
		go func() {
			lines, said := bufio.NewScanner(out), false
			for lines.Scan() {
				if !said && strings.HasPrefix(lines.Text(), "LOAD_CHILD_READY") {
					said = true
					ready <- true
					continue
				}
				_, _ = p.log.Write(append(lines.Bytes(), '\n'))
			}
			if !said {
				ready <- false
			}
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case ok := <-ready:
			if ok {
				p.mu.Lock()
				p.cmd, p.in, p.done = cmd, in, done
				p.mu.Unlock()
				return
			}
			last = errors.New("it exited before it listened")
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			last = errors.New("not listening after 30s")
		}
		<-done
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: %v\n%s", p.name, last, p.log.String())
}

// stop sends SIGTERM (a deploy's stop) and waits for the exit, killing it
// after 10 seconds. It may be called twice.
func (p *loadProc) stop(t *testing.T) {
	p.mu.Lock()
	cmd, in, done := p.cmd, p.in, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("%s did not exit within 10s of SIGTERM: killed", p.name)
	}
	_ = in.Close()
}

func (p *loadProc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

func (p *loadProc) ws() string {
	return "ws://127.0.0.1:" + strconv.Itoa(p.port) + "/instant/connection/websocket"
}

type loadBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *loadBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *loadBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var loadHTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// loadCall sends a POST (GET when get) to url and decodes the JSON answer
// into out (nil: none expected).
func loadCall(method, url string, out any) error {
	req, _ := http.NewRequest(method, url, nil)
	resp, err := loadHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// procCPU is the user and system CPU time of process pid so far, from
// /proc/<pid>/stat (clock ticks of 10 ms: USER_HZ is 100 on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	// After "pid (comm)": state is field 3, utime 14 and stime 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// procRSS is the resident set of process pid, from /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// medianRSS reads pid's RSS five times, 200 ms apart, and returns the
// median.
func medianRSS(t *testing.T, pid int) int64 {
	t.Helper()
	var rs []int64
	for range 5 {
		r, err := procRSS(pid)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		time.Sleep(200 * time.Millisecond)
	}
	slices.Sort(rs)
	return rs[2]
}

// cpu is the app process's CPU time so far, as it reads it itself.
func (p *loadProc) cpu(t *testing.T) time.Duration {
	t.Helper()
	var ans struct{ NS int64 }
	if err := loadCall(http.MethodGet, p.url+"/load/cpu", &ans); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ans.NS)
}

func mustCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	d, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// loadMessage splits an event's payload into its message's tag and stamp.
func loadMessage(data []byte) (tag string, stamp int64) {
	var p struct{ Message string }
	_ = json.Unmarshal(data, &p)
	tag, rest, _ := strings.Cut(p.Message, " ")
	stamp, _ = strconv.ParseInt(rest, 10, 64)
	return tag, stamp
}

// ---- the report ----

type loadReport struct{ lines []string }

func (r *loadReport) add(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

// figure is one row of the summary.
type loadFigure struct {
	name, emb, cent, ratio, aim, verdict string
}

func ratioOf(emb, cent float64) float64 {
	if cent == 0 {
		return 0
	}
	return emb / cent
}

func verdict(ratio, aim float64) string {
	if ratio <= aim {
		return "met"
	}
	return "**missed**"
}

func msOf(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func pctOf(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func loadEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// ---- the test ----

func TestLoadEmbeddedVsCentrifugo(t *testing.T) {
	if os.Getenv("LOAD_CHILD") != "" {
		t.Skip("in an app process")
	}
	began := time.Now()
	conns, pages := loadEnv("LOAD_CONNS", 1000), loadEnv("LOAD_PAGES", 1000)
	events, burst := loadEnv("LOAD_EVENTS", 2000), loadEnv("LOAD_BURST", 5000)
	rep := &loadReport{}
	var sum []loadFigure
	loadBefore := loadAvg()

	signer, err := loadInstant(loadConfig())
	if err != nil {
		t.Fatal(err)
	}

	// One process each: the embedded app (emb), Centrifugo with the
	// config the Instant writes (presence on, as the embedded server has
	// it by default) and the app publishing to it (app), the floor (null).
	cent := centrifugotest.Start(t, func(port int) ([]byte, error) {
		return loadCentrifugoConfig(instant.CentrifugoOptions{Port: port, LogLevel: "error", Presence: true})
	})
	emb := startLoadProc(t, "the embedded app", "embedded")
	app := startLoadProc(t, "the app on Centrifugo", "centrifugo", "LOAD_CHILD_API="+cent.APIURL)
	null := startLoadProc(t, "the app on no server", "null")
	time.Sleep(time.Second)

	mem := loadMemoryAndFanOut(t, rep, signer, emb, cent, app, conns)
	sum = append(sum, mem...)
	lat := loadLatency(t, rep, signer, emb, cent, app, null, events)
	sum = append(sum, lat...)
	cpu := loadCPU(t, rep, signer, emb, cent, app, null, burst)
	sum = append(sum, cpu...)
	null.stop(t)
	emb.stop(t)
	app.stop(t)
	cent.Stop()

	storm := loadStorm(t, rep, pages)
	sum = append(sum, storm...)

	head := &loadReport{}
	head.add("One run of `make load-embedded` (`embedded/load_test.go`), %s, %v in all: every figure below comes from it.", began.UTC().Format("2006-01-02 15:04 UTC"), time.Since(began).Round(time.Second))
	head.add("Machine: %d cores (GOMAXPROCS %d), %s, Centrifugo %s, Redis from Debian; shared with another engineer's test runs (load average %s before, %s after).",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), centrifugotest.Version, loadBefore, loadAvg())
	head.add("")
	head.add("| figure | embedded | Centrifugo | embedded ÷ Centrifugo | aim | |")
	head.add("| --- | --- | --- | --- | --- | --- |")
	for _, f := range sum {
		head.add("| %s | %s | %s | %s | %s | %s |", f.name, f.emb, f.cent, f.ratio, f.aim, f.verdict)
	}
	head.add("")
	out := strings.Join(append(head.lines, rep.lines...), "\n") + "\n"
	t.Log("\n" + out)
	if path := os.Getenv("LOAD_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// loadDial connects a client of user id to ws with the tokens signer
// signs, subscribed to each of channels (a token for a private one); ready
// is sent to once every subscription is subscribed, and onPub gets every
// publication.
func loadDial(t *testing.T, ws string, signer *instant.Instant, id string, channels []string, ready chan<- struct{}, onPub func(ch string, data []byte)) *centrifuge.Client {
	t.Helper()
	u := instant.User{ID: id, Username: "user" + id}
	ct, err := signer.ConnectionToken(&u)
	if err != nil {
		t.Fatal(err)
	}
	c := centrifuge.NewJsonClient(ws, centrifuge.Config{Token: ct.Token, HandshakeTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second})
	var left atomic.Int32
	left.Store(int32(len(channels)))
	for _, ch := range channels {
		var cfg centrifuge.SubscriptionConfig
		if strings.HasPrefix(ch, "$") {
			st, err := signer.SubscriptionToken(nil, &u, ch)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Token = st.Token
		}
		s, err := c.NewSubscription(ch, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		s.OnSubscribed(func(centrifuge.SubscribedEvent) {
			once.Do(func() {
				if left.Add(-1) == 0 {
					ready <- struct{}{}
				}
			})
		})
		if onPub != nil {
			s.OnPublication(func(e centrifuge.PublicationEvent) { onPub(ch, e.Data) })
		}
		if err := s.Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	return c
}

// await waits for n sends on ready, failing after limit.
func await(t *testing.T, ready <-chan struct{}, n int, limit time.Duration, what string) {
	t.Helper()
	deadline := time.After(limit)
	for k := range n {
		select {
		case <-ready:
		case <-deadline:
			t.Fatalf("%s: %d of %d ready after %v", what, k, n, limit)
		}
	}
}

// loadMemoryAndFanOut connects n idle clients to each server, each
// subscribed to its user's personal channel, and reads what they cost the
// server; then each subscribes to the feed too, and one event to the
// feed is timed until the last of them has it.
func loadMemoryAndFanOut(t *testing.T, rep *loadReport, signer *instant.Instant, emb *loadProc, cent *centrifugotest.Server, app *loadProc, n int) []loadFigure {
	var embHeap0 struct {
		HeapInuse  int64 `json:"heap_inuse"`
		StackInuse int64 `json:"stack_inuse"`
		Freed      int64 `json:"freed"`
	}
	embHeap1 := embHeap0
	embRSS0, centRSS0, appRSS0 := medianRSS(t, emb.pid()), medianRSS(t, cent.Pid()), medianRSS(t, app.pid())
	if err := loadCall(http.MethodGet, emb.url+"/load/mem", &embHeap0); err != nil {
		t.Fatal(err)
	}

	// The fan-out's arrivals: per server, the round's tag, how many have
	// it and when the last got it.
	type fan struct {
		mu   sync.Mutex
		tag  string
		got  int
		last int64
	}
	fans := map[string]*fan{"emb": {}, "cent": {}}
	onPub := func(f *fan) func(string, []byte) {
		return func(ch string, data []byte) {
			if ch != loadFeed {
				return
			}
			tag, _ := loadMessage(data)
			now := time.Now().UnixNano()
			f.mu.Lock()
			if tag == f.tag {
				f.got++
				f.last = max(f.last, now)
			}
			f.mu.Unlock()
		}
	}
	// Connect 50 at a time (a browser's page load, not a dial storm).
	connect := func(ws string, f *fan, channels func(id string) []string) ([]*centrifuge.Client, time.Duration) {
		start := time.Now()
		ready := make(chan struct{}, n)
		clients := make([]*centrifuge.Client, n)
		for k := range n {
			if k >= 50 {
				await(t, ready, 1, 60*time.Second, "connecting")
			}
			id := strconv.Itoa(k)
			clients[k] = loadDial(t, ws, signer, id, channels(id), ready, onPub(f))
		}
		await(t, ready, min(n, 50), 60*time.Second, "connecting")
		return clients, time.Since(start)
	}
	personal := func(id string) []string { return []string{signer.UserChannel(id)} }
	embClients, embTook := connect(emb.ws(), fans["emb"], personal)
	centClients, centTook := connect(cent.WebsocketURL, fans["cent"], personal)
	defer func() {
		for _, c := range append(embClients, centClients...) {
			c.Close()
		}
	}()
	time.Sleep(time.Second)
	embRSS1, centRSS1, appRSS1 := medianRSS(t, emb.pid()), medianRSS(t, cent.Pid()), medianRSS(t, app.pid())
	if err := loadCall(http.MethodGet, emb.url+"/load/mem", &embHeap1); err != nil {
		t.Fatal(err)
	}
	per := func(d int64) float64 { return float64(d) * 1000 / float64(n) }
	embPer, centPer := per(embRSS1-embRSS0), per(centRSS1-centRSS0)
	heapPer := per(embHeap1.HeapInuse + embHeap1.StackInuse - embHeap0.HeapInuse - embHeap0.StackInuse)

	rep.add("### Memory: %d idle connections a server, each subscribed to its user's personal channel", n)
	rep.add("")
	rep.add("Resident memory (VmRSS, the median of five reads 200 ms apart) of the server's process before the clients connected and a second after the last was subscribed; the clients are in the test's process and counted in neither. The embedded server's process is the whole app (Gin, the routes, the Instant); the tokens were signed by the test, so neither app served a request meanwhile. Presence on in both (the embedded server's default; `Presence: true` in the Centrifugo config), history kept for private channels in both.")
	rep.add("")
	rep.add("| process | before | after | growth per 1,000 connections | connected in |")
	rep.add("| --- | --- | --- | --- | --- |")
	rep.add("| embedded app (server inside) | %s | %s | %s | %v |", mib(float64(embRSS0)), mib(float64(embRSS1)), mib(embPer), embTook.Round(time.Millisecond))
	rep.add("| Centrifugo | %s | %s | %s | %v |", mib(float64(centRSS0)), mib(float64(centRSS1)), mib(centPer), centTook.Round(time.Millisecond))
	rep.add("| the app publishing to Centrifugo (not counted: the clients never reach it) | %s | %s | %s | |", mib(float64(appRSS0)), mib(float64(appRSS1)), mib(per(appRSS1-appRSS0)))
	rep.add("")
	rep.add("The embedded app's live heap and stacks after a collection grew by %s per 1,000 connections (HeapInuse + StackInuse, read inside it): what the connections hold, without the garbage and free pages RSS also counts. Reading it before the clients connected took a collection there, which Centrifugo had not: it freed %s of heap that the connections could then reuse, at most that much off the embedded app's RSS growth.", mib(heapPer), mib(float64(embHeap0.Freed)))
	rep.add("")
	r := ratioOf(embPer, centPer)
	figs := []loadFigure{{"memory per 1,000 idle connections (RSS growth)", mib(embPer), mib(centPer), fmt.Sprintf("%.2f×", r), "≤ 1×", verdict(r, 1)}}

	// Fan-out: the same clients subscribe to the feed.
	ready := make(chan struct{}, 2*n)
	for _, side := range []struct {
		clients []*centrifuge.Client
		f       *fan
	}{{embClients, fans["emb"]}, {centClients, fans["cent"]}} {
		for _, c := range side.clients {
			s, err := c.NewSubscription(loadFeed, centrifuge.SubscriptionConfig{})
			if err != nil {
				t.Fatal(err)
			}
			pub := onPub(side.f)
			s.OnPublication(func(e centrifuge.PublicationEvent) { pub(loadFeed, e.Data) })
			s.OnSubscribed(func(centrifuge.SubscribedEvent) { ready <- struct{}{} })
			if err := s.Subscribe(); err != nil {
				t.Fatal(err)
			}
		}
	}
	await(t, ready, 2*n, 60*time.Second, "subscribing to the feed")
	const rounds = 7
	var embFan, centFan []time.Duration
	round := func(f *fan, p *loadProc, tag string) time.Duration {
		f.mu.Lock()
		f.tag, f.got, f.last = tag, 0, 0
		f.mu.Unlock()
		var ans struct{ Stamp int64 }
		if err := loadCall(http.MethodPost, p.url+"/load/broadcast?channel="+url.QueryEscape(loadFeed)+"&tag="+tag, &ans); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			f.mu.Lock()
			got, last := f.got, f.last
			f.mu.Unlock()
			if got >= n {
				return time.Duration(last - ans.Stamp)
			}
			if time.Now().After(deadline) {
				t.Fatalf("fan-out %s: %d of %d subscribers had the event after 30s", tag, got, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for k := range rounds {
		tag := "fan" + strconv.Itoa(k)
		if k%2 == 0 {
			embFan = append(embFan, round(fans["emb"], emb, tag+"e"))
			centFan = append(centFan, round(fans["cent"], app, tag+"c"))
		} else {
			centFan = append(centFan, round(fans["cent"], app, tag+"c"))
			embFan = append(embFan, round(fans["emb"], emb, tag+"e"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	e, c := pctOf(embFan, 0.5), pctOf(centFan, 0.5)
	rep.add("### Fan-out: one event to %d subscribers (one a connection, the same clients), %d rounds alternating", n, rounds)
	rep.add("")
	rep.add("From the moment `Broadcast` was called in the app (inside a request handler) until the last subscriber had the event, on a public channel of a namespace that keeps no history or presence on either server.")
	rep.add("")
	rep.add("| server | median | fastest | slowest |")
	rep.add("| --- | --- | --- | --- |")
	rep.add("| embedded | %s | %s | %s |", msOf(e), msOf(slices.Min(embFan)), msOf(slices.Max(embFan)))
	rep.add("| Centrifugo | %s | %s | %s |", msOf(c), msOf(slices.Min(centFan)), msOf(slices.Max(centFan)))
	rep.add("")
	r = ratioOf(float64(e), float64(c))
	figs = append(figs, loadFigure{fmt.Sprintf("fan-out of one event to %d subscribers (median of %d)", n, rounds), msOf(e), msOf(c), fmt.Sprintf("%.2f×", r), "≤ 1.05×", verdict(r, 1.05)})
	return figs
}

// loadArrival is a publication's tag and when the subscriber had it.
type loadArrival struct {
	tag string
	at  int64
}

// loadSubscriber connects user 1 to ws, subscribed to $site_users, and
// sends each publication's arrival to the channel returned.
func loadSubscriber(t *testing.T, ws string, signer *instant.Instant) (*centrifuge.Client, chan loadArrival) {
	t.Helper()
	arrivals := make(chan loadArrival, 1<<15)
	ready := make(chan struct{}, 1)
	c := loadDial(t, ws, signer, "1", []string{"$site_users"}, ready, func(_ string, data []byte) {
		tag, _ := loadMessage(data)
		arrivals <- loadArrival{tag, time.Now().UnixNano()}
	})
	await(t, ready, 1, 30*time.Second, "the subscriber")
	return c, arrivals
}

// awaitTag waits for count arrivals tagged tag (dropping others) and
// returns the last one's time.
func awaitTag(t *testing.T, arrivals chan loadArrival, tag string, count int) int64 {
	t.Helper()
	deadline := time.After(60 * time.Second)
	var last int64
	for got := 0; got < count; {
		select {
		case a := <-arrivals:
			if a.tag == tag {
				got++
				last = a.at
			}
		case <-deadline:
			t.Fatalf("%s: %d of %d events arrived in 60s", tag, got, count)
		}
	}
	return last
}

// loadLatency sends n events to each server, one at a time, alternating,
// each from a request handler of its app, and times each from the call of
// Broadcast until the subscriber had it.
//
// The processes' CPU time over the measured events gives the CPU an event
// costs when events come one at a time (each written alone to the
// websocket), beside the bursts of loadCPU: the floor app gets the same
// requests, one per pair.
func loadLatency(t *testing.T, rep *loadReport, signer *instant.Instant, emb *loadProc, cent *centrifugotest.Server, app, null *loadProc, n int) []loadFigure {
	embSub, embArr := loadSubscriber(t, emb.ws(), signer)
	defer embSub.Close()
	centSub, centArr := loadSubscriber(t, cent.WebsocketURL, signer)
	defer centSub.Close()
	type sample struct{ lat, request, call []time.Duration }
	one := func(p *loadProc, arrivals chan loadArrival, tag string, s *sample) {
		start := time.Now()
		var ans struct{ NS, Stamp int64 }
		if err := loadCall(http.MethodPost, p.url+"/load/broadcast?channel=%24site_users&tag="+tag, &ans); err != nil {
			t.Fatal(err)
		}
		request := time.Since(start)
		at := awaitTag(t, arrivals, tag, 1)
		if s != nil {
			s.lat = append(s.lat, time.Duration(at-ans.Stamp))
			s.request = append(s.request, request)
			s.call = append(s.call, time.Duration(ans.NS))
		}
	}
	for k := range 100 { // warm both up: connections, pools, caches
		one(emb, embArr, "warm"+strconv.Itoa(k), nil)
		one(app, centArr, "warm"+strconv.Itoa(k), nil)
	}
	var e, c sample
	e0, a0, n0, z0 := emb.cpu(t), app.cpu(t), null.cpu(t), mustCPU(t, cent.Pid())
	for k := range n {
		tag := "lat" + strconv.Itoa(k)
		if err := loadCall(http.MethodPost, null.url+"/load/broadcast?channel=%24site_users&tag="+tag, nil); err != nil {
			t.Fatal(err)
		}
		if k%2 == 0 {
			one(emb, embArr, tag, &e)
			one(app, centArr, tag, &c)
		} else {
			one(app, centArr, tag, &c)
			one(emb, embArr, tag, &e)
		}
	}
	embCPU, appCPU, nullCPU, centCPU := emb.cpu(t)-e0, app.cpu(t)-a0, null.cpu(t)-n0, mustCPU(t, cent.Pid())-z0
	per := func(d time.Duration) time.Duration { return d * 1000 / time.Duration(n) }
	rep.add("### Publish → receive: %d events a server, one at a time, alternating", n)
	rep.add("")
	rep.add("Each event is sent by a Gin handler of the app (`POST /load/broadcast`, called by the test) with `Broadcast` to `$site_users`, which one centrifuge-go client (in the test's process) subscribes to; the next is sent once it arrived. **publish → receive** is from the call of `Broadcast` (the time is in the event) until the subscriber had it; **the request** is the handler's whole request as its client saw it; **`Broadcast`** is the call alone, timed in the handler. After 100 events each to warm up.")
	rep.add("")
	rep.add("| server | publish → receive p50 | p99 | the request p50 | p99 | `Broadcast` p50 | p99 |")
	rep.add("| --- | --- | --- | --- | --- | --- | --- |")
	row := func(name string, s sample) {
		rep.add("| %s | %s | %s | %s | %s | %s | %s |", name, msOf(pctOf(s.lat, 0.5)), msOf(pctOf(s.lat, 0.99)),
			msOf(pctOf(s.request, 0.5)), msOf(pctOf(s.request, 0.99)), msOf(pctOf(s.call, 0.5)), msOf(pctOf(s.call, 0.99)))
	}
	row("embedded", e)
	row("Centrifugo (HTTP API)", c)
	rep.add("")
	rep.add("CPU over these events (each process's, as in the bursts below; the floor app got the same requests, one per pair): the embedded app %s per 1,000 events, the floor %s, so **the embedded server %s**; **Centrifugo %s**, the app publishing to it %s. Paced like this, each event is written to the websocket alone (no batching of writes), as an app that sends events now and then does.",
		msOf(per(embCPU)), msOf(per(nullCPU)), msOf(per(embCPU-nullCPU)), msOf(per(centCPU)), msOf(per(appCPU)))
	rep.add("")
	fig := func(name string, a, b time.Duration, aim float64) loadFigure {
		r := ratioOf(float64(a), float64(b))
		f := loadFigure{name, msOf(a), msOf(b), fmt.Sprintf("%.2f×", r), "—", ""}
		if aim > 0 {
			f.aim, f.verdict = fmt.Sprintf("≤ %.2g×", aim), verdict(r, aim)
		}
		return f
	}
	return []loadFigure{
		fig("publish → receive p50", pctOf(e.lat, 0.5), pctOf(c.lat, 0.5), 0.5),
		fig("publish → receive p99", pctOf(e.lat, 0.99), pctOf(c.lat, 0.99), 0),
		fig("server CPU per 1,000 events sent one at a time (embedded: its app above the floor)", per(embCPU-nullCPU), per(centCPU), 0.35),
		fig("all CPU per 1,000 events sent one at a time (app + server)", per(embCPU), per(appCPU+centCPU), 0),
		fig("`Broadcast` inside a request handler: the call, p50", pctOf(e.call, 0.5), pctOf(c.call, 0.5), 0),
		fig("`Broadcast` inside a request handler: the whole request, p50", pctOf(e.request, 0.5), pctOf(c.request, 0.5), 0),
	}
}

// loadCPU sends bursts of n events (Broadcast after Broadcast in one
// handler) to each server, three a server in rotating order, and reads
// the processes' CPU time around each, until the subscriber had the last.
func loadCPU(t *testing.T, rep *loadReport, signer *instant.Instant, emb *loadProc, cent *centrifugotest.Server, app, null *loadProc, n int) []loadFigure {
	embSub, embArr := loadSubscriber(t, emb.ws(), signer)
	defer embSub.Close()
	centSub, centArr := loadSubscriber(t, cent.WebsocketURL, signer)
	defer centSub.Close()
	type burstAnswer struct{ NS, Allocs, Bytes int64 }
	burst := func(p *loadProc, arrivals chan loadArrival, tag string) burstAnswer {
		var ans burstAnswer
		if err := loadCall(http.MethodPost, p.url+"/load/burst?channel=%24site_users&n="+strconv.Itoa(n)+"&tag="+tag, &ans); err != nil {
			t.Fatal(err)
		}
		if arrivals != nil {
			awaitTag(t, arrivals, tag, n)
		}
		return ans
	}
	const rounds = 3
	var embCPU, nullCPU, appCPU, centCPU time.Duration
	var embAns, nullAns, appAns []burstAnswer
	runs := []func(tag string){
		func(tag string) {
			c0 := emb.cpu(t)
			embAns = append(embAns, burst(emb, embArr, tag))
			embCPU += emb.cpu(t) - c0
		},
		func(tag string) {
			a0, z0 := app.cpu(t), mustCPU(t, cent.Pid())
			appAns = append(appAns, burst(app, centArr, tag))
			appCPU += app.cpu(t) - a0
			centCPU += mustCPU(t, cent.Pid()) - z0
		},
		func(tag string) {
			n0 := null.cpu(t)
			nullAns = append(nullAns, burst(null, nil, tag))
			nullCPU += null.cpu(t) - n0
		},
	}
	for r := range rounds {
		for k := range runs {
			runs[(r+k)%len(runs)]("cpu" + strconv.Itoa(r))
			time.Sleep(200 * time.Millisecond)
		}
	}
	total := rounds * n
	per := func(d time.Duration) time.Duration { return d * 1000 / time.Duration(total) }
	sumAns := func(as []burstAnswer) (took time.Duration, allocs, bytes float64) {
		for _, a := range as {
			took += time.Duration(a.NS)
			allocs += float64(a.Allocs)
			bytes += float64(a.Bytes)
		}
		return took, allocs / float64(total), bytes / float64(total)
	}
	embTook, embAllocs, embBytes := sumAns(embAns)
	nullTook, nullAllocs, nullBytes := sumAns(nullAns)
	appTook, appAllocs, appBytes := sumAns(appAns)
	rate := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(total)/d.Seconds()) }
	embServer := embCPU - nullCPU
	rep.add("### Server CPU: %d bursts of %d events a server, rotating order", rounds, n)
	rep.add("")
	rep.add("Each burst is one handler calling `Broadcast` %d times in a row to `$site_users`, which one subscriber (in the test's process) receives. A process's CPU time is its user + system time, read before the burst and after the subscriber had its last event: an app's from `getrusage` inside it (microseconds; the one request that reads it is counted too, a few dozen microseconds), Centrifugo's from `/proc/<pid>/stat` (10 ms ticks, under 1%% of its %d events' total). The embedded server runs inside its app, so its CPU is the app's **above the floor**: the same app on a server that drops every publication, which pays what `Broadcast` costs the app itself (the event's checks and JSON) and the handler. Centrifugo's is its own process's; the app publishing to it pays the floor plus the HTTP client. Allocations are the app process's (the embedded server's included) per event, from `runtime.MemStats` around the burst.", n, total)
	rep.add("")
	rep.add("| process | CPU per 1,000 events | events/s in the burst | allocations per event | bytes allocated per event |")
	rep.add("| --- | --- | --- | --- | --- |")
	rep.add("| the embedded app (app + server) | %s | %s | %.1f | %.0f |", msOf(per(embCPU)), rate(embTook), embAllocs, embBytes)
	rep.add("| the same app on no server (the floor) | %s | %s | %.1f | %.0f |", msOf(per(nullCPU)), rate(nullTook), nullAllocs, nullBytes)
	rep.add("| **the embedded server** (the two above's difference) | **%s** | | | |", msOf(per(embServer)))
	rep.add("| **Centrifugo** | **%s** | | | |", msOf(per(centCPU)))
	rep.add("| the app publishing to Centrifugo | %s | %s | %.1f | %.0f |", msOf(per(appCPU)), rate(appTook), appAllocs, appBytes)
	rep.add("")
	r1 := ratioOf(float64(embServer), float64(centCPU))
	r2 := ratioOf(float64(embCPU), float64(appCPU+centCPU))
	return []loadFigure{
		{fmt.Sprintf("server CPU per 1,000 events in bursts of %d (embedded: its app above the floor)", n), msOf(per(embServer)), msOf(per(centCPU)), fmt.Sprintf("%.2f×", r1), "≤ 0.35×", verdict(r1, 0.35)},
		{"all CPU per 1,000 events in bursts (app + server)", msOf(per(embCPU)), msOf(per(appCPU + centCPU)), fmt.Sprintf("%.2f×", r2), "—", ""},
	}
}

// loadPage is a page as client.js keeps one: a session cookie, one
// connection and four private channels (its user's personal channel and
// three rooms), all its tokens from one batched `auth` request; it asks
// the routes again only when a server refuses a token. It counts what it
// asks of the app and how often it dials.
type loadPage struct {
	base     string
	browser  *http.Client
	personal string
	c        *centrifuge.Client
	asks     atomic.Int32 // token requests after the page's first
	dials    atomic.Int32 // TCP connections to the websocket

	mu          sync.Mutex
	round       string
	subscribed  [4]bool
	unrecovered int // resubscriptions whose recovery failed
	missed      bool
	back        int64
}

// auth asks the auth route for a connection token (conn) and channels'.
func (p *loadPage) auth(conn bool, channels []string) (string, map[string]string, error) {
	body, _ := json.Marshal(map[string]any{"connection": conn, "channels": channels})
	req, _ := http.NewRequest(http.MethodPost, p.base+"/instant/auth", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.browser.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", nil, fmt.Errorf("auth: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Channels []struct {
			Channel, Token string
			Status         int
		}
		Connection *struct{ Token string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", nil, err
	}
	toks := map[string]string{}
	for _, ch := range out.Channels {
		if ch.Token == "" {
			return "", nil, fmt.Errorf("auth: %s refused (%d)", ch.Channel, ch.Status)
		}
		toks[ch.Channel] = ch.Token
	}
	var ct string
	if out.Connection != nil {
		ct = out.Connection.Token
	}
	return ct, toks, nil
}

// begin starts a round: what the page had before no longer counts.
func (p *loadPage) begin(round string) {
	p.mu.Lock()
	p.round, p.subscribed, p.unrecovered, p.missed, p.back = round, [4]bool{}, 0, false, 0
	p.mu.Unlock()
	p.asks.Store(0)
	p.dials.Store(0)
}

// done records the page back when every channel is subscribed again and
// the event it missed arrived. Called with p.mu held.
func (p *loadPage) done() {
	if p.back != 0 || !p.missed {
		return
	}
	for _, s := range p.subscribed {
		if !s {
			return
		}
	}
	p.back = time.Now().UnixNano()
}

// openPage logs page k in at base and connects it to ws; ready is sent to
// once its four channels are subscribed.
func openPage(t *testing.T, signer *instant.Instant, base, ws string, k int, ready chan<- struct{}) *loadPage {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	id := strconv.Itoa(k)
	p := &loadPage{base: base, browser: &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: loadHTTP.Transport}}
	req, _ := http.NewRequest(http.MethodPost, base+"/load/login?id="+id, nil)
	resp, err := p.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	channels := append([]string{signer.UserChannel(id)}, loadRooms(k)...)
	p.personal = channels[0]
	ct, toks, err := p.auth(true, channels)
	if err != nil {
		t.Fatalf("page %d: %v", k, err)
	}
	p.c = centrifuge.NewJsonClient(ws, centrifuge.Config{
		Token: ct,
		GetToken: func(centrifuge.ConnectionTokenEvent) (string, error) {
			p.asks.Add(1)
			tok, _, err := p.auth(true, nil)
			return tok, err
		},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			p.dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		// client.js's backoff (centrifuge-js: from 0.5 s doubling, with
		// jitter), capped at 2 s as the core's storm caps it, so that the
		// pages come back at once.
		MinReconnectDelay: 500 * time.Millisecond,
		MaxReconnectDelay: 2 * time.Second,
		HandshakeTimeout:  10 * time.Second,
		ReadTimeout:       10 * time.Second,
	})
	var left atomic.Int32
	left.Store(int32(len(channels)))
	for i, ch := range channels {
		s, err := p.c.NewSubscription(ch, centrifuge.SubscriptionConfig{
			Token: toks[ch],
			GetToken: func(centrifuge.SubscriptionTokenEvent) (string, error) {
				p.asks.Add(1)
				_, toks, err := p.auth(false, []string{ch})
				return toks[ch], err
			},
			MinResubscribeDelay: 500 * time.Millisecond,
			MaxResubscribeDelay: 2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		var first sync.Once
		s.OnSubscribed(func(e centrifuge.SubscribedEvent) {
			first.Do(func() {
				if left.Add(-1) == 0 {
					ready <- struct{}{}
				}
			})
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.round == "" || p.subscribed[i] {
				return
			}
			p.subscribed[i] = true
			if !e.WasRecovering || !e.Recovered {
				p.unrecovered++
			}
			p.done()
		})
		if i == 0 {
			s.OnPublication(func(e centrifuge.PublicationEvent) {
				tag, _ := loadMessage(e.Data)
				p.mu.Lock()
				defer p.mu.Unlock()
				if p.round != "" && tag == p.round {
					p.missed = true
					p.done()
				}
			})
		}
		if err := s.Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.c.Connect(); err != nil {
		t.Fatal(err)
	}
	return p
}

// openPages opens n pages, 50 at a time.
func openPages(t *testing.T, signer *instant.Instant, base, ws string, n int) ([]*loadPage, time.Duration) {
	t.Helper()
	start := time.Now()
	ready := make(chan struct{}, n)
	pages := make([]*loadPage, n)
	for k := range n {
		if k >= 50 {
			await(t, ready, 1, 60*time.Second, "opening pages")
		}
		pages[k] = openPage(t, signer, base, ws, k, ready)
	}
	await(t, ready, min(n, 50), 60*time.Second, "opening pages")
	return pages, time.Since(start)
}

// stormRound is one deploy: what restart reports and what the pages did.
type stormRound struct {
	server                string
	exited, published, up time.Duration // since the stop began
	backLast, backP50     time.Duration // since the stop began
	asks, dials           []int
	unrecovered, notBack  int
}

// runStormRound begins a round on the pages, restarts their server
// (which stops it, has the missed events published elsewhere meanwhile,
// and starts it again, reporting when each was done), and waits up to 60
// seconds for every page to be back.
func runStormRound(t *testing.T, server string, pages []*loadPage, tag string, restart func(tag string) (exited, published time.Time)) stormRound {
	for _, p := range pages {
		p.begin(tag)
	}
	t0 := time.Now()
	exited, published := restart(tag)
	up := time.Now()
	r := stormRound{server: server, exited: exited.Sub(t0), published: published.Sub(t0), up: up.Sub(t0)}
	deadline := up.Add(60 * time.Second)
	for {
		back := 0
		for _, p := range pages {
			p.mu.Lock()
			if p.back != 0 {
				back++
			}
			p.mu.Unlock()
		}
		if back == len(pages) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var backs []time.Duration
	for _, p := range pages {
		p.mu.Lock()
		if p.back == 0 {
			r.notBack++
		} else {
			backs = append(backs, time.Duration(p.back-t0.UnixNano()))
		}
		r.unrecovered += p.unrecovered
		p.mu.Unlock()
		r.asks = append(r.asks, int(p.asks.Load()))
		r.dials = append(r.dials, int(p.dials.Load()))
	}
	if len(backs) > 0 {
		r.backLast, r.backP50 = slices.Max(backs), pctOf(backs, 0.5)
	}
	if r.notBack > 0 {
		t.Errorf("%s, %s: %d of %d pages not back within 60s of the restart", server, tag, r.notBack, len(pages))
	}
	return r
}

func meanMax(v []int) (float64, int) {
	if len(v) == 0 {
		return 0, 0
	}
	sum := 0
	for _, x := range v {
		sum += x
	}
	return float64(sum) / float64(len(v)), slices.Max(v)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// loadStorm is the deploy: n pages on each server, each server restarted
// twice in place (same port, same config) under its pages, alternating.
// Both run as two processes on a Redis of their own, so history survives
// the restart: the embedded apps A and B (the pages on A; B publishes
// while A is down), and Centrifugo nodes A and B (the pages on A; the
// app, which stays up, publishes through B).
func loadStorm(t *testing.T, rep *loadReport, n int) []loadFigure {
	re, rz := centrifugotest.StartRedis(t), centrifugotest.StartRedis(t)
	signer, err := loadInstant(loadConfig())
	if err != nil {
		t.Fatal(err)
	}
	conf := func(port int) ([]byte, error) {
		return loadCentrifugoConfig(instant.CentrifugoOptions{Port: port, LogLevel: "error", Presence: true, RedisAddress: rz.URL})
	}
	za, zb := centrifugotest.Start(t, conf), centrifugotest.Start(t, conf)
	ea := startLoadProc(t, "the embedded app A", "embedded", "LOAD_CHILD_REDIS="+re.URL)
	eb := startLoadProc(t, "the embedded app B", "embedded", "LOAD_CHILD_REDIS="+re.URL)
	ca := startLoadProc(t, "the app on Centrifugo", "centrifugo", "LOAD_CHILD_API="+zb.APIURL)

	embPages, embTook := openPages(t, signer, ea.url, ea.ws(), n)
	centPages, centTook := openPages(t, signer, ca.url, za.WebsocketURL, n)
	defer func() {
		for _, p := range append(embPages, centPages...) {
			p.c.Close()
		}
	}()
	missed := func(p *loadProc, tag string) {
		if err := loadCall(http.MethodPost, p.url+"/load/missed?n="+strconv.Itoa(n)+"&tag="+tag, nil); err != nil {
			t.Fatal(err)
		}
	}
	restartEmbedded := func(tag string) (time.Time, time.Time) {
		ea.stop(t)
		exited := time.Now()
		missed(eb, tag)
		published := time.Now()
		ea.start(t)
		return exited, published
	}
	restartCentrifugo := func(tag string) (time.Time, time.Time) {
		za.Terminate(t, 10*time.Second)
		exited := time.Now()
		missed(ca, tag)
		published := time.Now()
		za.Restart(t)
		return exited, published
	}
	time.Sleep(time.Second)
	var rounds []stormRound
	for k := range 2 {
		tag := "deploy" + strconv.Itoa(k)
		if k%2 == 0 {
			rounds = append(rounds, runStormRound(t, "embedded", embPages, tag+"e", restartEmbedded))
			time.Sleep(time.Second)
			rounds = append(rounds, runStormRound(t, "Centrifugo", centPages, tag+"c", restartCentrifugo))
		} else {
			rounds = append(rounds, runStormRound(t, "Centrifugo", centPages, tag+"c", restartCentrifugo))
			time.Sleep(time.Second)
			rounds = append(rounds, runStormRound(t, "embedded", embPages, tag+"e", restartEmbedded))
		}
		time.Sleep(time.Second)
	}

	rep.add("### A deploy: %d pages × 4 private channels, their server restarted in place under them", n)
	rep.add("")
	rep.add("Each page is a centrifuge-go client as client.js keeps one: a session cookie, one `POST auth` for its connection token and its four channels' (its personal channel and three rooms of 10, 20 and 50 pages, presence and joins on), tokens reused while valid, asked again only when a server refuses one; reconnect backoff from 0.5 s doubling with jitter, capped at 2 s. Both servers run as two processes on a Redis of their own (history survives a restart): the pages are on process A; the deploy stops A (SIGTERM: the embedded app closes its listener, then the server, which tells every client to reconnect; Centrifugo shuts down gracefully), publishes one event to each page's personal channel through B while A is down (`BroadcastBatch`, a hundred a call), and starts A again on the same port. For the embedded server that is the app's deploy; for Centrifugo it is Centrifugo's own restart (an app deploy costs its websockets nothing). A page is **back** when its four channels are subscribed again and the missed event has arrived. The pages opened in %v (embedded) and %v (Centrifugo), 50 at a time. Each server restarted twice, alternating.", embTook.Round(time.Millisecond), centTook.Round(time.Millisecond))
	rep.add("")
	rep.add("| server | A exited | missed events published | A up again | every page back (last) | p50 | token requests per page: mean (max) | websocket dials per page: mean (max) | subscriptions not recovered | pages not back in 60 s |")
	rep.add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	var embBack, centBack []time.Duration
	var embAsks, centAsks, embDials, centDials []int
	for _, r := range rounds {
		am, ax := meanMax(r.asks)
		dm, dx := meanMax(r.dials)
		rep.add("| %s | %s | %s | %s | **%s** | %s | %.2f (%d) | %.2f (%d) | %d | %d |", r.server, seconds(r.exited), seconds(r.published), seconds(r.up), seconds(r.backLast), seconds(r.backP50), am, ax, dm, dx, r.unrecovered, r.notBack)
		if r.server == "embedded" {
			embBack, embAsks, embDials = append(embBack, r.backLast), append(embAsks, r.asks...), append(embDials, r.dials...)
		} else {
			centBack, centAsks, centDials = append(centBack, r.backLast), append(centAsks, r.asks...), append(centDials, r.dials...)
		}
	}
	rep.add("")
	rep.add("Times are from the moment the stop began. Token requests are those a page sent to the app's routes during the round (0 while its tokens are valid); dials count every TCP connection a page opened to the websocket, the attempts refused while A was down included.")
	rep.add("")
	mean := func(d []time.Duration) time.Duration {
		var s time.Duration
		for _, x := range d {
			s += x
		}
		return s / time.Duration(max(1, len(d)))
	}
	eb1, cb1 := mean(embBack), mean(centBack)
	ea1, _ := meanMax(embAsks)
	ca1, _ := meanMax(centAsks)
	ed1, _ := meanMax(embDials)
	cd1, _ := meanMax(centDials)
	return []loadFigure{
		{fmt.Sprintf("a deploy: every one of %d pages back, from the stop (mean of 2)", n), seconds(eb1), seconds(cb1), fmt.Sprintf("%.2f×", ratioOf(float64(eb1), float64(cb1))), "—", ""},
		{"a deploy: token requests per page", fmt.Sprintf("%.2f", ea1), fmt.Sprintf("%.2f", ca1), "", "—", ""},
		{"a deploy: websocket dials per page", fmt.Sprintf("%.2f", ed1), fmt.Sprintf("%.2f", cd1), "", "—", ""},
	}
}
