package embedded

import "github.com/gin-instant/instant/internal/seam"

// init registers the embedded server for the package-level Session and
// Register when the environment names no Centrifugo (a blank import
// chooses it), with INSTANT_REDIS_URL as Options.RedisAddress.
func init() {
	seam.Register(func(env func(string) string) (seam.Server, error) {
		return New(Options{RedisAddress: env("INSTANT_REDIS_URL")})
	})
}
