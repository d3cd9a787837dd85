package embedded

import "github.com/gin-instant/instant/internal/seam"

// init registers the embedded server as the one the package-level
// instant.Session and instant.Register use when the environment names no
// Centrifugo: a blank import chooses it. Nothing starts here; the factory
// runs when the package default Instant is built, with
// INSTANT_REDIS_URL as Options.RedisAddress (empty: memory).
func init() {
	seam.Register(func(env func(string) string) (seam.Server, error) {
		return New(Options{RedisAddress: env("INSTANT_REDIS_URL")})
	})
}
