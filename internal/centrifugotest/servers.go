package centrifugotest

// Redis and PostgreSQL servers for tests, from Debian's redis-server and
// postgresql packages, each on a free loopback port in a temporary
// directory, stopped when the test ends. Missing binaries fail the test
// under CI=true and skip it elsewhere, as a missing Centrifugo does.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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
	DSN  string // postgres://postgres@127.0.0.1:port/postgres?sslmode=disable
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

// StartPostgres makes a throwaway cluster (initdb) and starts PostgreSQL on
// a free loopback port, stopping it and removing the cluster when t ends.
// Run as root, it runs both as the postgres system user, since they
// refuse root.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		need(t, "no PostgreSQL: apt-get install postgresql")
	}
	dir, err := os.MkdirTemp("", "instant-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		pu, err := user.Lookup("postgres")
		if err != nil {
			need(t, "running as root and no postgres system user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(pu.Uid)
		gid, _ := strconv.Atoi(pu.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
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
		t.Fatalf("centrifugotest: initdb: %v\n%s", err, out)
	}
	var last error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		cmd := as("postgres", "-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=200")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if last = waitPostgres(as, port, done, 20*time.Second); last == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
			})
			return &Postgres{Port: port, DSN: "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable"}
		}
		_ = cmd.Process.Kill()
		<-done
		last = fmt.Errorf("%w: %s", last, out.String())
	}
	t.Fatalf("centrifugotest: postgres: %v", last)
	return nil
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
