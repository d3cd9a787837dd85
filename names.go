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

// privatePrefix starts every private channel name, as Centrifugo's
// channel.private_prefix does by default.
const privatePrefix = "$"

// maxChannelLength is the longest channel name accepted, in bytes, as
// Centrifugo's channel.max_length is by default.
const maxChannelLength = 255

// isPrivate reports whether channel needs a subscription token.
func isPrivate(channel string) bool { return strings.HasPrefix(channel, privatePrefix) }

// validChannel checks that name is a channel a Centrifugo v6 client may
// subscribe to: not empty, at most maxChannelLength (255) bytes, printable
// ASCII only (bytes '!' to '~': no space, control or non-ASCII character,
// which Centrifugo refuses to clients with 107 bad request although its
// server API publishes to them), and, when the name has a namespace (the
// part before its first ':', after a leading "$"), one Centrifugo can
// declare: two or more letters, digits, '-', '_' or '.' (an empty one,
// as in "$:x", means no namespace). Every other printable character is
// allowed. Errors wrap ErrInvalidChannel.
func validChannel(name string) error {
	if err := checkChannelName(name, "channel"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidChannel, err)
	}
	if ns := namespaceOf(name); ns != "" && !validNamespace(ns) {
		return fmt.Errorf("%w: %q: namespace %q %s", ErrInvalidChannel, name, ns, namespaceRule)
	}
	return nil
}

// checkChannelName checks the characters and length of a channel name or
// pattern, what: not empty, at most maxChannelLength bytes, printable
// ASCII only.
func checkChannelName(s, what string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > maxChannelLength {
		return fmt.Errorf("%s longer than %d bytes", what, maxChannelLength)
	}
	for k := 0; k < len(s); k++ {
		if b := s[k]; b <= ' ' || b >= 0x7f {
			if b >= utf8.RuneSelf {
				return fmt.Errorf("%s holds a non-ASCII character at byte %d: Centrifugo refuses it to clients", what, k)
			}
			return fmt.Errorf("%s holds whitespace or a control character at byte %d", what, k)
		}
	}
	return nil
}

// checkName checks a user ID or a group name, what: not empty, at most
// 255 bytes, valid UTF-8, with no whitespace or control characters.
func checkName(s, what string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > maxChannelLength {
		return fmt.Errorf("%s longer than %d bytes", what, maxChannelLength)
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b <= ' ' || b == 0x7f {
				return fmt.Errorf("%s holds whitespace or a control character at byte %d", what, i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%s is not valid UTF-8", what)
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\ufeff' {
			return fmt.Errorf("%s holds whitespace or a control character at byte %d", what, i)
		}
		i += size
	}
	return nil
}

// namespaceOf returns a channel's namespace as Centrifugo reads it: the
// part before the first ':' once a leading "$" is gone, or "" when there
// is none (no ':', or an empty part: both mean no namespace).
func namespaceOf(channel string) string {
	name := strings.TrimPrefix(channel, privatePrefix)
	if k := strings.IndexByte(name, ':'); k >= 0 {
		return name[:k]
	}
	return ""
}

// namespaceRule says which namespace names Centrifugo accepts.
const namespaceRule = "is not a namespace Centrifugo accepts (^[-a-zA-Z0-9_.]{2,}$: two or more ASCII letters, digits, '-', '_' or '.')"

// validNamespace reports whether Centrifugo v6 accepts ns as a namespace
// name: it refuses to start with any other (validateNamespace in its
// internal/config/validate.go).
func validNamespace(ns string) bool { return len(ns) >= 2 && namespaceChars(ns) }

// namespaceChars reports whether s holds only the characters of a
// namespace name: ASCII letters, digits, '-', '_' and '.'.
func namespaceChars(s string) bool {
	for k := 0; k < len(s); k++ {
		b := s[k]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return false
		}
	}
	return true
}

// UserChannel names the personal channel of the user with this ID:
// private, readable by that user only, whatever the rules say, and listed
// by the channels route for them. Event.Users publishes to it.
// An ID made only of ASCII letters, digits, '_', '-' and '.' stays
// readable when the name fits in 255 bytes: "$<slug>_user:42".
// Every other valid ID (non-ASCII, holding any other character such as
// ':', '#', ',' or '/', or too long) is encoded as "~" followed by the
// unpadded base64url SHA-256 of the ID: "$<slug>_user:~" and 43
// characters. A readable ID never holds '~', so a raw ID never reads as an
// encoded one, and two users never share a channel (short of a SHA-256
// collision). Every such name is one Centrifugo serves to clients. It
// returns "" when userID is not a valid user ID (see User.ID).
func (i *Instant) UserChannel(userID string) string {
	if i == nil || checkName(userID, "ID") != nil {
		return ""
	}
	prefix := i.channels.userPrefix
	if len(prefix)+len(userID) <= maxChannelLength && readableID(userID) {
		return prefix + userID
	}
	sum := sha256.Sum256([]byte(userID))
	return prefix + encodedIDMarker + base64.RawURLEncoding.EncodeToString(sum[:])
}

// encodedIDMarker starts an encoded user ID in a personal channel name; a
// readable ID never holds it.
const encodedIDMarker = "~"

// readableID reports whether a user ID may stand as it is in its personal
// channel name: ASCII letters, digits, '_', '-' and '.' only.
func readableID(id string) bool { return namespaceChars(id) }

func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
