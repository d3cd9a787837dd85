package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gin-instant/instant/example_app/internal/centrifugo"
)

// Default settings of the demo.
const (
	defaultPort           = 8080
	defaultCentrifugoPort = 8000
	defaultDir            = ".demo"
	defaultCentrifugeJS   = "node_modules/centrifuge/dist/centrifuge.js"
)

// options are the demo's settings, from flags first, then the environment,
// then the defaults.
type options struct {
	// Port is the site's port on 127.0.0.1. 0 means any free port.
	Port int
	// PortSet is true when Port came from a flag or the environment: a
	// taken port is then an error rather than a reason to pick another.
	PortSet bool
	// CentrifugoPort and CentrifugoPortSet are the same for Centrifugo.
	CentrifugoPort    int
	CentrifugoPortSet bool
	// Centrifugo is the path of the centrifugo binary; empty means search
	// for it as the tests do ($CENTRIFUGO_BIN, bin/centrifugo, PATH).
	Centrifugo string
	// Dir keeps the secrets and the generated Centrifugo config.
	Dir string
	// CentrifugeJS is the browser client installed by npm.
	CentrifugeJS string
	// Server is the realtime server: serverEmbedded (the default: in the
	// site's own process) or serverCentrifugo (a Centrifugo started for
	// the site).
	Server string
}

// The realtime servers the demo runs on.
const (
	serverEmbedded   = "embedded"
	serverCentrifugo = "centrifugo"
)

// errHelp is returned by parseOptions for -h: usage was printed, exit 0.
var errHelp = flag.ErrHelp

// parseOptions reads args (without the program name) and the environment
// through getenv. usage receives the help text for -h.
func parseOptions(args []string, getenv func(string) string, usage io.Writer) (options, error) {
	o := options{
		Port:           defaultPort,
		CentrifugoPort: defaultCentrifugoPort,
		Dir:            defaultDir,
		CentrifugeJS:   defaultCentrifugeJS,
		Server:         serverEmbedded,
	}

	// The environment first, so that flags override it.
	var errs []error
	envPort := func(name string, dst *int, set *bool) {
		v := getenv(name)
		if v == "" {
			return
		}
		p, err := parsePort(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			return
		}
		*dst, *set = p, true
	}
	envPort("DEMO_PORT", &o.Port, &o.PortSet)
	envPort("DEMO_CENTRIFUGO_PORT", &o.CentrifugoPort, &o.CentrifugoPortSet)
	if v := getenv("DEMO_DIR"); v != "" {
		o.Dir = v
	}
	if v := getenv("CENTRIFUGO_BIN"); v != "" {
		o.Centrifugo = v
	}
	if v := getenv("DEMO_SERVER"); v != "" {
		o.Server = v
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}

	fs := flag.NewFlagSet("example_app", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by the caller, on one line
	fs.Var(portFlag{&o.Port, &o.PortSet}, "port", "site port on 127.0.0.1, 0 for any free port (env DEMO_PORT; default 8080, or a free port when taken)")
	fs.Var(portFlag{&o.CentrifugoPort, &o.CentrifugoPortSet}, "centrifugo-port", "Centrifugo port on 127.0.0.1, 0 for any free port (env DEMO_CENTRIFUGO_PORT; default 8000, or a free port when taken)")
	fs.StringVar(&o.Centrifugo, "centrifugo", o.Centrifugo, "path of the centrifugo "+centrifugo.Version+" binary (env CENTRIFUGO_BIN; default: bin/centrifugo in a parent directory, then PATH)")
	fs.StringVar(&o.Dir, "dir", o.Dir, "directory for the secrets and the Centrifugo config (env DEMO_DIR)")
	fs.StringVar(&o.CentrifugeJS, "centrifuge-js", o.CentrifugeJS, "centrifuge.js installed by `npm install`")
	fs.StringVar(&o.Server, "server", o.Server, "the realtime server: embedded (in the site's process) or centrifugo (started for the site) (env DEMO_SERVER)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(usage, "usage: go run . [flags]\n\nRuns the instant demo site on 127.0.0.1, its realtime served from its own process\n(or by a Centrifugo server started for it, with -server centrifugo).\n\nflags:")
			fs.SetOutput(usage)
			fs.PrintDefaults()
			return o, errHelp
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	if o.Dir == "" {
		return o, errors.New("-dir must not be empty")
	}
	if o.Server != serverEmbedded && o.Server != serverCentrifugo {
		return o, fmt.Errorf("-server must be %s or %s, got %q", serverEmbedded, serverCentrifugo, o.Server)
	}
	if o.PortSet && o.CentrifugoPortSet && o.Port != 0 && o.Port == o.CentrifugoPort {
		return o, fmt.Errorf("-port and -centrifugo-port are both %d", o.Port)
	}
	return o, nil
}

// portFlag is a flag.Value for a TCP port that records it was set.
type portFlag struct {
	port *int
	set  *bool
}

func (p portFlag) String() string {
	if p.port == nil {
		return ""
	}
	return strconv.Itoa(*p.port)
}

func (p portFlag) Set(s string) error {
	n, err := parsePort(s)
	if err != nil {
		return err
	}
	*p.port, *p.set = n, true
	return nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 65535 {
		return 0, errors.New("not a port number (0-65535)")
	}
	return n, nil
}
