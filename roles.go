package instant

import (
	"fmt"
	"maps"
	"slices"
)

// Level is the role a channel is reserved for. The zero Level is none: an
// Event with no channel and no Target is refused (ErrNoChannel).
type Level int

const (
	LevelPublic    Level = iota + 1 // everyone, anonymous visitors included
	LevelUsers                      // every logged-in user
	LevelGroups                     // members of a group
	LevelStaff                      // staff users and superusers
	LevelSuperuser                  // superusers
	LevelPersonal                   // one user: their own channel (UserChannel)
)

// String returns the level's name ("public", "users", "groups", "staff",
// "superuser", "personal"), "none" for the zero Level, else "Level(n)".
func (l Level) String() string {
	if names := [...]string{"none", "public", "users", "groups", "staff", "superuser", "personal"}; l >= 0 && int(l) < len(names) {
		return names[l]
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// Channel is one configured channel, as Channels lists it.
type Channel struct {
	Name  string // "$" first for a private channel
	Level Level  // the role it is reserved for
	Group string // the granting group, for LevelGroups
}

// channelTable is the configured channels, built once by New.
type channelTable struct {
	byLevel       [LevelSuperuser + 1][]string // LevelGroups: every group's, by group name
	groups        map[string][]string
	byName        map[string]*grant // who may read each
	userPrefix    string            // "$<slug>_user:", of every personal channel
	userNamespace string            // "<slug>_user", which holds nothing else
}

type grant struct {
	level  Level
	groups []string // for LevelGroups
}

// buildChannelTable builds cfg's channel table, telling bad what is wrong.
func buildChannelTable(cfg *Config, bad func(format string, args ...any)) channelTable {
	slug := cfg.SiteSlug
	t := channelTable{groups: map[string][]string{}, byName: map[string]*grant{},
		userPrefix: privatePrefix + slug + "_user:", userNamespace: slug + "_user"}
	add := func(field string, level Level, group string, names []string, def string) (out []string) {
		if names == nil && def != "" {
			names = []string{def}
		}
		for _, n := range names {
			if level != LevelPublic && !isPrivate(n) {
				n = privatePrefix + n
			}
			err, g := validChannel(n), t.byName[n]
			switch {
			case err != nil:
			case namespaceOf(n) == t.userNamespace:
				err = fmt.Errorf("%q: the namespace %q holds the users' own channels (UserChannel) and nothing else", n, t.userNamespace)
			case level == LevelPublic && isPrivate(n):
				err = fmt.Errorf("%q starts with %q, which makes it private", n, privatePrefix)
			case g != nil && g.level != level:
				err = fmt.Errorf("%q is already a %s channel", n, g.level)
			case g == nil:
				g = &grant{level: level}
				t.byName[n] = g
			case level != LevelGroups || slices.Contains(g.groups, group):
				continue // listed twice: keep one
			}
			if err != nil {
				bad("%s: %w", field, err)
				continue
			}
			if level == LevelGroups {
				g.groups = append(g.groups, group)
			}
			out = append(out, n)
		}
		return out
	}
	t.byLevel[LevelPublic] = add("PublicChannels", LevelPublic, "", cfg.PublicChannels, slug+"_public")
	t.byLevel[LevelUsers] = add("UsersChannels", LevelUsers, "", cfg.UsersChannels, slug+"_users")
	t.byLevel[LevelStaff] = add("StaffChannels", LevelStaff, "", cfg.StaffChannels, slug+"_staff")
	t.byLevel[LevelSuperuser] = add("SuperuserChannels", LevelSuperuser, "", cfg.SuperuserChannels, slug+"_admin")
	for _, group := range slices.Sorted(maps.Keys(cfg.GroupChannels)) {
		if err := checkName(group, "group"); err != nil {
			bad("GroupChannels: %v", err)
			continue
		}
		t.groups[group] = add("GroupChannels["+group+"]", LevelGroups, group, cfg.GroupChannels[group], "")
		t.byLevel[LevelGroups] = append(t.byLevel[LevelGroups], t.groups[group]...)
	}
	return t
}

// list lists the configured channels, widest level first, those of
// groups in that order, each once.
func (t *channelTable) list(groups []string) []Channel {
	var out []Channel
	for l := LevelPublic; l <= LevelSuperuser; l++ {
		if l != LevelGroups {
			for _, n := range t.byLevel[l] {
				out = append(out, Channel{Name: n, Level: l})
			}
			continue
		}
		for _, group := range groups {
			for _, n := range t.groups[group] {
				if !slices.ContainsFunc(out, func(c Channel) bool { return c.Name == n }) {
					out = append(out, Channel{Name: n, Level: LevelGroups, Group: group})
				}
			}
		}
	}
	return out
}

// channelsFor lists the configured channels user (nil for anonymous) may
// read, then the user's own: the channels route's list.
func (i *Instant) channelsFor(user *User) []Channel {
	var groups []string
	if user != nil {
		groups = user.Groups
	}
	out := []Channel{}
	for _, ch := range i.channels.list(groups) {
		if _, err := i.decide(nil, user, ch.Name); err == nil {
			out = append(out, ch)
		}
	}
	if user != nil {
		out = append(out, Channel{Name: i.UserChannel(user.ID), Level: LevelPersonal})
	}
	return out
}

// Channels lists every configured channel, widest level first, groups by
// name (a shared channel under the first). An Event's Target goes to the
// first channel of its level.
func (i *Instant) Channels() []Channel {
	if i == nil {
		return nil
	}
	return i.channels.list(slices.Sorted(maps.Keys(i.channels.groups)))
}
