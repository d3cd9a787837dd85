package main

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
	"syscall"
	"time"
)

// The Centrifugo release the demo is tested with, and its module.
const (
	centrifugoVersion = "v6.9.1"
	centrifugoModule  = "github.com/centrifugal/centrifugo/v6"
)

// findCentrifugo returns the Centrifugo binary: path when given (the
// -centrifugo flag or $CENTRIFUGO_BIN), else bin/centrifugo in this
// directory or a parent (where `make centrifugo` installs it), else
// centrifugo on PATH, either of them centrifugoVersion.
func findCentrifugo(path string) (string, error) {
	if path == "" {
		p, ok := defaultCentrifugo()
		if !ok {
			return "", fmt.Errorf("no centrifugo %s binary found: run `make centrifugo` in the repository root, or pass -centrifugo PATH", centrifugoVersion)
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
	if bi, err := buildinfo.ReadFile(path); err == nil && bi.Main.Path != "" && bi.Main.Path != centrifugoModule {
		return "", fmt.Errorf("%s is %s, not Centrifugo v6 (%s)", path, bi.Main.Path, centrifugoModule)
	}
	return path, nil
}

// defaultCentrifugo looks for a centrifugoVersion binary in bin/ of this
// directory or a parent, then on PATH.
func defaultCentrifugo() (string, bool) {
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
		if err == nil && bi.Main.Path == centrifugoModule && bi.Main.Version == centrifugoVersion {
			return p, true
		}
	}
	return "", false
}

// listenLoopback listens on 127.0.0.1:port. When the port is taken and
// fallback is true, it listens on a free port instead.
func listenLoopback(port int, fallback bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err == nil {
		return ln, nil
	}
	if !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, portError(port, err)
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// pickPort returns port when it is free on 127.0.0.1 (0 means any free
// port). When it is taken and fallback is true, it returns a free port.
// The port is free when checked; Centrifugo binds it a moment later.
func pickPort(port int, fallback bool) (int, error) {
	ln, err := listenLoopback(port, fallback)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func portError(port int, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("port %d on 127.0.0.1 is taken (use another port, or 0 for any free port)", port)
	}
	return fmt.Errorf("cannot listen on 127.0.0.1:%d: %v", port, err)
}

// centrifugoProcess is a Centrifugo server started by the demo.
type centrifugoProcess struct {
	cmd     *exec.Cmd
	httpURL string
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// startCentrifugo runs bin with the config file, its output going to
// logPath, and waits until httpURL/health answers 200 (at most limit).
// The process is stopped when the start fails.
func startCentrifugo(ctx context.Context, bin, configPath, logPath, httpURL string, limit time.Duration) (*centrifugoProcess, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("cannot start centrifugo: %w", err)
	}
	p := &centrifugoProcess{cmd: cmd, httpURL: httpURL, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	if err := p.waitHealthy(ctx, limit); err != nil {
		p.stop(2 * time.Second)
		if last := lastLine(logPath); last != "" {
			err = fmt.Errorf("%w; it said: %s", err, last)
		}
		return nil, err
	}
	return p, nil
}

func (p *centrifugoProcess) waitHealthy(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.httpURL+"/health", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("centrifugo exited before it was ready (%v)", p.waitErr)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("centrifugo did not answer %s/health within %v", p.httpURL, limit)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop asks Centrifugo to shut down (SIGTERM) and kills it when it has
// not exited within grace. It may be called more than once.
func (p *centrifugoProcess) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended, and how.
func (p *centrifugoProcess) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// lastLine returns the last non-empty line of a log file, shortened.
func lastLine(path string) string {
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
