package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestEveryPageRenders(t *testing.T) {
	st := newTestSite(t, noCentrifugo, 8080)
	bodies := map[string]any{
		"home":      homeData{},
		"login":     loginData{Accounts: demoAccounts(), Error: "<script>x</script>"},
		"broadcast": broadcastData{Recent: []sentEvent{{ID: "1", Channels: []string{"site_public"}, Message: "<b>hi</b>"}}},
		"error": struct {
			Status  int
			Message string
		}{418, "teapot"},
	}
	for _, name := range pageNames {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
		st.render(c, http.StatusOK, name, "Title", bodies[name])
		body := w.Body.String()
		if w.Code != http.StatusOK || !strings.Contains(body, "<title>Title · instant demo</title>") {
			t.Errorf("%s: %d\n%s", name, w.Code, body)
		}
		if strings.Contains(body, "<script>x</script>") || strings.Contains(body, "<b>hi</b>") {
			t.Errorf("%s: text was not escaped", name)
		}
	}
}

func TestWantsJSON(t *testing.T) {
	for _, tc := range []struct {
		accept, contentType string
		want                bool
	}{
		{"application/json", "", true},
		{"text/html,application/json;q=0.9", "", true},
		{"", "application/json; charset=utf-8", true},
		{"text/html", "application/x-www-form-urlencoded", false},
		{"", "", false},
	} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPost, "/", nil)
		c.Request.Header.Set("Accept", tc.accept)
		c.Request.Header.Set("Content-Type", tc.contentType)
		if got := wantsJSON(c); got != tc.want {
			t.Errorf("Accept %q, Content-Type %q: %v", tc.accept, tc.contentType, got)
		}
	}
}
