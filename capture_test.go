package instant_test

import (
	"context"
	"log/slog"
)

// captureHandler is a slog.Handler that keeps records in a logRecorder.
type captureHandler struct {
	rec   *logRecorder
	attrs []slog.Attr
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.rec.mu.Lock()
	h.rec.recs = append(h.rec.recs, r)
	h.rec.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &captureHandler{rec: h.rec, attrs: append(append([]slog.Attr{}, h.attrs...), a...)}
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }
