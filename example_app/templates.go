package main

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-instant/instant"
)

// The pages' templates and the site's own static files (app.js, style.css)
// are compiled into the binary. centrifuge.js is not: npm installs it.
var (
	//go:embed templates/*.html
	templateFiles embed.FS
	//go:embed static/*
	staticFiles embed.FS
)

// pageNames are the page templates; each is parsed with layout.html.
var pageNames = []string{"home", "login", "broadcast", "admin", "error"}

// pages are the parsed templates, by page name.
type pages struct {
	byName map[string]*template.Template
}

var templateFuncs = template.FuncMap{
	"level": func(l instant.Level) string { return l.String() },
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"join":  strings.Join,
	// member reports whether u is in group.
	"member": func(u instant.User, group string) bool { return slices.Contains(u.Groups, group) },
}

func parsePages() (*pages, error) {
	p := &pages{byName: make(map[string]*template.Template, len(pageNames))}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// layoutData is what layout.html reads; Body is the page's own data.
type layoutData struct {
	Title     string
	Page      string // the body's data-page, read by app.js
	User      *instant.User
	UserLabel string
	Staff     bool
	Superuser bool
	Body      any
}

// render writes the page with the given status. The page is rendered into
// a buffer first, so a template error gives a clean 500.
func (s *site) render(c *gin.Context, status int, page, title string, body any) {
	u := instant.CurrentUser(c)
	data := layoutData{
		Title:     title,
		Page:      page,
		User:      u,
		UserLabel: describeUser(u),
		Staff:     u.IsStaff(),
		Superuser: u != nil && u.Superuser,
		Body:      body,
	}
	var buf bytes.Buffer
	t := s.pages.byName[page]
	if t == nil {
		s.logger.Error("no such template", "page", page)
		c.String(http.StatusInternalServerError, "internal error")
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		s.logger.Error("rendering a page", "page", page, "error", err)
		c.String(http.StatusInternalServerError, "internal error")
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// renderError shows an error page with status and a message for people.
func (s *site) renderError(c *gin.Context, status int, msg string) {
	s.render(c, status, "error", http.StatusText(status), struct {
		Status  int
		Message string
	}{status, msg})
	c.Abort()
}

// respondError answers an error as JSON to scripts that ask for JSON, and
// as a page to browsers.
func (s *site) respondError(c *gin.Context, status int, msg string) {
	if wantsJSON(c) {
		c.AbortWithStatusJSON(status, gin.H{"error": msg})
		return
	}
	s.renderError(c, status, msg)
}

// wantsJSON reports whether the request asked for a JSON answer.
func wantsJSON(c *gin.Context) bool {
	return strings.Contains(c.GetHeader("Accept"), "application/json") ||
		strings.HasPrefix(c.ContentType(), "application/json")
}

// ownStaticFiles are the embedded static files, to serve under /static/.
func ownStaticFiles() []staticFile {
	var out []staticFile
	entries, _ := fs.ReadDir(staticFiles, "static")
	for _, e := range entries {
		body, err := staticFiles.ReadFile("static/" + e.Name())
		if err != nil {
			continue
		}
		out = append(out, newStaticFile(e.Name(), body))
	}
	return out
}
