// Package centrifugotest starts a real Centrifugo server for tests: it
// finds the binary, writes a config, starts it on a free loopback port,
// waits for /health and stops it when the test ends.
//
// The binary is, in order: $CENTRIFUGO_BIN; bin/centrifugo in this
// directory or a parent (where `make centrifugo` installs it); centrifugo on
// PATH. It must be Version (checked from its build info). When none is
// found the test is skipped, except under CI=true, where it fails. The
// server is given the test's environment without CENTRIFUGO_BIN.
package centrifugotest

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Centrifugo release the tests run against.
const Version = "v6.9.1"

// Module is the module path `go install` takes, with Version.
const Module = "github.com/centrifugal/centrifugo/v6"

// HTTP sends a test's own requests (browsers, API calls, health checks)
// on a transport of its own: httptest.Server.Close closes
// http.DefaultTransport's idle connections, and a parallel test's POST that
// had just taken one of them failed with "CloseIdleConnections called" (a
// POST is not retried).
var HTTP = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// Server is a running Centrifugo.
type Server struct {
	Port         int
	HTTPURL      string // http://127.0.0.1:port
	APIURL       string // HTTPURL + "/api"
	WebsocketURL string // ws://127.0.0.1:port/connection/websocket

	bin, dir, conf string   // to start it again
	env            []string // its whole environment; nil: the test's, less CENTRIFUGO_BIN
	out            *syncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// ConfigFunc returns the JSON config for a server listening on port.
type ConfigFunc func(port int) ([]byte, error)

// Binary finds the Centrifugo binary (see the package comment).
func Binary() (string, error) {
	var tried []string
	if p := os.Getenv("CENTRIFUGO_BIN"); p != "" {
		if err := checkVersion(p); err != nil {
			return "", err
		}
		return p, nil
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			p := filepath.Join(dir, "bin", "centrifugo")
			if _, err := os.Stat(p); err == nil {
				if err := checkVersion(p); err == nil {
					return p, nil
				} else {
					tried = append(tried, err.Error())
				}
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("centrifugo"); err == nil {
		if err := checkVersion(p); err == nil {
			return p, nil
		} else {
			tried = append(tried, err.Error())
		}
	}
	tried = append(tried, "install it with `make centrifugo` (GOBIN=$PWD/bin go install "+Module+"@"+Version+")")
	return "", fmt.Errorf("centrifugotest: no centrifugo %s found: %s", Version, joinLines(tried))
}

func joinLines(s []string) string {
	var b bytes.Buffer
	for k, l := range s {
		if k > 0 {
			b.WriteString("; ")
		}
		b.WriteString(l)
	}
	return b.String()
}

func checkVersion(path string) error {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if info.Main.Path != Module || info.Main.Version != Version {
		return fmt.Errorf("%s is %s@%s, want %s", path, info.Main.Path, info.Main.Version, Version)
	}
	return nil
}

// Require returns the binary, or ends the test: Fatal under CI=true (a
// missing server must fail CI), Skip elsewhere.
func Require(t testing.TB) string {
	t.Helper()
	p, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("%v", err)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts Centrifugo with the config from cfg and stops it when t ends.
func Start(t testing.TB, cfg ConfigFunc) *Server {
	t.Helper()
	s, err := start(Require(t), t.TempDir(), cfg)
	if err != nil {
		t.Fatalf("centrifugotest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// start starts Centrifugo in dir, on a free port: three tries, since the
// port may be taken before Centrifugo binds it.
func start(bin, dir string, cfg ConfigFunc) (s *Server, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		if s, err = startOnce(bin, dir, cfg); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func startOnce(bin, dir string, cfg ConfigFunc) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	conf, err := cfg(port)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		return nil, err
	}
	s := newServer(bin, dir, port, path)
	if err := s.run(); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(bin, dir string, port int, conf string) *Server {
	s := &Server{
		Port:         port,
		HTTPURL:      "http://127.0.0.1:" + strconv.Itoa(port),
		WebsocketURL: "ws://127.0.0.1:" + strconv.Itoa(port) + "/connection/websocket",
		bin:          bin,
		dir:          dir,
		conf:         conf,
		out:          &syncBuffer{},
	}
	s.APIURL = s.HTTPURL + "/api"
	return s
}

// Run runs Centrifugo with -c conf (a path that may name no file: it then
// runs on its defaults and env) and env as its whole environment, which
// sets port, until t ends; it returns once /health answers on port.
func Run(t testing.TB, port int, conf string, env map[string]string) *Server {
	t.Helper()
	s := newServer(Require(t), t.TempDir(), port, conf)
	s.env = []string{}
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	if err := s.run(); err != nil {
		t.Fatalf("centrifugotest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// run starts the process and waits until it is healthy.
func (s *Server) run() error {
	cmd := exec.Command(s.bin, "-c", s.conf)
	cmd.Dir = s.dir
	cmd.Env = s.env
	if s.env == nil {
		cmd.Env = childEnv(os.Environ())
	}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitHealthy(20 * time.Second); err != nil {
		s.Stop()
		return fmt.Errorf("%w\n--- centrifugo output ---\n%s", err, s.out.String())
	}
	return nil
}

// childEnv is env without CENTRIFUGO_BIN, which names the binary for the
// harness and is no setting of Centrifugo's (it would warn "unknown var in
// environment" of it).
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CENTRIFUGO_BIN=") {
			out = append(out, kv)
		}
	}
	return out
}

// Restart starts the stopped server again, on the same port with the same
// config (a node coming back after an outage).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.run(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond) // the port may linger
	}
	t.Fatalf("centrifugotest: restart: %v", err)
}

func (s *Server) waitHealthy(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.HTTPURL+"/health", nil)
		resp, err := HTTP.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		s.mu.Lock()
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
			return errors.New("centrifugo exited before it was healthy")
		case <-ctx.Done():
			return fmt.Errorf("centrifugo not healthy after %v", limit)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends the server and waits for it to exit. It may be called twice.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Output is what the server printed so far.
func (s *Server) Output() string { return s.out.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
