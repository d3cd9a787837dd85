package instant

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// AuthorizeFunc decides a custom rule: whether user (nil when anonymous)
// may read the channel whose name matched the rule's pattern, params
// holding the pattern's parameters. info is what the channel's other
// members see of user (the presence info of the subscription token):
//
//   - nil (an untyped nil: return true, nil) gives no info of the rule's,
//     and the token carries User.Info;
//   - a value that encodes as JSON null (a nil map, slice or pointer, a
//     nil json.RawMessage, json.RawMessage("null")) means no info for
//     this channel: the token carries none, never User.Info;
//   - any other value goes into the token as JSON. It must encode as one
//     JSON value (a json.RawMessage must hold exactly one), valid UTF-8
//     (a json.RawMessage is checked byte for byte), nested at most 64
//     arrays and objects deep. Info that does not is a fault of the
//     server's: no token is signed, the request is answered 500 (the
//     auth route's batch: a 500 for that channel) and one log line names
//     the rule's pattern, as for a rule that panics.
//
// It is called concurrently and must not keep c after it returns.
//
// Reauthorize calls it too, with a *gin.Context of its own: a GET / with
// no cookies and no session, whose context is the ctx given to
// Reauthorize (c.Value, c.Done and c.Request.Context() see it; values the
// app's middlewares set on requests are not there), CurrentUser(c) the
// user reauthorized, and a response that goes nowhere.
type AuthorizeFunc func(c *gin.Context, user *User, params map[string]string) (allow bool, info any)

// rule is one custom rule added by Authorize.
type rule struct {
	pattern   string
	parts     []patternPart
	namespace string // of every channel it matches; "" for none
	fn        AuthorizeFunc
}

type patternPart struct {
	literal string // a literal run, or
	param   string // a {param}, or
	star    bool   // the trailing *
}

// Authorize adds a custom rule: a channel matching pattern is granted when
// fn allows it. In a pattern, {name} matches one or more characters other
// than ':', '#', ',' and '/', and a final * matches the rest of the name
// (params["*"]), e.g. "$orders:{id}", "$dm:{a},{b}" or "$chat:*". So that
// a channel name splits one way only, a parameter must end the pattern or
// be followed by one of those four characters: "$dm:{a}-{b}" is refused
// (it would read "$dm:ann-bob-cy" as ann and bob-cy, or as ann-bob and cy).
//
// A pattern must start with "$": Centrifugo lets anyone read a channel
// without "$" with no token at all, so a rule there would protect nothing.
// It holds only what a channel name may (printable ASCII, at most 255
// bytes). Its namespace, the part before its first ':', must be literal
// and one Centrifugo accepts, since CentrifugoConfig declares it by name:
// "$chat:*", "$orders:{id}" and "$project-{id}" (no ':' at all: a
// parameter never holds one) are fine, while "$chat*" (it would match
// "$chatroom:x" too), "${team}:board" and "$a:{id}" (too short) are
// refused. The users' own channels ("$<slug>_user:...", see UserChannel)
// are never decided by rules, and a pattern in their namespace is refused.
// Rules never change the configured role channels: a channel listed in
// Config is decided by its level alone. For other channels, rules are tried
// in the order added and the first whose pattern matches decides; a "$"
// channel that no rule grants is denied. A rule that panics is logged and
// its request answered 500 (Allowed reports false). Add rules before calling CentrifugoConfig, which
// declares their namespaces. Authorize is safe to call while requests are
// served.
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
	ns, err := patternNamespace(parts)
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

func parsePattern(p string) ([]patternPart, error) {
	if err := checkChannelName(p, "pattern"); err != nil {
		return nil, err
	}
	var parts []patternPart
	seen := map[string]bool{}
	for rest := p; rest != ""; {
		switch {
		case rest[0] == '*':
			if len(rest) != 1 {
				return nil, fmt.Errorf("'*' may only end a pattern")
			}
			parts = append(parts, patternPart{star: true})
			rest = ""
		case rest[0] == '{':
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed '{'")
			}
			name := rest[1:end]
			if name == "" || strings.ContainsAny(name, "{*:#,/") {
				return nil, fmt.Errorf("bad parameter name %q", name)
			}
			if seen[name] {
				return nil, fmt.Errorf("parameter %q used twice", name)
			}
			seen[name] = true
			if len(parts) > 0 && parts[len(parts)-1].literal == "" {
				return nil, fmt.Errorf("parameter %q must follow literal text", name)
			}
			rest = rest[end+1:]
			if rest != "" && !strings.ContainsRune(paramStop, rune(rest[0])) {
				return nil, fmt.Errorf("parameter %q must end the pattern or be followed by one of %q, so that a name splits one way only", name, paramStop)
			}
			parts = append(parts, patternPart{param: name})
		case rest[0] == '}':
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

const paramStop = ":#,/"

// patternNamespace returns the namespace of every channel a pattern
// matches ("" for none), or why it has none that a config can declare: a
// parameter or '*' before the first ':' would let the namespace vary.
func patternNamespace(parts []patternPart) (string, error) {
	var text strings.Builder // the literal start of the pattern
	param := ""              // the first parameter met, if any
	for _, part := range parts {
		switch {
		case part.star:
			return "", fmt.Errorf("a '*' before the first ':' matches channels of any namespace it begins (\"$chat*\" matches \"$chatroom:x\"), which no config declares: end the namespace with ':' first, as in \"$chat:*\"")
		case part.literal == "":
			if param == "" {
				param = part.param
			}
		default:
			k := strings.IndexByte(part.literal, ':')
			if k < 0 {
				text.WriteString(part.literal)
				continue
			}
			if param != "" {
				return "", fmt.Errorf("parameter %q comes before the first ':', in the namespace, which must be literal text: Centrifugo declares namespaces by name", param)
			}
			text.WriteString(part.literal[:k])
			ns := strings.TrimPrefix(text.String(), privatePrefix)
			if ns != "" && !validNamespace(ns) {
				return "", fmt.Errorf("namespace %q %s", ns, namespaceRule)
			}
			return ns, nil
		}
	}
	return "", nil // no ':': no namespace, whatever the parameters hold
}

// match reports whether channel matches the rule, with its parameters.
// A parameter runs to the next ':', '#', ',' or '/' (or the end), which
// parsePattern made sure is where the pattern's next literal starts: there
// is one way to split a name, or none.
func (r *rule) match(channel string) (map[string]string, bool) {
	var params map[string]string
	rest := channel
	for _, part := range r.parts {
		switch {
		case part.literal != "":
			if !strings.HasPrefix(rest, part.literal) {
				return nil, false
			}
			rest = rest[len(part.literal):]
		case part.star:
			if params == nil {
				params = make(map[string]string, 1)
			}
			params["*"] = rest
			rest = ""
		default:
			n := strings.IndexAny(rest, paramStop)
			if n < 0 {
				n = len(rest)
			}
			if n == 0 {
				return nil, false
			}
			if params == nil {
				params = make(map[string]string, 2)
			}
			params[part.param] = rest[:n]
			rest = rest[n:]
		}
	}
	return params, rest == ""
}
