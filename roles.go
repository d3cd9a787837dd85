package instant

import (
	"fmt"
	"maps"
	"slices"
)

// Level is the role a channel is reserved for. The zero Level is no level
// at all ("none"): an Event whose Target is left zero goes to no level's
// channel, so an event that names no channel is refused (ErrNoChannel)
// rather than sent to the public channel.
type Level int

// The levels, from the widest audience to the narrowest. They start at 1:
// the zero value is none of them.
const (
	LevelPublic    Level = iota + 1 // everyone, anonymous visitors included
	LevelUsers                      // every logged-in user
	LevelGroups                     // members of a group
	LevelStaff                      // staff users and superusers
	LevelSuperuser                  // superusers
	LevelPersonal                   // one user: their own channel (UserChannel)
)

// levelNames[l-1] is the name of level l.
var levelNames = [...]string{"public", "users", "groups", "staff", "superuser", "personal"}

// valid reports whether l is one of the named levels.
func (l Level) valid() bool { return l >= LevelPublic && l <= LevelPersonal }

// String returns the level's name: "public", "users", "groups", "staff",
// "superuser" or "personal"; "none" for the zero Level, and "Level(n)" for
// an unknown value.
func (l Level) String() string {
	switch {
	case l == 0:
		return "none"
	case !l.valid():
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return levelNames[l-1]
}

// Channel is one configured channel, as Channels lists it.
type Channel struct {
	// Name is the channel's name, "$" first for a private channel.
	Name string
	// Level is the role the channel is reserved for.
	Level Level
	// Group is the granting group, for LevelGroups channels.
	Group string
}

// channelTable is the configured channels, built once by New.
type channelTable struct {
	byLevel [LevelSuperuser + 1][]string // LevelGroups: every group channel, by group name order
	groups  map[string][]string
	byName  map[string]*grant
	// userPrefix starts every personal channel: "$<slug>_user:", in the
	// namespace userNamespace, "<slug>_user", which holds nothing else.
	userPrefix    string
	userNamespace string
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

func buildChannelTable(cfg *Config) (channelTable, []error) {
	var errs []error
	slug := cfg.SiteSlug
	t := channelTable{
		groups: map[string][]string{}, byName: map[string]*grant{},
		userPrefix: privatePrefix + slug + "_user:", userNamespace: slug + "_user",
	}
	defaults := func(list []string, name string) []string {
		if list == nil {
			return []string{name}
		}
		return list
	}
	add := func(field string, level Level, group string, names []string) []string {
		var out []string
		for _, n := range names {
			if level != LevelPublic && !isPrivate(n) {
				n = privatePrefix + n
			}
			if err := validChannel(n); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, err))
				continue
			}
			if namespaceOf(n) == t.userNamespace {
				errs = append(errs, fmt.Errorf("%s: %q: the namespace %q holds the users' own channels (UserChannel) and nothing else", field, n, t.userNamespace))
				continue
			}
			if level == LevelPublic && isPrivate(n) {
				errs = append(errs, fmt.Errorf("%s: %q starts with %q, which makes it private", field, n, privatePrefix))
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
	for _, group := range slices.Sorted(maps.Keys(cfg.GroupChannels)) {
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

// channelsFor lists the configured channels user (nil for anonymous) may
// read, widest level first, and last the user's own channel
// (UserChannel), as the channels route reports them. Channels granted
// only by custom rules are not listed: their names are not known in
// advance.
func (i *Instant) channelsFor(user *User) []Channel {
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

// Channels lists every configured channel with its level, widest level
// first: public, users, groups (by group name), staff, superuser. A
// channel shared by several groups is listed once, under the first. The
// channels of one level are those whose Level is it, in order (an
// Event's Target goes to the first); those a user may read are the ones
// Allowed grants them, with their own UserChannel.
func (i *Instant) Channels() []Channel {
	if i == nil {
		return nil
	}
	t := &i.channels
	var out []Channel
	for l := LevelPublic; l <= LevelSuperuser; l++ {
		if l == LevelGroups {
			for _, group := range slices.Sorted(maps.Keys(t.groups)) {
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
