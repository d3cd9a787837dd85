// Command reachable exits 0 when a GET of its URL argument answers within
// five seconds with a status below 400, and 1 otherwise. The Makefile asks
// it whether govulncheck's database can be reached.
package main

import (
	"context"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, os.Args[1], nil)
	if err != nil {
		os.Exit(2)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		os.Exit(1)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		os.Exit(1)
	}
}
