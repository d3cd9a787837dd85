package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// secretsFile is the name of the secrets file inside the demo directory.
const secretsFile = "secrets.json"

// cookieKeyLength is the session cookie key: 32 bytes to sign the cookie
// and 32 to encrypt it.
const cookieKeyLength = 64

// secrets are made once, on the first run, and kept in <dir>/secrets.json
// (mode 0600) so that Centrifugo's config survives a restart. (Logins do
// not: the server keeps them in memory, see logins.go.)
// Each value is hex-encoded random bytes.
type secrets struct {
	// TokenSecret signs the Centrifugo tokens (client.token.hmac_secret_key).
	TokenSecret string `json:"token_secret"`
	// APIKey authenticates the site to Centrifugo's server API (http_api.key).
	APIKey string `json:"api_key"`
	// CookieKey signs (first half) and encrypts (second half) the session cookie.
	CookieKey string `json:"cookie_key"`
}

// loadOrCreateSecrets reads <dir>/secrets.json, or makes new secrets with
// crypto/rand and writes them there when the file does not exist. created
// reports which. A file that exists but is unreadable or too weak is an
// error, never silently replaced.
func loadOrCreateSecrets(dir string) (s secrets, created bool, err error) {
	path := filepath.Join(dir, secretsFile)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &s); err != nil {
			return secrets{}, false, fmt.Errorf("%s is not valid JSON (delete it to make new secrets): %v", path, err)
		}
		if err := s.check(); err != nil {
			return secrets{}, false, fmt.Errorf("%s: %v (delete it to make new secrets)", path, err)
		}
		// Keep the file private even if someone loosened it.
		if err := os.Chmod(path, 0o600); err != nil {
			return secrets{}, false, err
		}
		return s, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return secrets{}, false, err
	}

	s = secrets{
		TokenSecret: randomHex(32), // 64 characters, twice instant's minimum
		APIKey:      randomHex(24),
		CookieKey:   randomHex(cookieKeyLength),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return secrets{}, false, err
	}
	raw, err = json.MarshalIndent(s, "", "  ")
	if err != nil {
		return secrets{}, false, err
	}
	if err := writePrivateFile(path, append(raw, '\n')); err != nil {
		return secrets{}, false, err
	}
	return s, true, nil
}

// check reports a secret that is missing or too short.
func (s secrets) check() error {
	var errs []error
	if len(s.TokenSecret) < 32 { // instant.Config.TokenSecret: at least 32 bytes
		errs = append(errs, fmt.Errorf("token_secret must be at least %d characters", 32))
	}
	if len(s.APIKey) < 16 {
		errs = append(errs, errors.New("api_key must be at least 16 characters"))
	}
	if k, err := hex.DecodeString(s.CookieKey); err != nil || len(k) != cookieKeyLength {
		errs = append(errs, fmt.Errorf("cookie_key must be %d hex-encoded bytes", cookieKeyLength))
	}
	return errors.Join(errs...)
}

// cookieKeys returns the session store's signing and encryption keys.
func (s secrets) cookieKeys() (hashKey, blockKey []byte) {
	k, _ := hex.DecodeString(s.CookieKey) // checked by check
	return k[:cookieKeyLength/2], k[cookieKeyLength/2:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// writePrivateFile writes data to path with mode 0600, replacing the file
// atomically so that no reader sees half of it.
func writePrivateFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
