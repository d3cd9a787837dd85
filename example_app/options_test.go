package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseOptions(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want options
	}{
		{"defaults", nil, nil, options{Port: 8080, CentrifugoPort: 8000, Dir: ".demo", CentrifugeJS: defaultCentrifugeJS, Server: serverEmbedded}},
		{"flags", []string{"-port", "9090", "-centrifugo-port=0", "-centrifugo", "/x/centrifugo", "-dir", "/tmp/d"}, nil,
			options{Port: 9090, PortSet: true, CentrifugoPort: 0, CentrifugoPortSet: true, Centrifugo: "/x/centrifugo", Dir: "/tmp/d", CentrifugeJS: defaultCentrifugeJS, Server: serverEmbedded}},
		{"environment", nil, map[string]string{"DEMO_PORT": "9000", "DEMO_CENTRIFUGO_PORT": "9001", "CENTRIFUGO_BIN": "/y", "DEMO_DIR": "d"},
			options{Port: 9000, PortSet: true, CentrifugoPort: 9001, CentrifugoPortSet: true, Centrifugo: "/y", Dir: "d", CentrifugeJS: defaultCentrifugeJS, Server: serverEmbedded}},
		{"centrifugo", []string{"-server", "centrifugo"}, nil,
			options{Port: 8080, CentrifugoPort: 8000, Dir: ".demo", CentrifugeJS: defaultCentrifugeJS, Server: serverCentrifugo}},
		{"centrifugo from the environment", nil, map[string]string{"DEMO_SERVER": "centrifugo"},
			options{Port: 8080, CentrifugoPort: 8000, Dir: ".demo", CentrifugeJS: defaultCentrifugeJS, Server: serverCentrifugo}},
		{"flags win over the environment", []string{"-port", "7000"}, map[string]string{"DEMO_PORT": "9000"},
			options{Port: 7000, PortSet: true, CentrifugoPort: 8000, Dir: ".demo", CentrifugeJS: defaultCentrifugeJS, Server: serverEmbedded}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOptions(tc.args, env(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseOptionsErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"port not a number", []string{"-port", "abc"}, nil, `invalid value "abc" for flag -port`},
		{"port out of range", []string{"-port=70000"}, nil, "not a port number"},
		{"negative port", []string{"-centrifugo-port=-1"}, nil, "not a port number"},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined: -nope"},
		{"extra argument", []string{"serve"}, nil, `unexpected argument "serve"`},
		{"bad env port", nil, map[string]string{"DEMO_PORT": "x"}, `DEMO_PORT="x"`},
		{"same ports", []string{"-port", "9000", "-centrifugo-port", "9000"}, nil, "both 9000"},
		{"empty dir", []string{"-dir", ""}, nil, "-dir must not be empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOptions(tc.args, env(tc.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to hold %q", err, tc.want)
			}
		})
	}
}

func TestParseOptionsHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseOptions([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, errHelp) {
		t.Fatalf("err = %v, want errHelp", err)
	}
	for _, want := range []string{"-port", "-centrifugo-port", "-centrifugo", "-dir", "DEMO_PORT", "CENTRIFUGO_BIN"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not mention %s:\n%s", want, out.String())
		}
	}
}
