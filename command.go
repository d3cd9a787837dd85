package instant

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Command runs the command that args (os.Args[1:]) name, when it is one of
// these, for the app's own binary to offer:
//
//	centrifugo-config [FILE]  writes CentrifugoConfig(o) to FILE, readable
//	                          by its owner only (0600), or to standard output
//	check                     runs Check and, when it finds nothing, says so
//	                          on standard output
//
// and reports done: the app should then exit, with a non-zero status when
// err is not nil. err lists every problem, one a line. Any other args are
// the app's own, and Command returns (false, nil) having done nothing:
//
//	if done, err := inst.Command(os.Args[1:], opts); done {
//		return err // from a run() error that main reports and exits 1 on
//	}
func (i *Instant) Command(args []string, o CentrifugoOptions) (done bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	switch args[0] {
	case "centrifugo-config":
		if len(args) > 2 {
			return true, errors.New("instant: usage: centrifugo-config [FILE]")
		}
		conf, err := i.CentrifugoConfig(o)
		if err != nil {
			return true, err
		}
		if len(args) == 1 {
			_, err := os.Stdout.Write(append(conf, '\n'))
			return true, err
		}
		return true, writePrivateFile(args[1], append(conf, '\n'))
	case "check":
		if len(args) > 1 {
			return true, errors.New("instant: usage: check")
		}
		if i == nil {
			return true, ErrNotInstalled
		}
		if err := i.Check(context.Background()); err != nil {
			return true, err
		}
		_, err := fmt.Fprintf(os.Stdout, "instant: centrifugo at %s and %s fits the app\n", redactedURL(i.cfg.APIURL), i.cfg.WebsocketURL)
		return true, err
	}
	return false, nil
}

// writePrivateFile replaces the file at path by one holding data that only
// its owner reads: written beside it, then renamed over it, so that no
// reader meets half a file.
func writePrivateFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return fmt.Errorf("instant: writing the centrifugo config: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("instant: writing the centrifugo config: %w", err)
	}
	return nil
}
