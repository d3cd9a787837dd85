package embedded_test

// The README's first block, compiled here (TestREADMECodeBlocks, in the
// root module, finds it): the blank import that chooses the embedded
// server for the package-level Session and Register.

import (
	"github.com/gin-instant/instant"
	"github.com/gin-instant/instant/embedded"
)

import _ "github.com/gin-instant/instant/embedded" // the realtime server, in this process

// readmeRedis is the README's "several processes, one Redis" with an
// Instant of the app's own.
var _ = readmeRedis

func readmeRedis(secret string) error {
	srv, err := embedded.New(embedded.Options{RedisAddress: "redis://127.0.0.1:6379"})
	if err != nil {
		return err
	}
	defer srv.Close()
	inst, err := instant.New(instant.Config{TokenSecret: secret, Server: srv})
	_ = inst
	return err
}
