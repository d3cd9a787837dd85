package instant

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// AuthorizeFunc decides a custom rule: whether user (nil when anonymous)
// may read the channel that matched the rule's pattern, whose parameters
// are in params. info is what the channel's members see of user (the
// token's presence info): nil gives none of the rule's (the token carries
// User.Info); a value encoding as JSON null means no info at all; anything
// else must encode as one JSON value, valid UTF-8, nested at most 64 deep,
// or no token is signed (500, one log line naming the pattern, as for a
// panic). It is called concurrently and must not keep c. From Reauthorize,
// c is a GET / with no session, whose context is Reauthorize's ctx and
// whose CurrentUser(c) is the user reauthorized.
type AuthorizeFunc func(c *gin.Context, user *User, params map[string]string) (allow bool, info any)

// rule is one custom rule added by Authorize.
type rule struct {
	pattern   string
	parts     []patternPart
	namespace string // of every channel it matches; "" for none
	fn        AuthorizeFunc
}

// patternPart is a literal run, a {param}, or the trailing *.
type patternPart struct {
	literal, param string
	star           bool
}

// Authorize adds a custom rule: a channel matching pattern is granted when
// fn allows it. In a pattern, {name} matches one or more characters other
// than ':', '#', ',' and '/', and must end the pattern or be followed by
// one of them, so that a name splits one way only; a final * matches the
// rest (params["*"]): "$orders:{id}", "$dm:{a},{b}", "$chat:*".
//
// A pattern is a channel name (printable ASCII, at most 255 bytes) that
// starts with "$" (Centrifugo lets anyone read other channels), whose
// namespace (before the first ':') is literal and one Centrifugo accepts,
// and not the users' own (UserChannel). Errors wrap ErrInvalidPattern.
// Configured role channels are decided by their level alone; for other
// channels, the first rule added whose pattern matches decides, and a "$"
// channel no rule grants is denied. Add rules before CentrifugoConfig,
// which declares their namespaces. Safe while requests are served.
func (i *Instant) Authorize(pattern string, fn AuthorizeFunc) error {
	if i == nil {
		return ErrNotInstalled
	}
	if !isPrivate(pattern) {
		return fmt.Errorf("%w: %q: a rule must cover \"$\" channels; Centrifugo lets anyone read the others without a token", ErrInvalidPattern, pattern)
	}
	if fn == nil {
		return fmt.Errorf("%w: %q: nil AuthorizeFunc", ErrInvalidPattern, pattern)
	}
	parts, err := parsePattern(pattern)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidPattern, pattern, err)
	}
	ns, err := patternNamespace(pattern)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidPattern, pattern, err)
	}
	if ns == i.channels.userNamespace {
		return fmt.Errorf("%w: %q: the namespace %q holds the users' own channels (UserChannel), which only their user reads and no rule decides", ErrInvalidPattern, pattern, ns)
	}
	for {
		old := i.rules.Load()
		rules := append(slices.Clip(*old), rule{pattern: pattern, parts: parts, namespace: ns, fn: fn})
		if i.rules.CompareAndSwap(old, &rules) {
			return nil
		}
	}
}

// parsePattern splits a pattern into its parts, and refuses one whose
// parameters could split a channel name more than one way.
func parsePattern(p string) ([]patternPart, error) {
	if err := checkChannelName(p, "pattern"); err != nil {
		return nil, err
	}
	var parts []patternPart
	seen := map[string]bool{}
	for rest := p; rest != ""; {
		switch rest[0] {
		case '*':
			if len(rest) != 1 {
				return nil, fmt.Errorf("'*' may only end a pattern")
			}
			parts = append(parts, patternPart{star: true})
			rest = ""
		case '{':
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed '{'")
			}
			name := rest[1:end]
			switch rest = rest[end+1:]; {
			case name == "" || strings.ContainsAny(name, "{*:#,/"):
				return nil, fmt.Errorf("bad parameter name %q", name)
			case seen[name]:
				return nil, fmt.Errorf("parameter %q used twice", name)
			case len(parts) > 0 && parts[len(parts)-1].literal == "":
				return nil, fmt.Errorf("parameter %q must follow literal text", name)
			case rest != "" && !strings.ContainsRune(paramStop, rune(rest[0])):
				return nil, fmt.Errorf("parameter %q must end the pattern or be followed by one of %q, so that a name splits one way only", name, paramStop)
			}
			seen[name] = true
			parts = append(parts, patternPart{param: name})
		case '}':
			return nil, fmt.Errorf("unopened '}'")
		default:
			end := strings.IndexAny(rest, "{}*")
			if end < 0 {
				end = len(rest)
			}
			parts = append(parts, patternPart{literal: rest[:end]})
			rest = rest[end:]
		}
	}
	return parts, nil
}

// paramStop ends a parameter's value in a channel name.
const paramStop = ":#,/"

// patternNamespace returns the namespace of every channel a parsed pattern
// matches ("" for none), or why it has none a config can declare.
func patternNamespace(pattern string) (string, error) {
	head, _, colon := strings.Cut(strings.TrimPrefix(pattern, privatePrefix), ":")
	switch {
	case strings.Contains(head, "*"):
		return "", fmt.Errorf("a '*' before the first ':' matches channels of any namespace it begins (\"$chat*\" matches \"$chatroom:x\"), which no config declares: end the namespace with ':' first, as in \"$chat:*\"")
	case !colon:
		return "", nil // no namespace, whatever the parameters hold
	case strings.Contains(head, "{"):
		param, _, _ := strings.Cut(head[strings.IndexByte(head, '{')+1:], "}")
		return "", fmt.Errorf("parameter %q comes before the first ':', in the namespace, which must be literal text: Centrifugo declares namespaces by name", param)
	case head != "" && !validNamespace(head):
		return "", fmt.Errorf("namespace %q %s", head, namespaceRule)
	}
	return head, nil
}

// match reports whether channel matches the rule, with its parameters. A
// parameter runs to the next paramStop character or the end, where
// parsePattern made the next literal start: a name splits one way or none.
func (r *rule) match(channel string) (map[string]string, bool) {
	var params map[string]string
	rest := channel
	for _, part := range r.parts {
		n := len(rest) // the star's
		switch {
		case part.literal != "":
			if !strings.HasPrefix(rest, part.literal) {
				return nil, false
			}
			rest = rest[len(part.literal):]
			continue
		case !part.star:
			if n = strings.IndexAny(rest, paramStop); n < 0 {
				n = len(rest)
			}
			if n == 0 {
				return nil, false
			}
		}
		if params == nil {
			params = make(map[string]string, 2)
		}
		params[cmp.Or(part.param, "*")] = rest[:n]
		rest = rest[n:]
	}
	return params, rest == ""
}
