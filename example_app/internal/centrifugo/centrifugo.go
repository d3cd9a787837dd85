// Package centrifugo runs the demo's Centrifugo server: it finds the
// binary, starts it with a config file, waits until it answers, and stops
// it. The site calls it in a few lines:
//
//	bin, err := centrifugo.Find(path) // "" searches bin/ and PATH
//	srv, err := centrifugo.Start(ctx, centrifugo.Options{Binary: bin, Config: file, URL: url})
//	defer srv.Stop()
//
// The config file is the server's whole configuration: Centrifugo v6 reads
// any CENTRIFUGO_ variable of its environment as a setting (and warns
// "unknown var in environment" of the ones it does not know, such as
// CENTRIFUGO_BIN), so the process is given the environment without them.
package centrifugo

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The Centrifugo release the demo is tested with, and its module.
const (
	Version = "v6.9.1"
	Module  = "github.com/centrifugal/centrifugo/v6"
)

// Defaults of Options.
const (
	DefaultStartLimit = 20 * time.Second
	DefaultStopGrace  = 5 * time.Second
)

// Find returns the Centrifugo binary: path when given (checked to be an
// executable Centrifugo v6), else bin/centrifugo in the working directory
// or a parent (where `make centrifugo` installs it), else centrifugo on
// PATH, either of them Version. Its errors are one line, saying what to do.
func Find(path string) (string, error) {
	if path == "" {
		p, ok := search()
		if !ok {
			return "", fmt.Errorf("no centrifugo %s binary found: run `make centrifugo` in the repository root, or pass -centrifugo PATH", Version)
		}
		return p, nil
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("no centrifugo binary at %s: run `make centrifugo` in the repository root, or fix -centrifugo", path)
	case err != nil:
		return "", fmt.Errorf("centrifugo binary %s: %v", path, err)
	case info.IsDir() || info.Mode()&0o111 == 0:
		return "", fmt.Errorf("centrifugo binary %s is not an executable file", path)
	}
	// A Go build records its module: refuse another major version, whose
	// config keys differ. A binary without build info is given a chance.
	if bi, err := buildinfo.ReadFile(path); err == nil && bi.Main.Path != "" && bi.Main.Path != Module {
		return "", fmt.Errorf("%s is %s, not Centrifugo v6 (%s)", path, bi.Main.Path, Module)
	}
	return path, nil
}

// search looks for a Version binary in bin/ of the working directory or a
// parent, then on PATH.
func search() (string, bool) {
	var candidates []string
	if dir, err := os.Getwd(); err == nil {
		for {
			candidates = append(candidates, filepath.Join(dir, "bin", "centrifugo"))
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("centrifugo"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		bi, err := buildinfo.ReadFile(p)
		if err == nil && bi.Main.Path == Module && bi.Main.Version == Version {
			return p, true
		}
	}
	return "", false
}

// Options say which Centrifugo to run and how.
type Options struct {
	// Binary is the centrifugo executable (see Find). Required.
	Binary string
	// Config is the path of its config file. Required.
	Config string
	// URL is where it answers HTTP, "http://127.0.0.1:8000": Start waits
	// for URL/health to answer 200 (health.enabled in the config).
	// Required.
	URL string
	// LogFile is the file its output (stdout and stderr) is written to,
	// emptied first, mode 0600. Default: none, the output is discarded.
	LogFile string
	// StartLimit bounds the wait for its health. Default: 20 s.
	StartLimit time.Duration
	// StopGrace is how long Stop waits after SIGTERM before it kills the
	// process. Default: 5 s.
	StopGrace time.Duration
}

// Server is a running Centrifugo. Its methods are safe for concurrent use.
type Server struct {
	cmd   *exec.Cmd
	opts  Options
	done  chan struct{} // closed when the process has exited
	err   error         // how it exited; set before done is closed
	once  sync.Once
	stopd chan struct{} // closed when Stop has returned
}

// Start runs the binary with the config file and waits until URL/health
// answers (at most StartLimit, and while ctx lasts). When it does not, the
// process is stopped and the error says why, with the last line it logged
// into LogFile. The process runs in its own process group (on
// Linux), so that Ctrl-C reaches only the site, which then stops it in
// order, and the kernel stops it should the site die first.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Binary == "" || o.Config == "" || o.URL == "" {
		return nil, errors.New("centrifugo: Options need Binary, Config and URL")
	}
	if o.StartLimit <= 0 {
		o.StartLimit = DefaultStartLimit
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	cmd := exec.Command(o.Binary, "--config", o.Config)
	cmd.Env = Environ(os.Environ())
	cmd.SysProcAttr = procAttr()
	var logFile *os.File
	if o.LogFile != "" {
		f, err := os.OpenFile(o.LogFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("centrifugo's log: %w", err)
		}
		logFile, cmd.Stdout, cmd.Stderr = f, f, f
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("cannot start centrifugo: %w", err)
	}
	s := &Server{cmd: cmd, opts: o, done: make(chan struct{}), stopd: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(s.done)
	}()
	if err := s.waitHealthy(ctx); err != nil {
		s.Stop()
		if last := lastLine(o.LogFile); last != "" {
			err = fmt.Errorf("%w; it said: %s", err, last)
		}
		return nil, err
	}
	return s, nil
}

// Environ is env without the CENTRIFUGO_ variables: the environment
// Centrifugo is started with.
func Environ(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CENTRIFUGO_") {
			out = append(out, kv)
		}
	}
	return out
}

func (s *Server) waitHealthy(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, s.opts.StartLimit)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.opts.URL+"/health", nil)
		if err != nil {
			return fmt.Errorf("centrifugo: URL %q: %v", s.opts.URL, err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("centrifugo exited before it was ready (%v)", s.err)
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return err
			}
			return fmt.Errorf("centrifugo did not answer %s/health within %v", s.opts.URL, s.opts.StartLimit)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Done is closed when the process has exited, stopped or not.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is how the process exited (nil for status 0), once Done is closed;
// nil before.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Stop asks Centrifugo to shut down (SIGTERM) and kills it when it has not
// exited within StopGrace. It returns once the process has exited, and may
// be called more than once, from any goroutine.
func (s *Server) Stop() {
	s.once.Do(func() {
		defer close(s.stopd)
		select {
		case <-s.done:
			return
		default:
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			_ = s.cmd.Process.Kill()
		}
		select {
		case <-s.done:
		case <-time.After(s.opts.StopGrace):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	<-s.stopd
}

// lastLine returns the last non-empty line of a log file, shortened.
func lastLine(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	last := strings.TrimSpace(string(lines[len(lines)-1]))
	if len(last) > 300 {
		last = last[:300] + "…"
	}
	return last
}
