package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
	"github.com/gin-instant/instant/example_app/internal/centrifugo"
)

// Files the demo writes into its directory, besides secrets.json.
const (
	centrifugoConfigFile = "centrifugo.json"
	centrifugoLogFile    = "centrifugo.log"
)

// shutdownGrace bounds the site's shutdown on Ctrl-C.
const shutdownGrace = 5 * time.Second

// run starts the site on 127.0.0.1, its realtime served from its own
// process (the embedded server) or by a Centrifugo started for it, checks
// that they fit (instant.Check, printed with the banner), and serves until
// ctx ends (Ctrl-C), then stops everything. Every failure to start is
// returned as an error that says what to fix.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, os.Getenv, stdout)
	if err != nil {
		return err
	}
	onCentrifugo := o.Server == serverCentrifugo
	var bin string
	if onCentrifugo {
		if bin, err = centrifugo.Find(o.Centrifugo); err != nil {
			return err
		}
	}
	clientJS, err := readCentrifugeJS(o.CentrifugeJS)
	if err != nil {
		return err
	}
	sec, created, err := loadOrCreateSecrets(o.Dir)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}

	// The site's port first: Centrifugo must know the site's origin.
	ln, err := listenLoopback(o.Port, !o.PortSet)
	if err != nil {
		return fmt.Errorf("site: %w", err)
	}
	defer ln.Close()
	appPort := ln.Addr().(*net.TCPAddr).Port
	appURL := "http://127.0.0.1:" + strconv.Itoa(appPort)
	gin.SetMode(gin.ReleaseMode)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	var cfg instant.Config
	var cPort int
	var centrifugoURL string
	if onCentrifugo {
		if cPort, err = pickPort(o.CentrifugoPort, !o.CentrifugoPortSet); err != nil {
			return fmt.Errorf("centrifugo: %w", err)
		}
		centrifugoURL = "http://127.0.0.1:" + strconv.Itoa(cPort)
		cfg = demoConfig(centrifugoURL+"/api", sec)
	} else {
		srv, err := embedded.New(embedded.Options{Logger: logger})
		if err != nil {
			return fmt.Errorf("the embedded server: %w", err)
		}
		defer srv.Close()
		cfg = demoConfig("", sec)
		cfg.Server = srv
	}
	st, err := newSite(siteConfig{
		Instant:      cfg,
		Port:         appPort,
		Secrets:      sec,
		CentrifugeJS: clientJS,
		Logger:       logger,
	})
	if err != nil {
		return err
	}

	// Centrifugo, with the config the site's Instant writes.
	var centDone <-chan struct{} // nil, never ready, on the embedded server
	logPath := filepath.Join(o.Dir, centrifugoLogFile)
	var cent *centrifugo.Server
	if onCentrifugo {
		conf, err := st.inst.CentrifugoConfig(centrifugoOptions(cPort, appPort))
		if err != nil {
			return err
		}
		confPath := filepath.Join(o.Dir, centrifugoConfigFile)
		if err := writePrivateFile(confPath, conf); err != nil {
			return fmt.Errorf("writing the centrifugo config: %w", err)
		}
		cent, err = centrifugo.Start(ctx, centrifugo.Options{Binary: bin, Config: confPath, URL: centrifugoURL, LogFile: logPath})
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted while starting
			}
			return err
		}
		defer cent.Stop()
		centDone = cent.Done()
	}
	checked := st.inst.Check(ctx) // does the server fit the site? Each problem with its fix.

	srv := newServer(st.Handler(), logger, siteTimeouts())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var notes []string
	if !o.PortSet && appPort != o.Port {
		notes = append(notes, fmt.Sprintf("port %d was taken, so the site uses %d", o.Port, appPort))
	}
	if onCentrifugo && !o.CentrifugoPortSet && cPort != o.CentrifugoPort {
		notes = append(notes, fmt.Sprintf("port %d was taken, so Centrifugo uses %d", o.CentrifugoPort, cPort))
	}
	printBanner(stdout, banner{
		Notes:         notes,
		URL:           appURL,
		CentrifugoURL: centrifugoURL,
		Binary:        bin,
		Dir:           o.Dir,
		NewSecrets:    created,
		Check:         checked,
		Accounts:      st.users.accounts(),
	})

	var runErr error
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nstopping the site…")
	case <-centDone:
		runErr = fmt.Errorf("centrifugo stopped (%v); see %s", cent.Err(), logPath)
	case err := <-served:
		runErr = fmt.Errorf("site: %w", err)
	}

	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = srv.Close()
	}
	if cent != nil {
		cent.Stop()
	}
	if runErr == nil {
		fmt.Fprintln(stdout, "stopped.")
	}
	return runErr
}

// timeouts bound how long a client may hold a connection to the site.
type timeouts struct {
	// ReadHeader bounds reading a request's header; Read, its header
	// and body.
	ReadHeader, Read time.Duration
	// Write bounds a request's handling and answer, from the end of its
	// header.
	Write time.Duration
	// Idle bounds the wait for the next request on a kept-alive
	// connection.
	Idle time.Duration
}

// siteTimeouts are the site's: a slow or idle client cannot hold a
// connection for long. The site serves no long-lived answer (no streams:
// the websockets go to Centrifugo), and its slowest handler, a broadcast,
// is bounded by the PublishTimeout of 5 s, well within Write.
func siteTimeouts() timeouts {
	return timeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 30 * time.Second, Idle: 15 * time.Second}
}

// newServer is the site's HTTP server: handler h, limits t, and its
// errors (a bad request, a TLS probe) logged as warnings.
func newServer(h http.Handler, logger *slog.Logger, t timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// centrifugoOptions are the demo's Centrifugo settings: loopback only,
// browsers allowed from the site's origin (by IP and by name), a short
// history so that a reconnecting page recovers what it missed.
func centrifugoOptions(centrifugoPort, appPort int) instant.CentrifugoOptions {
	p := strconv.Itoa(appPort)
	return instant.CentrifugoOptions{
		Address:        "127.0.0.1",
		Port:           centrifugoPort,
		AllowedOrigins: []string{"http://127.0.0.1:" + p, "http://localhost:" + p},
		HistorySize:    50,
		HistoryTTL:     10 * time.Minute,
		Presence:       true, // the home page lists who is on $site_users
		LogLevel:       "info",
	}
}

// readCentrifugeJS reads the browser client installed by npm.
func readCentrifugeJS(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s not found: run `npm install` in example_app (`make demo` does)", path)
	case err != nil:
		return nil, err
	case len(b) == 0:
		return nil, fmt.Errorf("%s is empty: run `npm install` in example_app again", path)
	}
	return b, nil
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

// banner is what the demo prints once it is up.
type banner struct {
	URL, CentrifugoURL, Binary, Dir string
	NewSecrets                      bool
	Check                           error // what instant.Check found
	Accounts                        []account
	Notes                           []string // e.g. a default port that was taken
}

func printBanner(w io.Writer, b banner) {
	secretsNote := "kept in"
	if b.NewSecrets {
		secretsNote = "made new, kept in"
	}
	fmt.Fprintf(w, "\ninstant demo is running: %s/\n\n", b.URL)
	if b.CentrifugoURL == "" {
		fmt.Fprintln(w, "  realtime    served by the site's own process (github.com/gin-instant/instant/embedded)")
	} else {
		fmt.Fprintf(w, "  centrifugo  %s (%s, log in %s)\n", b.CentrifugoURL, b.Binary, filepath.Join(b.Dir, centrifugoLogFile))
	}
	fmt.Fprintf(w, "  secrets     %s %s\n", secretsNote, filepath.Join(b.Dir, secretsFile))
	printCheck(w, b.Check)
	for _, n := range b.Notes {
		fmt.Fprintf(w, "  note        %s\n", n)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Demo accounts:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  username\tpassword\trole")
	for _, a := range b.Accounts {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.User.Username, a.Password, a.Role())
	}
	tw.Flush()
	fmt.Fprintf(w, "\nOpen %s/login, log in as admin and broadcast from %s/broadcast.\nPress Ctrl-C to stop.\n", b.URL, b.URL)
}

// printCheck prints what instant.Check found: one line when Centrifugo
// fits the site, else every problem, each with its fix, one a line.
func printCheck(w io.Writer, err error) {
	if err == nil {
		fmt.Fprintln(w, "  check       ok: the realtime server fits the site (instant.Check)")
		return
	}
	problems := strings.Split(strings.TrimSpace(err.Error()), "\n")
	plural := "s"
	if len(problems) == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "  check       instant.Check found %d problem%s, each with its fix:\n", len(problems), plural)
	for _, p := range problems {
		fmt.Fprintf(w, "              %s\n", p)
	}
}
