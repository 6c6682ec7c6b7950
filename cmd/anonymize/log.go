package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// lineHandler prints log records as one readable line each
// ("anonymize: warning: CUDA unavailable, running on the CPU (reason=...)"),
// which is what a person at a terminal wants; machine-readable telemetry
// goes through OpenTelemetry instead.
type lineHandler struct {
	out   *logOutput
	level slog.Level
	attrs []slog.Attr
}

// logOutput is shared by a handler and those derived from it.
type logOutput struct {
	mu sync.Mutex
	w  io.Writer
	// interrupt, when set, runs around each line so a progress bar on the
	// same terminal can clear itself and redraw below the line.
	interrupt func(write func())
}

func newLineHandler(w io.Writer, level slog.Level) *lineHandler {
	return &lineHandler{out: &logOutput{w: w}, level: level}
}

// setInterrupt installs (or, with nil, removes) the progress bar's hook.
func (h *lineHandler) setInterrupt(f func(write func())) {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.interrupt = f
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("anonymize: ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	var kv []string
	add := func(a slog.Attr) bool {
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " \t") {
			v = fmt.Sprintf("%q", v)
		}
		kv = append(kv, a.Key+"="+v)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if len(kv) > 0 {
		b.WriteString(" (" + strings.Join(kv, ", ") + ")")
	}
	b.WriteByte('\n')
	o := h.out
	o.mu.Lock()
	defer o.mu.Unlock()
	var err error
	write := func() { _, err = io.WriteString(o.w, b.String()) }
	if o.interrupt != nil {
		o.interrupt(write)
	} else {
		write()
	}
	return err
}

func (h *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
