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

// privatePrefix starts every private channel, as Centrifugo's default
// channel.private_prefix.
const privatePrefix = "$"

// maxChannelLength is the longest channel name, in bytes (Centrifugo's
// default channel.max_length); user IDs and group names share it.
const maxChannelLength = 255

// isPrivate reports whether channel needs a subscription token.
func isPrivate(channel string) bool { return strings.HasPrefix(channel, privatePrefix) }

// validChannel checks that name is a channel a Centrifugo v6 client may
// subscribe to: 1 to 255 bytes of printable ASCII (Centrifugo refuses
// others to clients, though its API publishes to them), and a namespace
// (the part before the first ':', after a leading "$"), when not empty,
// that Centrifugo can declare. Errors wrap ErrInvalidChannel.
func validChannel(name string) error {
	if err := checkChannelName(name, "channel"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidChannel, err)
	}
	if ns, _, found := strings.Cut(strings.TrimPrefix(name, privatePrefix), ":"); found && ns != "" && (len(ns) < 2 || !namespaceChars(ns)) {
		return fmt.Errorf("%w: %q: namespace %q %s", ErrInvalidChannel, name, ns, namespaceRule)
	}
	return nil
}

// checkChannelName checks the length and characters of a channel name or
// pattern, what: 1 to 255 bytes of printable ASCII.
func checkChannelName(s, what string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > maxChannelLength {
		return fmt.Errorf("%s longer than %d bytes", what, maxChannelLength)
	}
	for k := 0; k < len(s); k++ {
		if b := s[k]; b >= utf8.RuneSelf {
			return fmt.Errorf("%s holds a non-ASCII character at byte %d: Centrifugo refuses it to clients", what, k)
		} else if b <= ' ' || b == 0x7f {
			return fmt.Errorf("%s holds whitespace or a control character at byte %d", what, k)
		}
	}
	return nil
}

// checkName checks a user ID or a group name, what: 1 to 255 bytes of
// valid UTF-8 with no whitespace or control characters.
func checkName(s, what string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > maxChannelLength {
		return fmt.Errorf("%s longer than %d bytes", what, maxChannelLength)
	}
	for k, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[k:], "\uFFFD"):
			return fmt.Errorf("%s is not valid UTF-8", what)
		case r <= ' ' || unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\ufeff':
			return fmt.Errorf("%s holds whitespace or a control character at byte %d", what, k)
		}
	}
	return nil
}

// namespaceOf returns a channel's namespace as Centrifugo reads it: the
// part before the first ':' once a leading "$" is gone, "" for none.
func namespaceOf(channel string) string {
	name := strings.TrimPrefix(channel, privatePrefix)
	if k := strings.IndexByte(name, ':'); k >= 0 {
		return name[:k]
	}
	return ""
}

// namespaceRule says which namespace names Centrifugo accepts.
const namespaceRule = "is not a namespace Centrifugo accepts (^[-a-zA-Z0-9_.]{2,}$: two or more ASCII letters, digits, '-', '_' or '.')"

// validNamespace reports whether Centrifugo v6 accepts ns as a namespace.
func validNamespace(ns string) bool { return len(ns) >= 2 && namespaceChars(ns) }

// namespaceChars reports whether s holds only ASCII letters, digits, '-',
// '_' and '.'.
func namespaceChars(s string) bool {
	for k := 0; k < len(s); k++ {
		b := s[k]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return false
		}
	}
	return true
}

// UserChannel names the personal channel of the user with this ID, which
// only that user reads, whatever the rules say; Event.Users publishes to
// it. An ID of ASCII letters, digits, '_', '-' and '.' stands as it is
// when it fits in 255 bytes ("$<slug>_user:42"); any other valid ID
// becomes "~" and the unpadded base64url SHA-256 of the ID, so that no two
// users share a channel. It returns "" for an invalid ID (see User.ID).
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

func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
