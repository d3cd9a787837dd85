package instant

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Centrifugo's default channel.private_prefix and channel.max_length.
const privatePrefix, maxChannelLength = "$", 255

func isPrivate(channel string) bool { return strings.HasPrefix(channel, privatePrefix) }

// validChannel checks that a Centrifugo v6 client may subscribe to name,
// its namespace included. Errors wrap ErrInvalidChannel.
func validChannel(name string) error {
	if err := checkName(name, "channel"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidChannel, err)
	}
	if ns, _, found := strings.Cut(strings.TrimPrefix(name, privatePrefix), ":"); found && ns != "" && (len(ns) < 2 || !namespaceChars(ns)) {
		return fmt.Errorf("%w: %q: namespace %q %s", ErrInvalidChannel, name, ns, namespaceRule)
	}
	return nil
}

// checkName checks a user ID, group, client id, channel or pattern (what):
// 1 to 255 bytes of UTF-8, no space or control, ASCII for channels, patterns.
func checkName(s, what string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > maxChannelLength {
		return fmt.Errorf("%s longer than %d bytes", what, maxChannelLength)
	}
	for k, r := range s {
		switch {
		case r >= utf8.RuneSelf && (what == "channel" || what == "pattern"):
			return fmt.Errorf("%s holds a non-ASCII character at byte %d: Centrifugo refuses it to clients", what, k)
		case r == utf8.RuneError && !strings.HasPrefix(s[k:], "\uFFFD"):
			return fmt.Errorf("%s is not valid UTF-8", what)
		case r <= ' ' || unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\ufeff':
			return fmt.Errorf("%s holds whitespace or a control character at byte %d", what, k)
		}
	}
	return nil
}

// namespaceOf returns a channel's namespace, "" for none.
func namespaceOf(channel string) string {
	if ns, _, found := strings.Cut(strings.TrimPrefix(channel, privatePrefix), ":"); found {
		return ns
	}
	return ""
}

const namespaceRule = "is not a namespace Centrifugo accepts (^[-a-zA-Z0-9_.]{2,}$: two or more ASCII letters, digits, '-', '_' or '.')"

// namespaceChars reports whether s holds only ASCII letters, digits, "-_.".
func namespaceChars(s string) bool {
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == ""
}

// UserChannel names the channel only the user with this ID reads
// ("$<slug>_user:42"; an ID too long or not of ASCII letters, digits and
// "-_." as "~" and its base64url SHA-256), or "" for an invalid ID.
func (i *Instant) UserChannel(userID string) string {
	if i == nil || checkName(userID, "ID") != nil {
		return ""
	}
	prefix := i.channels.userPrefix
	if len(prefix)+len(userID) <= maxChannelLength && namespaceChars(userID) {
		return prefix + userID
	}
	sum := sha256.Sum256([]byte(userID))
	return prefix + "~" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// newEventID returns 16 random bytes in hex.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
