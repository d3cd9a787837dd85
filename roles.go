package instant

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// PrivatePrefix starts every private channel name, as Centrifugo's
// channel.private_prefix does by default.
const PrivatePrefix = "$"

// MaxChannelLength is the longest channel name accepted, in bytes.
const MaxChannelLength = 255

// User is the logged-in user as the session keeps it. Only ID reaches
// Centrifugo (as the tokens' "sub"); the rest decides which channels the
// user may read.
type User struct {
	// ID identifies the user to Centrifugo. Required by Login.
	ID string `json:"id"`
	// Username is shown to people; it grants nothing.
	Username string `json:"username"`
	// Staff users read the staff channels.
	Staff bool `json:"staff"`
	// Superusers read the superuser channels, and count as staff.
	Superuser bool `json:"superuser"`
	// Groups the user belongs to, each granting its GroupChannels.
	Groups []string `json:"groups,omitempty"`
	// Info is optional presence data, put in the tokens' "info" claim.
	Info map[string]any `json:"info,omitempty"`
}

// IsStaff reports whether u reads staff channels: staff and superusers do.
func (u *User) IsStaff() bool { return u != nil && (u.Staff || u.Superuser) }

// InGroup reports whether u belongs to group.
func (u *User) InGroup(group string) bool { return u != nil && slices.Contains(u.Groups, group) }

func (u *User) validate() error {
	if err := checkName(u.ID, "ID"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidUser, err)
	}
	for _, g := range u.Groups {
		if err := checkName(g, "group"); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidUser, err)
		}
	}
	return nil
}

// Level is the role a channel is reserved for.
type Level int

// The levels, from the widest audience to the narrowest. The zero value is
// LevelPublic.
const (
	LevelPublic    Level = iota // everyone, anonymous visitors included
	LevelUsers                  // every logged-in user
	LevelGroups                 // members of a group
	LevelStaff                  // staff users and superusers
	LevelSuperuser              // superusers
)

var levelNames = [...]string{"public", "users", "groups", "staff", "superuser"}

// String returns the level's name: "public", "users", "groups", "staff" or "superuser".
func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return levelNames[l]
}

// MarshalText encodes the level as its name.
func (l Level) MarshalText() ([]byte, error) {
	if l < 0 || int(l) >= len(levelNames) {
		return nil, fmt.Errorf("instant: unknown level %d", int(l))
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText reads a level's name.
func (l *Level) UnmarshalText(b []byte) error {
	for i, n := range levelNames {
		if string(b) == n {
			*l = Level(i)
			return nil
		}
	}
	return fmt.Errorf("instant: unknown level %q", b)
}

// Channel is one channel a user may read, as ChannelsFor lists it.
type Channel struct {
	Name  string `json:"name"`
	Level Level  `json:"level"`
	// Group is the granting group, for LevelGroups channels.
	Group string `json:"group,omitempty"`
}

// AuthorizeFunc decides a custom rule: whether user (nil when anonymous)
// may read the channel whose name matched the rule's pattern, params
// holding the pattern's parameters. info, when not nil, goes into the
// subscription token as the channel's presence info. It is called
// concurrently and must not keep c after it returns.
type AuthorizeFunc func(c *gin.Context, user *User, params map[string]string) (allow bool, info any)

// IsPrivate reports whether channel needs a subscription token.
func IsPrivate(channel string) bool { return strings.HasPrefix(channel, PrivatePrefix) }

// ValidChannel checks a channel name: not empty, at most 255 bytes, valid
// UTF-8, with no whitespace or control characters. Errors wrap ErrInvalidChannel.
func ValidChannel(name string) error {
	if err := checkName(name, "channel"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidChannel, err)
	}
	return nil
}

func checkName(s, what string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > MaxChannelLength {
		return fmt.Errorf("%s longer than %d bytes", what, MaxChannelLength)
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

// grant says who may read one configured channel.
type grant struct {
	level  Level
	groups []string // for LevelGroups
}

func (g *grant) allows(u *User) bool {
	switch g.level {
	case LevelPublic:
		return true
	case LevelUsers:
		return u != nil
	case LevelGroups:
		for _, grp := range g.groups {
			if u.InGroup(grp) {
				return true
			}
		}
		return false
	case LevelStaff:
		return u.IsStaff()
	case LevelSuperuser:
		return u != nil && u.Superuser
	}
	return false
}

// channelTable is the configured channels, built once by New.
type channelTable struct {
	byLevel [LevelSuperuser + 1][]string // LevelGroups: every group channel, by group name order
	groups  map[string][]string
	byName  map[string]*grant
}

func buildChannelTable(cfg *Config) (channelTable, []error) {
	var errs []error
	t := channelTable{groups: map[string][]string{}, byName: map[string]*grant{}}
	slug := cfg.SiteSlug
	defaults := func(list []string, name string) []string {
		if list == nil {
			return []string{name}
		}
		return list
	}
	add := func(field string, level Level, group string, names []string) []string {
		var out []string
		for _, n := range names {
			if level != LevelPublic && !IsPrivate(n) {
				n = PrivatePrefix + n
			}
			if err := ValidChannel(n); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, err))
				continue
			}
			if level == LevelPublic && IsPrivate(n) {
				errs = append(errs, fmt.Errorf("%s: %q starts with %q, which makes it private", field, n, PrivatePrefix))
				continue
			}
			g, seen := t.byName[n]
			switch {
			case !seen:
				g = &grant{level: level}
				t.byName[n] = g
			case g.level != level:
				errs = append(errs, fmt.Errorf("%s: %q is already a %s channel", field, n, g.level))
				continue
			case level != LevelGroups || slices.Contains(g.groups, group):
				continue // listed twice: keep one
			}
			if level == LevelGroups {
				g.groups = append(g.groups, group)
			}
			out = append(out, n)
		}
		return out
	}
	t.byLevel[LevelPublic] = add("PublicChannels", LevelPublic, "", defaults(cfg.PublicChannels, slug+"_public"))
	t.byLevel[LevelUsers] = add("UsersChannels", LevelUsers, "", defaults(cfg.UsersChannels, slug+"_users"))
	t.byLevel[LevelStaff] = add("StaffChannels", LevelStaff, "", defaults(cfg.StaffChannels, slug+"_staff"))
	t.byLevel[LevelSuperuser] = add("SuperuserChannels", LevelSuperuser, "", defaults(cfg.SuperuserChannels, slug+"_admin"))
	for _, group := range sortedKeys(cfg.GroupChannels) {
		if err := checkName(group, "group"); err != nil {
			errs = append(errs, fmt.Errorf("GroupChannels: %v", err))
			continue
		}
		chans := add("GroupChannels["+group+"]", LevelGroups, group, cfg.GroupChannels[group])
		t.groups[group] = chans
		t.byLevel[LevelGroups] = append(t.byLevel[LevelGroups], chans...)
	}
	return t, errs
}

// rule is one custom rule added by Authorize.
type rule struct {
	pattern string
	parts   []patternPart
	fn      AuthorizeFunc
}

type patternPart struct {
	literal string // a literal run, or
	param   string // a {param}, or
	star    bool   // the trailing *
}

// Authorize adds a custom rule: a channel matching pattern is granted when
// fn allows it. In a pattern, {name} matches one or more characters other
// than ':', '#', ',' and '/', and a final * matches the rest of the name
// (params["*"]), e.g. "$orders:{id}" or "$chat:*".
//
// A pattern must start with "$": Centrifugo lets anyone read a channel
// without "$" with no token at all, so a rule there would protect nothing.
// Rules never change the configured role channels: a channel listed in
// Config is decided by its level alone. For other channels, rules are tried
// in the order added and the first whose pattern matches decides; a "$"
// channel that no rule grants is denied. A rule that panics denies (and the
// panic is logged). Add rules before calling CentrifugoConfig, which
// declares their namespaces. Authorize is safe to call while requests are
// served.
func (i *Instant) Authorize(pattern string, fn AuthorizeFunc) error {
	if i == nil {
		return ErrNotInstalled
	}
	if !IsPrivate(pattern) {
		return fmt.Errorf("%w: %q: a rule must cover \"$\" channels; Centrifugo lets anyone read the others without a token", ErrInvalidPattern, pattern)
	}
	if fn == nil {
		return fmt.Errorf("%w: %q: nil AuthorizeFunc", ErrInvalidPattern, pattern)
	}
	parts, err := parsePattern(pattern)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidPattern, pattern, err)
	}
	for {
		old := i.rules.Load()
		rules := append(slices.Clip(*old), rule{pattern: pattern, parts: parts, fn: fn})
		if i.rules.CompareAndSwap(old, &rules) {
			return nil
		}
	}
}

func parsePattern(p string) ([]patternPart, error) {
	if err := checkName(p, "pattern"); err != nil {
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
			parts = append(parts, patternPart{param: name})
			rest = rest[end+1:]
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

// match reports whether channel matches the rule, with its parameters.
// A parameter takes the shortest run that lets the next literal follow.
func (r *rule) match(channel string) (map[string]string, bool) {
	var params map[string]string
	rest := channel
	for k, part := range r.parts {
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
			if k+1 < len(r.parts) && r.parts[k+1].literal != "" {
				at := strings.Index(rest[:min(len(rest), n+len(r.parts[k+1].literal))], r.parts[k+1].literal)
				if at < 0 {
					return nil, false
				}
				n = at
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

// decision is the one place that says whether user may read channel; every
// route and proxy asks it. info is the presence info for the token.
func (i *Instant) decide(c *gin.Context, user *User, channel string) (allow bool, info any) {
	if g, known := i.channels.byName[channel]; known {
		return g.allows(user), nil
	}
	if !IsPrivate(channel) {
		return true, nil
	}
	for _, r := range *i.rules.Load() {
		if params, ok := r.match(channel); ok {
			return i.runRule(&r, c, user, params)
		}
	}
	return false, nil
}

// runRule calls a rule's function; a panic in it denies.
func (i *Instant) runRule(r *rule, c *gin.Context, user *User, params map[string]string) (allow bool, info any) {
	defer func() {
		if p := recover(); p != nil {
			i.logger.Error("instant: Authorize rule panicked; denied", "pattern", r.pattern, "panic", fmt.Sprint(p))
			allow, info = false, nil
		}
	}()
	return r.fn(c, user.clone(), params)
}

// Allowed reports whether user (nil for anonymous) may read channel, by the
// same decision the routes use. c is handed to custom rules; it may be nil
// when no rule needs it.
func (i *Instant) Allowed(c *gin.Context, user *User, channel string) bool {
	if i == nil || ValidChannel(channel) != nil || (user == nil && i.cfg.DisallowAnonymous) {
		return false
	}
	ok, _ := i.decide(c, user, channel)
	return ok
}

// ChannelsFor lists the configured channels user (nil for anonymous) may
// read, widest level first. Channels granted only by custom rules are not
// listed: their names are not known in advance.
func (i *Instant) ChannelsFor(user *User) []Channel {
	if i == nil {
		return nil
	}
	if user == nil && i.cfg.DisallowAnonymous {
		return []Channel{}
	}
	t := &i.channels
	out := make([]Channel, 0, 4)
	for _, n := range t.byLevel[LevelPublic] {
		out = append(out, Channel{Name: n, Level: LevelPublic})
	}
	if user == nil {
		return out
	}
	for _, n := range t.byLevel[LevelUsers] {
		out = append(out, Channel{Name: n, Level: LevelUsers})
	}
	for _, group := range user.Groups {
		for _, n := range t.groups[group] {
			if !slices.ContainsFunc(out, func(c Channel) bool { return c.Name == n }) {
				out = append(out, Channel{Name: n, Level: LevelGroups, Group: group})
			}
		}
	}
	if user.IsStaff() {
		for _, n := range t.byLevel[LevelStaff] {
			out = append(out, Channel{Name: n, Level: LevelStaff})
		}
	}
	if user.Superuser {
		for _, n := range t.byLevel[LevelSuperuser] {
			out = append(out, Channel{Name: n, Level: LevelSuperuser})
		}
	}
	return out
}

// Channels lists every configured channel with its level, in the order of
// ChannelsFor: public, users, groups (by group name), staff, superuser. A
// channel shared by several groups is listed once, under the first.
func (i *Instant) Channels() []Channel {
	if i == nil {
		return nil
	}
	t := &i.channels
	var out []Channel
	for l := LevelPublic; l <= LevelSuperuser; l++ {
		if l == LevelGroups {
			for _, group := range sortedKeys(t.groups) {
				for _, n := range t.groups[group] {
					if !slices.ContainsFunc(out, func(c Channel) bool { return c.Name == n }) {
						out = append(out, Channel{Name: n, Level: LevelGroups, Group: group})
					}
				}
			}
			continue
		}
		for _, n := range t.byLevel[l] {
			out = append(out, Channel{Name: n, Level: l})
		}
	}
	return out
}

// ChannelsAt lists the configured channels of one level.
func (i *Instant) ChannelsAt(level Level) []string {
	if i == nil || level < 0 || level > LevelSuperuser {
		return nil
	}
	return slices.Clone(i.channels.byLevel[level])
}
