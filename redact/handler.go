package redact

import (
	"context"
	"fmt"
	"log/slog"
)

// A Handler redacts a record's message and attributes (strings, errors and
// anything else formatted as text, after LogValuer resolution, in groups
// too) before passing it to the handler under it.
type Handler struct {
	h slog.Handler
	r *Redactor
}

// NewHandler returns a Handler that redacts with r (nil: String) for h.
func NewHandler(h slog.Handler, r *Redactor) *Handler {
	return &Handler{h: h, r: r}
}

// Enabled reports whether the handler under h handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.h.Enabled(ctx, level)
}

// Handle redacts rec and passes it on.
func (h *Handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

// WithAttrs returns a Handler for the handler under h with attrs, redacted.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &Handler{h: h.h.WithAttrs(red), r: h.r}
}

// WithGroup returns a Handler for the handler under h with the group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{h: h.h.WithGroup(name), r: h.r}
}

// attr redacts one attribute; values that print unchanged stay as they are.
func (h *Handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		v = slog.StringValue(h.r.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = h.attr(ga)
		}
		return slog.Group(h.r.String(a.Key), red...)
	case slog.KindAny:
		var text string
		switch x := v.Any().(type) {
		case error:
			text = x.Error()
		default:
			text = fmt.Sprintf("%+v", x)
		}
		if red := h.r.String(text); red != text {
			v = slog.StringValue(red)
		}
	}
	return slog.Attr{Key: h.r.String(a.Key), Value: v}
}
