package instant_test

import (
	"context"
	"errors"
	"fmt"
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
	var pe *instant.PublishError
	if !errors.Is(err, instant.ErrAPIKey) || !errors.As(err, &pe) || pe.StatusCode != 401 || speaksGocent(pe.Err) {
		t.Errorf("401: %v (%T)", err, pe.Err)
	}
	f.reply = nil
	f.batchReply = func(w http.ResponseWriter, n int) {
		w.Write([]byte(batchOf(`{"publish":{}}`, `{"error":{"code":102,"message":"unknown channel"}}`)))
	}
	err = inst.Broadcast(context.Background(), instant.Event{Channels: []string{"a", "bc:d"}})
	if !errors.As(err, &pe) || pe.Code != 102 || len(pe.Channels) != 1 || pe.Channels[0] != "bc:d" ||
		pe.Err == nil || pe.Err.Error() != "centrifugo error 102: unknown channel" || speaksGocent(pe.Err) {
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

// speaksGocent reports whether err, or an error it wraps, is one of
// gocent's types or sentinels: a PublishError's Err speaks only of this
// package's names (and the standard library's).
func speaksGocent(err error) bool {
	for err != nil {
		if strings.Contains(fmt.Sprintf("%T", err), "gocent") || errors.Is(err, gocent.ErrMalformedResponse) {
			return true
		}
		err = errors.Unwrap(err)
	}
	return false
}
