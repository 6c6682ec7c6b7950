package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestLogFormatFlag(t *testing.T) {
	tests := []struct {
		args    []string
		want    logFormat
		wantErr string
	}{
		{args: []string{"version"}, want: logText},
		{args: []string{"--log-format", "json", "version"}, want: logJSON},
		{args: []string{"version", "--log-format=text"}, want: logText},
		{args: []string{"--log-format", "JSON", "version"}, want: logJSON},
		{args: []string{"--log-format", "xml", "version"}, wantErr: `invalid argument "xml" for "--log-format" flag: want text or json`},
		{args: []string{"--log-format=", "version"}, wantErr: `for "--log-format" flag: want text or json`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, _, errOut := testFactory(t, nil)
			code := Execute(context.Background(), f, tt.args...)
			if tt.wantErr != "" {
				if code != exitUsage || !strings.Contains(errOut.String(), tt.wantErr) {
					t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, exitUsage, tt.wantErr)
				}
				return
			}
			if code != exitOK || f.IO.LogFormat != tt.want {
				t.Errorf("exit %d, format %v; want 0 and %v (stderr %q)", code, f.IO.LogFormat, tt.want, errOut)
			}
		})
	}
}

// testSpans returns a run span and a frame span of their own traces, as a
// command has them.
func testSpans(t *testing.T) (run trace.SpanContext, frame context.Context) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	_, r := tp.Tracer("test").Start(context.Background(), "anonymize_video")
	frame, _ = tp.Tracer("test").Start(context.Background(), "process_single_frame")
	return r.SpanContext(), frame
}

// jsonLines decodes stderr as one JSON object a line.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON object: %q (%v)", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestJSONLogs: --log-format json writes one object a line with the time,
// level, message and attributes, and the trace and span of the record's
// context, else of the run, else none.
func TestJSONLogs(t *testing.T) {
	runSpan, frameCtx := testSpans(t)
	frameSpan := trace.SpanContextFromContext(frameCtx)
	tests := []struct {
		name     string
		ctx      context.Context
		run      bool // the run's span is known
		wantSpan trace.SpanContext
	}{
		{"frame span", frameCtx, true, frameSpan},
		{"run span", context.Background(), true, runSpan},
		{"frame span before the run", frameCtx, false, frameSpan},
		{"no span", context.Background(), false, trace.SpanContext{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			log, h := newLogger(&IOStreams{ErrOut: &errOut, LogFormat: logJSON}, false)
			if tt.run {
				h.setRunSpan(runSpan)
			}
			log.WarnContext(tt.ctx, "frame size is odd", "input", "a b.mp4", "frames", 3)
			log.Info("model loaded")
			log.Debug("not shown")
			lines := jsonLines(t, errOut.String())
			if len(lines) != 2 {
				t.Fatalf("%d lines, want 2:\n%s", len(lines), errOut.String())
			}
			w := lines[0]
			if w["level"] != "WARN" || w["msg"] != "frame size is odd" || w["input"] != "a b.mp4" || w["frames"] != 3.0 || w["time"] == nil {
				t.Errorf("record %v: time, level, message or attributes wrong", w)
			}
			if lines[1]["level"] != "INFO" || lines[1]["msg"] != "model loaded" {
				t.Errorf("record %v", lines[1])
			}
			if !tt.wantSpan.IsValid() {
				if _, ok := w["trace_id"]; ok {
					t.Errorf("trace_id %v without a span", w["trace_id"])
				}
				return
			}
			if w["trace_id"] != tt.wantSpan.TraceID().String() || w["span_id"] != tt.wantSpan.SpanID().String() {
				t.Errorf("trace %v span %v, want %s %s", w["trace_id"], w["span_id"], tt.wantSpan.TraceID(), tt.wantSpan.SpanID())
			}
		})
	}
}

// TestTextLogsUnchanged: the default format stays one readable line a
// record, whatever span is known.
func TestTextLogsUnchanged(t *testing.T) {
	runSpan, frameCtx := testSpans(t)
	var errOut bytes.Buffer
	log, h := newLogger(&IOStreams{ErrOut: &errOut}, false)
	h.setRunSpan(runSpan)
	log.WarnContext(frameCtx, "frame size is odd", "input", "a b.mp4")
	log.Info("model loaded", "model", "detector")
	log.Error("encoder failed")
	want := "anonymize: warning: frame size is odd (input=\"a b.mp4\")\n" +
		"anonymize: model loaded (model=detector)\n" +
		"anonymize: error: encoder failed\n"
	if errOut.String() != want {
		t.Errorf("stderr\n%s\nwant\n%s", errOut.String(), want)
	}
}

// TestLogsInterruptTheBar: in either format a record goes through the
// progress bar's hook, so the bar clears itself and redraws below it.
func TestLogsInterruptTheBar(t *testing.T) {
	for _, format := range []logFormat{logText, logJSON} {
		var errOut bytes.Buffer
		log, h := newLogger(&IOStreams{ErrOut: &errOut, LogFormat: format}, false)
		h.setInterrupt(func(write func()) {
			errOut.WriteString("[clear]")
			write()
			errOut.WriteString("[redraw]")
		})
		log.Warn("hello")
		if s := errOut.String(); !strings.HasPrefix(s, "[clear]") || !strings.HasSuffix(s, "\n[redraw]") || !strings.Contains(s, "hello") {
			t.Errorf("%v: %q, want the record between the bar's clear and redraw", format, s)
		}
	}
}

// recordingExporter keeps what the batch of an sdk/log provider exports.
type recordingExporter struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (e *recordingExporter) Export(_ context.Context, rs []sdklog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range rs {
		e.records = append(e.records, r.Clone())
	}
	return nil
}
func (e *recordingExporter) Shutdown(context.Context) error   { return nil }
func (e *recordingExporter) ForceFlush(context.Context) error { return nil }

// TestLogsOverOTLP: with an OTLP handler attached, every record from info
// up goes there too (with --quiet as well, which only quiets the
// terminal), with the same trace and span as the JSON line: the frame's,
// else the run's. Once detached, records go to the terminal only.
func TestLogsOverOTLP(t *testing.T) {
	runSpan, frameCtx := testSpans(t)
	frameSpan := trace.SpanContextFromContext(frameCtx)
	exp := &recordingExporter{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	var errOut bytes.Buffer
	log, h := newLogger(&IOStreams{ErrOut: &errOut, LogFormat: logJSON}, true)
	log.Warn("before telemetry")
	h.attachOTLP(otelslog.NewHandler("test", otelslog.WithLoggerProvider(lp)))
	h.setRunSpan(runSpan)
	log.WarnContext(frameCtx, "frame warning", "frame", 7)
	log.With("input", "a.mp4").Error("run error")
	log.Info("quiet info")
	log.Debug("debug")
	h.detach()
	log.Warn("after telemetry")

	type want struct {
		severity otellog.Severity
		span     trace.SpanContext
		attr     string
	}
	wants := map[string]want{
		"frame warning": {otellog.SeverityWarn, frameSpan, "frame"},
		"run error":     {otellog.SeverityError, runSpan, "input"},
		"quiet info":    {otellog.SeverityInfo, runSpan, ""},
	}
	got := map[string]sdklog.Record{}
	for _, r := range exp.records {
		got[r.Body().AsString()] = r
	}
	if len(got) != len(wants) {
		t.Errorf("OTLP records %v, want %d", keys(got), len(wants))
	}
	for body, w := range wants {
		r, ok := got[body]
		if !ok {
			t.Errorf("record %q not sent", body)
			continue
		}
		if r.Severity() != w.severity || r.TraceID() != w.span.TraceID() || r.SpanID() != w.span.SpanID() {
			t.Errorf("%q: severity %v trace %s span %s; want %v %s %s", body, r.Severity(), r.TraceID(), r.SpanID(),
				w.severity, w.span.TraceID(), w.span.SpanID())
		}
		found := w.attr == ""
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			found = found || string(kv.Key) == w.attr
			return true
		})
		if !found {
			t.Errorf("%q lacks attribute %s", body, w.attr)
		}
	}

	// The terminal: warnings and errors (--quiet), the same spans.
	lines := jsonLines(t, errOut.String())
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l["msg"].(string))
		if w, ok := wants[l["msg"].(string)]; ok && (l["trace_id"] != w.span.TraceID().String() || l["span_id"] != w.span.SpanID().String()) {
			t.Errorf("JSON %v: not the span of the OTLP record", l)
		}
		if _, traced := l["trace_id"]; traced && (l["msg"] == "before telemetry" || l["msg"] == "after telemetry") {
			t.Errorf("JSON %v: a span outside the run", l)
		}
	}
	if strings.Join(msgs, ",") != "before telemetry,frame warning,run error,after telemetry" {
		t.Errorf("terminal records %v", msgs)
	}
}

func keys(m map[string]sdklog.Record) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestExecuteLastWordsJSON: with --log-format json, the error Execute
// reports is a JSON record too (with the exit status), so stderr stays
// JSON to the end; text keeps the line and the usage hint.
func TestExecuteLastWordsJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		text string
	}{
		{"usage", []string{"video", "only-one.mp4"}, exitUsage, "accepts 2 arg(s)"},
		{"error", []string{"video", "/does/not/exist.mp4", "out.mp4"}, exitError, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _, errOut := testFactory(t, nil)
			if code := Execute(context.Background(), f, append([]string{"--log-format", "json"}, tc.args...)...); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
				t.Fatalf("last stderr line is not JSON: %v\n%s", err, errOut)
			}
			if rec["level"] != "ERROR" || !strings.Contains(rec["msg"].(string), tc.text) || rec["exit_code"] != float64(tc.code) {
				t.Errorf("last record %v, want level ERROR, msg with %q, exit_code %d", rec, tc.text, tc.code)
			}

			f, _, errOut = testFactory(t, nil)
			Execute(context.Background(), f, tc.args...)
			if !strings.HasPrefix(errOut.String(), "anonymize: error: ") || !strings.Contains(errOut.String(), tc.text) {
				t.Errorf("text mode: %q", errOut)
			}
		})
	}
}
