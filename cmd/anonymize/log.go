package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// logFormat is --log-format: how log records are written to stderr.
type logFormat int

const (
	logText logFormat = iota // one readable line a record (lineHandler)
	logJSON                  // one JSON object a line, tied to the trace (jsonHandler)
)

var logFormatNames = []string{logText: "text", logJSON: "json"}

func (f logFormat) String() string { return logFormatNames[f] }

func (f *logFormat) Set(s string) error {
	i := slices.Index(logFormatNames, strings.ToLower(strings.TrimSpace(s)))
	if i < 0 {
		return fmt.Errorf("want %s", strings.Join(logFormatNames, " or "))
	}
	*f = logFormat(i)
	return nil
}

func (logFormat) Type() string { return "format" }

// otlpLogLevel is the least level of the records sent over OTLP: what the
// terminal shows without --quiet, which only quiets the terminal.
const otlpLogLevel = slog.LevelInfo

// logHandler is the handler of a command's logger. It writes each record
// to the terminal (text or JSON) and, while telemetry with OTLP logs is
// set up, sends it there too. A record logged without a span in its
// context (most are: a frame's span is the exception) is given the run's
// span once the command knows it, so the JSON line and the OTLP record
// both point at the run's trace.
type logHandler struct {
	term  slog.Handler
	state *logState
	// derive replays the WithAttrs and WithGroup that made this handler
	// on the OTLP handler, which is attached later.
	derive []func(slog.Handler) slog.Handler
	// otlp is the OTLP handler derived for this handler, kept so that
	// derive runs once per attached handler rather than once per record.
	otlp atomic.Pointer[derivedOTLP]
}

// derivedOTLP is an OTLP handler derived from the attached one, base.
type derivedOTLP struct {
	base *slog.Handler
	h    slog.Handler
}

// logState is shared by a command's handler and those derived from it.
type logState struct {
	out  *logOutput
	otlp atomic.Pointer[slog.Handler]
	run  atomic.Pointer[trace.SpanContext]
}

// newLogger returns the logger commands print through, in the format of
// --log-format: informational records unless quiet, warnings and errors
// always.
func newLogger(streams *IOStreams, quiet bool) (*slog.Logger, *logHandler) {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	out := &logOutput{w: streams.ErrOut}
	var term slog.Handler = &lineHandler{out: out, level: level}
	if streams.LogFormat == logJSON {
		term = newJSONHandler(out, level)
	}
	h := &logHandler{term: term, state: &logState{out: out}}
	return slog.New(h), h
}

// attachOTLP sends records to h as well (nil: nothing to attach).
func (h *logHandler) attachOTLP(otlp slog.Handler) {
	if otlp != nil {
		h.state.otlp.Store(&otlp)
	}
}

// setRunSpan makes sc the span of records logged without one.
func (h *logHandler) setRunSpan(sc trace.SpanContext) {
	if sc.IsValid() {
		h.state.run.Store(&sc)
	}
}

// detach stops sending records over OTLP and forgets the run's span:
// telemetry is about to shut down.
func (h *logHandler) detach() {
	h.state.otlp.Store(nil)
	h.state.run.Store(nil)
}

// setInterrupt installs (or, with nil, removes) the progress bar's hook.
func (h *logHandler) setInterrupt(f func(write func())) { h.state.out.setInterrupt(f) }

func (h *logHandler) otlpHandler() slog.Handler {
	p := h.state.otlp.Load()
	if p == nil {
		return nil
	}
	if c := h.otlp.Load(); c != nil && c.base == p {
		return c.h
	}
	o := *p
	for _, d := range h.derive {
		o = d(o)
	}
	h.otlp.Store(&derivedOTLP{base: p, h: o})
	return o
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.term.Enabled(ctx, l) || (l >= otlpLogLevel && h.state.otlp.Load() != nil)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		if run := h.state.run.Load(); run != nil {
			ctx = trace.ContextWithSpanContext(ctx, *run)
		}
	}
	var err error
	if h.term.Enabled(ctx, r.Level) {
		err = h.term.Handle(ctx, r)
	}
	if o := h.otlpHandler(); o != nil && r.Level >= otlpLogLevel && o.Enabled(ctx, r.Level) {
		err = errors.Join(err, o.Handle(ctx, r))
	}
	return err
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(h.term.WithAttrs(attrs), func(o slog.Handler) slog.Handler { return o.WithAttrs(attrs) })
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return h.with(h.term.WithGroup(name), func(o slog.Handler) slog.Handler { return o.WithGroup(name) })
}

func (h *logHandler) with(term slog.Handler, derive func(slog.Handler) slog.Handler) *logHandler {
	return &logHandler{term: term, state: h.state, derive: append(slices.Clip(h.derive), derive)}
}

// jsonHandler writes each record as one JSON object a line (slog's
// JSONHandler: time, level, msg and the attributes), with the trace_id
// and span_id of the span in the record's context when there is one.
type jsonHandler struct{ slog.Handler }

func newJSONHandler(w io.Writer, level slog.Level) jsonHandler {
	return jsonHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}
}

func (h jsonHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone() // the record is shared with the OTLP handler
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h jsonHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return jsonHandler{h.Handler.WithAttrs(attrs)}
}

func (h jsonHandler) WithGroup(name string) slog.Handler {
	return jsonHandler{h.Handler.WithGroup(name)}
}

// lineHandler prints log records as one readable line each
// ("anonymize: warning: CUDA unavailable, running on the CPU (reason=...)"),
// which is what a person at a terminal wants; machine-readable telemetry
// goes through OpenTelemetry or --log-format json instead.
type lineHandler struct {
	out   *logOutput
	level slog.Level
	attrs []slog.Attr
}

// logOutput is where a command's records are written, shared by its
// handlers.
type logOutput struct {
	mu sync.Mutex
	w  io.Writer
	// interrupt, when set, runs around each line so a progress bar on the
	// same terminal can clear itself and redraw below the line.
	interrupt func(write func())
}

func (o *logOutput) setInterrupt(f func(write func())) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.interrupt = f
}

// Write writes one record's line(s) whole.
func (o *logOutput) Write(p []byte) (n int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	write := func() { n, err = o.w.Write(p) }
	if o.interrupt != nil {
		o.interrupt(write)
	} else {
		write()
	}
	return n, err
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
	_, err := io.WriteString(h.out, b.String())
	return err
}

func (h *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
