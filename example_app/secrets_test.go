package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretsAreMadeOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".demo")
	s, created, err := loadOrCreateSecrets(dir)
	if err != nil || !created {
		t.Fatalf("first run: created %v, %v", created, err)
	}
	if err := s.check(); err != nil {
		t.Errorf("new secrets do not pass their own check: %v", err)
	}
	if len(s.TokenSecret) < 32 || s.TokenSecret == s.APIKey {
		t.Errorf("weak secrets: %+v", s)
	}
	path := filepath.Join(dir, secretsFile)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, info.Mode().Perm())
	}
	if d, _ := os.Stat(dir); d.Mode().Perm() != 0o700 {
		t.Errorf("%s has mode %v, want 0700", dir, d.Mode().Perm())
	}

	again, created, err := loadOrCreateSecrets(dir)
	if err != nil || created || again != s {
		t.Errorf("second run: created %v, err %v, same secrets %v", created, err, again == s)
	}

	other, _, err := loadOrCreateSecrets(t.TempDir())
	if err != nil || other.TokenSecret == s.TokenSecret || other.CookieKey == s.CookieKey {
		t.Errorf("two directories got the same secrets (%v)", err)
	}
}

func TestSecretsFileIsMadePrivateAgain(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := loadOrCreateSecrets(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, secretsFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateSecrets(dir); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
}

func TestBadSecretsFileIsAnError(t *testing.T) {
	cases := map[string]string{
		"not JSON":     "{",
		"short secret": `{"token_secret":"short","api_key":"` + strings.Repeat("k", 32) + `","cookie_key":"` + strings.Repeat("ab", 64) + `"}`,
		"bad cookie":   `{"token_secret":"` + strings.Repeat("t", 64) + `","api_key":"` + strings.Repeat("k", 32) + `","cookie_key":"zz"}`,
		"empty object": `{}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, secretsFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := loadOrCreateSecrets(dir)
			if err == nil || !strings.Contains(err.Error(), "delete it to make new secrets") {
				t.Errorf("err = %v, want an error that says how to fix it", err)
			}
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Error("the bad file was replaced")
			}
		})
	}
}

func TestCookieKeys(t *testing.T) {
	hashKey, blockKey := testSecrets.cookieKeys()
	if len(hashKey) != 32 || len(blockKey) != 32 {
		t.Errorf("key lengths %d and %d, want 32 and 32", len(hashKey), len(blockKey))
	}
}
