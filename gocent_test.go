package instant_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/centrifugal/gocent/v3"
	"github.com/gin-instant/instant"
)

func TestBroadcastAPIErrors(t *testing.T) {
	inst, f := fakeInstant(t)
	f.reply = func(w http.ResponseWriter, n int) { w.WriteHeader(http.StatusUnauthorized) }
	err := inst.Broadcast(context.Background(), instant.Event{Channel: "a"})
	var status gocent.ErrStatusCode
	var pe *instant.PublishError
	if !errors.Is(err, instant.ErrAPIKey) || !errors.As(err, &status) || status.Code != 401 || !errors.As(err, &pe) || pe.StatusCode != 401 {
		t.Errorf("401: %v", err)
	}
	f.reply = nil
	f.batchReply = func(w http.ResponseWriter, n int) {
		w.Write([]byte(batchOf(`{"publish":{}}`, `{"error":{"code":102,"message":"unknown channel"}}`)))
	}
	err = inst.Broadcast(context.Background(), instant.Event{Channels: []string{"a", "bc:d"}})
	var apiErr *gocent.Error
	if !errors.As(err, &pe) || pe.Code != 102 || len(pe.Channels) != 1 || pe.Channels[0] != "bc:d" || !errors.As(err, &apiErr) {
		t.Errorf("API error: %v", err)
	}
	if errors.Is(err, instant.ErrAPIKey) {
		t.Error("API error taken for a key refusal")
	}
}

func TestOtherAPICallsWrapErrors(t *testing.T) {
	inst, f := fakeInstant(t)
	f.reply = func(w http.ResponseWriter, n int) {
		w.Write([]byte(`{"error":{"code":108,"message":"not available"}}` + "\n"))
	}
	_, err := inst.History(context.Background(), "news", 5)
	var pe *instant.PublishError
	if !errors.As(err, &pe) || pe.Op != "history" || pe.Code != 108 || pe.Channels[0] != "news" {
		t.Errorf("history: %v", err)
	}
	f.reply = func(w http.ResponseWriter, n int) { w.WriteHeader(http.StatusUnauthorized) }
	err = inst.Disconnect(context.Background(), "42")
	if !errors.Is(err, instant.ErrAPIKey) || !strings.HasPrefix(err.Error(), "instant: disconnect: ") {
		t.Errorf("disconnect: %v", err)
	}
	err = inst.Unsubscribe(context.Background(), "news", "42")
	if !errors.As(err, &pe) || pe.Op != "unsubscribe" {
		t.Errorf("unsubscribe: %v", err)
	}
}
