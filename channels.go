package instant

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PrivatePrefix starts every private channel name, as Centrifugo's
// channel.private_prefix does by default.
const PrivatePrefix = "$"

// MaxChannelLength is the longest channel name accepted, in bytes.
const MaxChannelLength = 255

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
	LevelPersonal               // one user: their own channel (UserChannel)
)

var levelNames = [...]string{"public", "users", "groups", "staff", "superuser", "personal"}

// String returns the level's name: "public", "users", "groups", "staff",
// "superuser" or "personal".
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

// channelTable is the configured channels, built once by New.
type channelTable struct {
	byLevel [LevelSuperuser + 1][]string // LevelGroups: every group channel, by group name order
	groups  map[string][]string
	byName  map[string]*grant
	// userPrefix starts every personal channel: "$<slug>_user:".
	userPrefix string
}

func buildChannelTable(cfg *Config) (channelTable, []error) {
	var errs []error
	slug := cfg.SiteSlug
	t := channelTable{groups: map[string][]string{}, byName: map[string]*grant{}, userPrefix: PrivatePrefix + slug + "_user:"}
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
			if strings.HasPrefix(n, t.userPrefix) {
				errs = append(errs, fmt.Errorf("%s: %q: names starting with %q are the users' own channels (UserChannel)", field, n, t.userPrefix))
				continue
			}
			if isAccessName(slug, n) {
				errs = append(errs, fmt.Errorf("%s: %q: the namespaces of Reauthorize's records are never granted", field, n))
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

// ChannelsFor lists the configured channels user (nil for anonymous) may
// read, widest level first, and last the user's own channel (UserChannel). Channels granted only by custom rules are not
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
	if own := i.UserChannel(user.ID); own != "" {
		out = append(out, Channel{Name: own, Level: LevelPersonal})
	}
	return out
}

// UserChannel names the personal channel of the user with this ID,
// "$<slug>_user:<id>": private, readable by that user only, whatever the
// rules say, and listed by ChannelsFor and GET channels for them. Event.Users
// publishes to it. It returns "" when userID is not a valid user ID (see
// User.ID) or the name would be longer than MaxChannelLength.
func (i *Instant) UserChannel(userID string) string {
	if i == nil || checkName(userID, "ID") != nil || len(i.channels.userPrefix)+len(userID) > MaxChannelLength {
		return ""
	}
	return i.channels.userPrefix + userID
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
