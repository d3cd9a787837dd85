package centrifugotest

// Redis and PostgreSQL servers for tests, from Debian's redis-server and
// postgresql packages, each on a free loopback port in a temporary
// directory, stopped when the test ends. Missing binaries fail the test
// under CI=true and skip it elsewhere, as a missing Centrifugo does.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// need ends the test when a tool is missing: Fatal under CI=true, Skip
// elsewhere.
func need(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}

// Redis is a running redis-server.
type Redis struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port, as Centrifugo takes it
}

// StartRedis starts redis-server without persistence on a free loopback
// port and stops it when t ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		need(t, "no redis-server: apt-get install redis-server")
	}
	var last error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--loglevel", "warning")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if last = waitTCP(addr, done, 10*time.Second); last == nil {
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
			return &Redis{Addr: addr, URL: "redis://" + addr}
		}
		_ = cmd.Process.Kill()
		<-done
		last = fmt.Errorf("%w: %s", last, out.String())
	}
	t.Fatalf("centrifugotest: redis-server: %v", last)
	return nil
}

// Postgres is a running PostgreSQL server with a trust-authenticated
// superuser "postgres".
type Postgres struct {
	Port int
	DSN  string // postgres://postgres@127.0.0.1:port/DATABASE?sslmode=disable
	as   func(name string, args ...string) *exec.Cmd
}

// postgresBin finds the directory of initdb and postgres: $PG_BIN, else
// the newest /usr/lib/postgresql/*/bin, else PATH.
func postgresBin() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		return dirs[len(dirs)-1], nil
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}

var errMissing = errors.New("missing")

func dsn(port int, database string) string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/" + database + "?sslmode=disable"
}

// startPostgres makes a throwaway cluster (initdb) and starts PostgreSQL on
// a free loopback port, run as the postgres system user when run as root
// (both refuse root); stop stops it and removes the cluster.
func startPostgres() (pg *Postgres, stop func(), err error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: no PostgreSQL: apt-get install postgresql", errMissing)
	}
	dir, err := os.MkdirTemp("", "instant-pg-")
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		pu, err := user.Lookup("postgres")
		if err != nil {
			return nil, nil, fmt.Errorf("%w: running as root and no postgres system user to run PostgreSQL as", errMissing)
		}
		uid, _ := strconv.Atoi(pu.Uid)
		gid, _ := strconv.Atoi(pu.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	as := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := as("initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("centrifugotest: initdb: %v\n%s", err, out)
	}
	var last error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			return nil, nil, err
		}
		cmd := as("postgres", "-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=500")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if last = waitPostgres(as, port, done, 20*time.Second); last == nil {
			stop := func() {
				_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
				_ = os.RemoveAll(dir)
			}
			pg := &Postgres{Port: port, DSN: dsn(port, "postgres"), as: as}
			return pg, stop, nil
		}
		_ = cmd.Process.Kill()
		<-done
		last = fmt.Errorf("%w: %s", last, out.String())
	}
	return nil, nil, fmt.Errorf("centrifugotest: postgres: %v", last)
}

var shared struct {
	sync.Mutex
	main       bool // Main runs the package's tests
	pg         *Postgres
	err        error
	stop       []func()
	dbs        int
	centrifugo map[string]*Server
}

// Main runs a package's tests (call it from TestMain) and then stops the
// servers they shared.
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	for _, stop := range shared.stop {
		stop()
	}
	shared.Unlock()
	os.Exit(code)
}

// Shared is Start for tests that only read the server (they neither stop
// it nor depend on what other tests send it): the first call for key
// starts Centrifugo with cfg, the next get the same server (their cfg is
// not called), and Main stops it after the package's last test.
func Shared(t testing.TB, key string, cfg ConfigFunc) *Server {
	t.Helper()
	bin := Require(t)
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("centrifugotest: Shared needs the package's TestMain to call centrifugotest.Main")
	}
	if s := shared.centrifugo[key]; s != nil {
		return s
	}
	dir, err := os.MkdirTemp("", "centrifugotest-")
	if err != nil {
		t.Fatal(err)
	}
	s, err := start(bin, dir, cfg)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("centrifugotest: %v", err)
	}
	if shared.centrifugo == nil {
		shared.centrifugo = map[string]*Server{}
	}
	shared.centrifugo[key] = s
	shared.stop = append(shared.stop, func() { s.Stop(); _ = os.RemoveAll(dir) })
	return s
}

// SharedPostgres gives t a database of its own, dropped when t ends, on
// the package's one PostgreSQL, started at the first call and stopped
// after the last test (the package's TestMain calls Main).
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	shared.Lock()
	if !shared.main {
		shared.Unlock()
		t.Fatal("centrifugotest: SharedPostgres needs the package's TestMain to call centrifugotest.Main")
	}
	if shared.pg == nil && shared.err == nil {
		var stop func()
		if shared.pg, stop, shared.err = startPostgres(); stop != nil {
			shared.stop = append(shared.stop, stop)
		}
	}
	shared.dbs++
	server, err, name := shared.pg, shared.err, fmt.Sprintf("test_%d", shared.dbs)
	shared.Unlock()
	if errors.Is(err, errMissing) {
		need(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	psql := func(sql string) error {
		out, err := server.as("psql", "-h", "127.0.0.1", "-p", strconv.Itoa(server.Port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := psql("CREATE DATABASE " + name); err != nil {
		t.Fatalf("centrifugotest: create database: %v", err)
	}
	t.Cleanup(func() { _ = psql("DROP DATABASE " + name + " WITH (FORCE)") })
	return &Postgres{Port: server.Port, DSN: dsn(server.Port, name), as: server.as}
}

func waitPostgres(as func(string, ...string) *exec.Cmd, port int, done chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, err := as("pg_isready", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q").CombinedOutput()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres exited: %s", strings.TrimSpace(string(out)))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %v", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitTCP(addr string, done chan struct{}, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("exited before listening on %s", addr)
		case <-ctx.Done():
			return fmt.Errorf("nothing listening on %s after %v", addr, limit)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
