package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// Limits of the broadcast form.
const (
	maxMessageLength    = 2000 // characters
	maxEventClassLength = 64
	recentLogSize       = 50
	levelTargetPrefix   = "level:"
)

// target is one choice of the form's target select: a channel, or a level
// whose first channel the plugin picks.
type target struct {
	Value string // "site_public", "$site_users", or "level:staff"
	Label string
	Level instant.Level
}

// broadcastData is the broadcast page's own data.
type broadcastData struct {
	Channels []target // one per configured channel
	Levels   []target // one per level with a channel
	Form     broadcastForm
	Error    string
	Sent     bool
	Recent   []sentEvent
	Counts   []channelCount
}

type channelCount struct {
	Channel string
	Level   instant.Level
	Count   int
}

// broadcastForm is what the form sends. Data is JSON text, or empty.
type broadcastForm struct {
	Message    string
	Target     string
	EventClass string
	Data       string
}

// readBroadcastForm reads a form post, or a JSON body
// {"message","target","event_class","data"} whose data is any JSON value.
// Its error is a *formError whose message may be shown as it is: it says
// what is wrong with the request in words, never in Go's types.
func readBroadcastForm(c *gin.Context) (broadcastForm, error) {
	if c.ContentType() == "application/json" {
		raw, err := io.ReadAll(c.Request.Body)
		if err != nil {
			return broadcastForm{}, bodyReadError(err, "The body could not be read.")
		}
		var body struct {
			Message    string          `json:"message"`
			Target     string          `json:"target"`
			EventClass string          `json:"event_class"`
			Data       json.RawMessage `json:"data"`
		}
		if !json.Valid(raw) {
			return broadcastForm{}, &formError{msg: "The body could not be read: it is not valid JSON."}
		}
		if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			return broadcastForm{}, &formError{msg: "The body must be a JSON object."}
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				return broadcastForm{}, &formError{msg: fmt.Sprintf("The field %q must be a string.", te.Field)}
			}
			return broadcastForm{}, &formError{msg: "The body must be a JSON object."}
		}
		f := broadcastForm{Message: body.Message, Target: body.Target, EventClass: body.EventClass}
		if len(body.Data) > 0 && string(body.Data) != "null" {
			f.Data = string(body.Data)
		}
		return f, nil
	}
	if err := c.Request.ParseForm(); err != nil {
		return broadcastForm{}, bodyReadError(err, "The form could not be read.")
	}
	return broadcastForm{
		Message:    c.Request.PostForm.Get("message"),
		Target:     c.Request.PostForm.Get("target"),
		EventClass: c.Request.PostForm.Get("event_class"),
		Data:       c.Request.PostForm.Get("data"),
	}, nil
}

// bodyReadError is the formError of a body that could not be read: too
// large, or msg.
func bodyReadError(err error, msg string) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &formError{msg: fmt.Sprintf("The body is larger than %d KiB.", tooLarge.Limit>>10), status: http.StatusRequestEntityTooLarge}
	}
	return &formError{msg: msg}
}

// sentEvent is one event broadcast from this site, as the page lists it.
type sentEvent struct {
	ID         string          `json:"id"`
	Time       time.Time       `json:"date"`
	Channels   []string        `json:"channels"`
	EventClass string          `json:"event_class"`
	Message    string          `json:"message"`
	Data       json.RawMessage `json:"data,omitempty"`
	Sender     string          `json:"sender"`
}

// channelsAt lists the configured channels of level l, in order: an
// event whose Target is l goes to the first.
func (s *site) channelsAt(l instant.Level) []string {
	var out []string
	for _, ch := range s.all {
		if ch.Level == l {
			out = append(out, ch.Name)
		}
	}
	return out
}

// levelNamed is the level whose String is name, or the zero Level.
func levelNamed(name string) instant.Level {
	for l := instant.LevelPublic; l <= instant.LevelPersonal; l++ {
		if l.String() == name {
			return l
		}
	}
	return 0
}

func (s *site) targets() (channels, levels []target) {
	for _, ch := range s.all {
		channels = append(channels, target{Value: ch.Name, Label: ch.Name + " (" + ch.Level.String() + ")", Level: ch.Level})
	}
	for l := instant.LevelPublic; l <= instant.LevelSuperuser; l++ {
		if chans := s.channelsAt(l); len(chans) > 0 {
			levels = append(levels, target{Value: levelTargetPrefix + l.String(), Label: "every " + l.String() + " reader (" + chans[0] + ")", Level: l})
		}
	}
	return channels, levels
}

func (s *site) broadcastPage(c *gin.Context) {
	form := broadcastForm{EventClass: "announcement"}
	if ch := s.channelsAt(instant.LevelPublic); len(ch) > 0 {
		form.Target = ch[0]
	}
	s.renderBroadcast(c, http.StatusOK, form, "", c.Query("sent") != "")
}

func (s *site) renderBroadcast(c *gin.Context, status int, form broadcastForm, msg string, sent bool) {
	channels, levels := s.targets()
	recent := s.recent.list()
	counts := make([]channelCount, 0, len(s.all))
	for _, ch := range s.all {
		n := 0
		for _, ev := range recent {
			for _, name := range ev.Channels {
				if name == ch.Name {
					n++
				}
			}
		}
		counts = append(counts, channelCount{Channel: ch.Name, Level: ch.Level, Count: n})
	}
	s.render(c, status, "broadcast", "Broadcast", broadcastData{
		Channels: channels,
		Levels:   levels,
		Form:     form,
		Error:    msg,
		Sent:     sent,
		Recent:   recent,
		Counts:   counts,
	})
}

// formError is a broadcast form that does not validate or cannot be
// read: a 400, or status when set.
type formError struct {
	msg    string
	status int
}

func (e *formError) Error() string { return e.msg }

// eventFromForm checks the form and builds the event to send.
func (s *site) eventFromForm(f broadcastForm) (instant.Event, error) {
	ev := instant.Event{
		ID:         newID(),
		Message:    strings.TrimSpace(f.Message),
		EventClass: strings.TrimSpace(f.EventClass),
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, &formError{msg: fmt.Sprintf(format, args...)}) }

	switch n := utf8.RuneCountInString(ev.Message); {
	case n == 0:
		bad("The message is required.")
	case n > maxMessageLength:
		bad("The message is longer than %d characters.", maxMessageLength)
	}

	f.Target = strings.TrimSpace(f.Target)
	if f.Target == "" {
		bad("Pick a target channel or level.")
	} else if name, ok := strings.CutPrefix(f.Target, levelTargetPrefix); ok {
		l := levelNamed(name)
		if len(s.channelsAt(l)) == 0 {
			bad("Unknown target %q: pick a channel or a level from the list.", f.Target)
		}
		ev.Target = l
	} else if s.isConfigured(f.Target) {
		ev.Channel = f.Target
	} else {
		bad("Unknown target %q: pick a channel or a level from the list.", f.Target)
	}

	if ev.EventClass == "" {
		ev.EventClass = "default"
	} else if !validEventClass(ev.EventClass) {
		bad("The event class may hold only letters, digits, '-', '_' and '.', at most %d of them.", maxEventClassLength)
	}

	if data := strings.TrimSpace(f.Data); data != "" {
		var v any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			bad("The data is not valid JSON: %v.", err)
		} else {
			ev.Data = json.RawMessage(data)
		}
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for k, e := range errs {
			msgs[k] = e.Error()
		}
		return ev, &formError{msg: strings.Join(msgs, " ")}
	}
	return ev, nil
}

func (s *site) isConfigured(channel string) bool {
	for _, ch := range s.all {
		if ch.Name == channel {
			return true
		}
	}
	return false
}

func validEventClass(s string) bool {
	if len(s) > maxEventClassLength {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// broadcast sends the form's event through the plugin. A script that asks
// for JSON gets {"id","channels",...} or {"error"}; a plain form post is
// redirected back to the page (303) or shown the form again with the error.
func (s *site) broadcast(c *gin.Context) {
	f, err := readBroadcastForm(c)
	if err != nil {
		status := http.StatusBadRequest
		var fe *formError
		if errors.As(err, &fe) && fe.status != 0 {
			status = fe.status
		}
		s.broadcastFailed(c, status, f, err.Error())
		return
	}
	ev, err := s.eventFromForm(f)
	if err != nil {
		s.broadcastFailed(c, http.StatusBadRequest, f, err.Error())
		return
	}
	channels := []string{ev.Channel}
	if ev.Channel == "" {
		channels = s.channelsAt(ev.Target)[:1]
	}
	// The tab that sent the form shows the event from this answer: its
	// helper drops the publication that carries its origin.
	ev.Origin = instant.Origin(c)
	if err := instant.Default(c).Broadcast(c.Request.Context(), ev); err != nil {
		status, msg := http.StatusBadGateway, "Centrifugo did not take the event: "+err.Error()
		var pe *instant.PublishError
		if !errors.As(err, &pe) {
			status, msg = http.StatusBadRequest, "The event was refused: "+err.Error()
		}
		s.logger.Warn("broadcast failed", "error", err)
		s.broadcastFailed(c, status, f, msg)
		return
	}
	sent := sentEvent{
		ID:         ev.ID,
		Time:       time.Now(),
		Channels:   channels,
		EventClass: ev.EventClass,
		Message:    ev.Message,
		Sender:     instant.CurrentUser(c).Username,
	}
	if ev.Data != nil {
		sent.Data = ev.Data.(json.RawMessage)
	}
	s.recent.add(sent)
	if wantsJSON(c) {
		c.JSON(http.StatusOK, sent)
		return
	}
	c.Redirect(http.StatusSeeOther, "/broadcast?sent="+ev.ID)
}

func (s *site) broadcastFailed(c *gin.Context, status int, f broadcastForm, msg string) {
	if wantsJSON(c) {
		c.AbortWithStatusJSON(status, gin.H{"error": msg})
		return
	}
	s.renderBroadcast(c, status, f, msg, false)
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// recentLog keeps the last events broadcast from this site, newest first.
// It is safe for concurrent use.
type recentLog struct {
	mu     sync.Mutex
	events []sentEvent
	size   int
}

func newRecentLog(size int) *recentLog { return &recentLog{size: size} }

func (l *recentLog) add(ev sentEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append([]sentEvent{ev}, l.events...)
	if len(l.events) > l.size {
		l.events = l.events[:l.size]
	}
}

func (l *recentLog) list() []sentEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sentEvent(nil), l.events...)
}
