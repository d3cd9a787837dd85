package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-instant/instant/internal/centrifugotest"
)

func TestFindCentrifugoReportsWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "centrifugo")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable() // a Go binary, but not Centrifugo
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ path, want string }{
		"missing":        {filepath.Join(dir, "nope"), "no centrifugo binary at"},
		"directory":      {dir, "not an executable file"},
		"not executable": {notExec, "not an executable file"},
		"another binary": {self, "not Centrifugo v6"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := findCentrifugo(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line holding %q", err, tc.want)
			}
		})
	}
}

func TestFindCentrifugoDefaultsToTheTestBinary(t *testing.T) {
	want := centrifugotest.Require(t)
	got, err := findCentrifugo("")
	if err != nil || got != want {
		t.Errorf("findCentrifugo(\"\") = %q, %v; want %q", got, err, want)
	}
	if got, err := findCentrifugo(want); err != nil || got != want {
		t.Errorf("findCentrifugo(%q) = %q, %v", want, got, err)
	}
}

func TestListenLoopbackFallsBackOnlyWhenAllowed(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port

	ln, err := listenLoopback(port, true)
	if err != nil {
		t.Fatalf("with fallback: %v", err)
	}
	if got := ln.Addr().(*net.TCPAddr); got.Port == port || !got.IP.IsLoopback() {
		t.Errorf("fell back to %v", got)
	}
	ln.Close()

	if _, err := listenLoopback(port, false); err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(port)+" on 127.0.0.1 is taken") {
		t.Errorf("without fallback: %v", err)
	}
	if p, err := pickPort(0, false); err != nil || p == 0 {
		t.Errorf("pickPort(0) = %d, %v", p, err)
	}
}

func TestCentrifugoProcessStartsAndStops(t *testing.T) {
	bin := centrifugotest.Require(t)
	dir := t.TempDir()
	port, err := centrifugotest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := centrifugoConfigFor(1)(port)
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "centrifugo.json")
	if err := writePrivateFile(confPath, conf); err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	p, err := startCentrifugo(context.Background(), bin, confPath, filepath.Join(dir, "centrifugo.log"), url, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop(time.Second)
	resp, err := http.Get(url + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %v", err)
	}
	resp.Body.Close()

	start := time.Now()
	p.stop(5 * time.Second)
	if done, _ := p.exited(); !done {
		t.Fatal("centrifugo still runs after stop")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("stopping took %v: SIGTERM was not enough", d)
	}
	if _, err := http.Get(url + "/health"); err == nil {
		t.Error("centrifugo still answers after stop")
	}
	p.stop(time.Second) // a second stop is harmless
}

func TestCentrifugoWithABadConfigFailsClearly(t *testing.T) {
	bin := centrifugotest.Require(t)
	dir := t.TempDir()
	confPath := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(confPath, []byte(`{"http_server": {"port": "not a port"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	port, _ := centrifugotest.FreePort()
	_, err := startCentrifugo(context.Background(), bin, confPath, filepath.Join(dir, "centrifugo.log"), "http://127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "centrifugo exited before it was ready") {
		t.Errorf("err = %v", err)
	}
}
