package wandb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/anonymize-dev/anonymize/telemetry/wandb/wandbtest"
)

const testKey = "test-api-key-0123456789"

// fastUpload shortens every wait so tests of retries take milliseconds.
var fastUpload = UploadOptions{
	FlushInterval:   10 * time.Millisecond,
	MaxBatchLines:   4,
	RetryInitial:    time.Millisecond,
	RetryMax:        10 * time.Millisecond,
	SyncAttempts:    8,
	RequestTimeout:  5 * time.Second,
	SummaryInterval: 10 * time.Millisecond,
}

func testSettings(t *testing.T, mode Mode, srv *wandbtest.Server, id string) Settings {
	t.Helper()
	s := Settings{Project: "proj", Mode: mode, RunID: id, RunName: "test run", Dir: t.TempDir(), Upload: fastUpload}
	if srv != nil {
		s.APIKey, s.BaseURL = testKey, srv.URL
	}
	return s
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// fixedClock makes a run's start and end, hence _runtime, reproducible.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

var runStart = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// The frame layout the tests emit: frames start frameGap apart and take
// longer than that, so they overlap as in the pipeline.
const (
	frameGap   = 40 * time.Millisecond
	frameTotal = 100 * time.Millisecond
)

// frameSpec is one emitted frame, for computing what its row must hold.
type frameSpec struct {
	index, batches, people, detections int
	start, end                         time.Time
}

func (f frameSpec) poseInferenceMS() float64 {
	ms := 0.0
	for b := range f.batches {
		ms += float64(poseInferenceDur(b)) / 1e6
	}
	return ms
}

func poseInferenceDur(batch int) time.Duration { return time.Duration(8+2*batch) * time.Millisecond }

// emitFrames plays the pipeline's span tree for n frames, frames
// interleaved: frame i's spans all end before frame i-1's root does. Odd
// frames run pose estimation in two batches.
func emitFrames(t *testing.T, tp trace.TracerProvider, first time.Time, n int) []frameSpec {
	t.Helper()
	tr := tp.Tracer("test")
	ctx := context.Background()
	span := func(parent context.Context, name string, from, to time.Time, attrs ...attribute.KeyValue) context.Context {
		c, s := tr.Start(parent, name, trace.WithTimestamp(from), trace.WithAttributes(attrs...))
		s.End(trace.WithTimestamp(to))
		return c
	}
	var specs []frameSpec
	var prev trace.Span
	var prevEnd time.Time
	for i := range n {
		f := frameSpec{index: i, batches: 1 + i%2, people: i % 4, detections: i % 4, start: first.Add(time.Duration(i) * frameGap)}
		f.end = f.start.Add(frameTotal)
		at := func(ms int) time.Time { return f.start.Add(time.Duration(ms) * time.Millisecond) }
		fctx, root := tr.Start(ctx, FrameSpanName, trace.WithNewRoot(), trace.WithTimestamp(f.start),
			trace.WithAttributes(attribute.Int("frame.index", i), attribute.Float64("frame.timestamp_ms", float64(i)*40)))
		span(fctx, "decode", at(0), at(5))
		span(fctx, "wait_for_inference", at(5), at(10))

		dctx, det := tr.Start(fctx, "person_detection", trace.WithTimestamp(at(10)))
		span(dctx, "preprocess", at(10), at(12))
		span(dctx, "inference", at(12), at(27))
		span(dctx, "postprocess", at(27), at(30))
		det.SetAttributes(attribute.Int("detections", f.detections))
		det.End(trace.WithTimestamp(at(30)))

		pctx, pose := tr.Start(fctx, "pose_estimation", trace.WithTimestamp(at(30)))
		t0 := at(30)
		for b := range f.batches {
			t1 := t0.Add(time.Millisecond)
			t2 := t1.Add(poseInferenceDur(b))
			t3 := t2.Add(time.Millisecond)
			span(pctx, "preprocess", t0, t1)
			span(pctx, "inference", t1, t2, attribute.Int("batch", b))
			span(pctx, "postprocess", t2, t3)
			t0 = t3
		}
		pose.SetAttributes(attribute.Int("people", f.people), attribute.Int("batches", f.batches))
		pose.End(trace.WithTimestamp(at(60)))

		span(fctx, "wait_for_encode", at(60), at(70))
		span(fctx, "mask", at(70), at(75), attribute.Int("masks", f.people))
		span(fctx, "encode", at(75), at(90))
		root.SetAttributes(attribute.Int("people.count", f.people))

		// The previous frame's root ends only now, after this frame's
		// spans: the pipeline overlaps frames.
		if prev != nil {
			prev.End(trace.WithTimestamp(prevEnd))
		}
		prev, prevEnd = root, f.end
		specs = append(specs, f)
	}
	if prev != nil {
		prev.End(trace.WithTimestamp(prevEnd))
	}
	return specs
}

// emitRunSpan ends the run-level span, as the pipeline does last.
func emitRunSpan(tp trace.TracerProvider, from, to time.Time) {
	_, s := tp.Tracer("test").Start(context.Background(), RunSpanName, trace.WithTimestamp(from), trace.WithAttributes(
		attribute.String("video.codec", "h264"),
		attribute.Int("video.width", 1280),
		attribute.Bool("video.has_audio", true),
		attribute.String("device", "cpu"),
		attribute.String("model.detector.sha256", "feedbeef"),
	))
	s.End(trace.WithTimestamp(to))
}

// startRun starts a run and a tracer provider over its exporter; the
// provider is shut down (delivering every span) by the returned func.
func startRun(t *testing.T, opts Options, batch bool) (*Run, *sdktrace.TracerProvider) {
	t.Helper()
	r, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	var tp *sdktrace.TracerProvider
	if batch {
		tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(r.SpanExporter()))
	} else {
		tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.SpanExporter()))
	}
	return r, tp
}

func shutdown(t *testing.T, tp *sdktrace.TracerProvider) {
	t.Helper()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatalf("tracer provider shutdown: %v", err)
	}
}

func finish(t *testing.T, r *Run, timeout time.Duration, code int) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.Finish(ctx, code)
}

// readLines parses a local .jsonl file.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func localHistory(t *testing.T, dir string) []map[string]any {
	t.Helper()
	return readLines(t, filepath.Join(dir, filesDirName, historyFileName))
}

func localEvents(t *testing.T, dir string) []map[string]any {
	t.Helper()
	return readLines(t, filepath.Join(dir, filesDirName, eventsFileName))
}

func localSummary(t *testing.T, dir string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := readJSONFile(filepath.Join(dir, filesDirName, summaryFileName), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func localSync(t *testing.T, dir string) syncState {
	t.Helper()
	st, err := readSyncState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// serverRun fetches the run the fake server holds, failing when absent.
func serverRun(t *testing.T, srv *wandbtest.Server, entity, project, id string) wandbtest.Run {
	t.Helper()
	r, ok := srv.Run(entity, project, id)
	if !ok {
		t.Fatalf("server has no run %s/%s/%s; it has %d runs", entity, project, id, len(srv.Runs()))
	}
	return r
}

// resync clears the server's faults and syncs dir: every history row
// must then be on the server, once.
func resync(t *testing.T, srv *wandbtest.Server, s Settings, dir, id string) wandbtest.Run {
	t.Helper()
	srv.ClearFaults()
	if err := Sync(context.Background(), []string{dir}, s, nil); err != nil {
		t.Fatalf("sync once the server is well: %v", err)
	}
	run := serverRun(t, srv, wandbtest.DefaultEntity, "proj", id)
	checkStored(t, "history", run.History, localHistory(t, dir), false)
	return run
}

// checkStored asserts the server holds want, each offset once, with
// no gap; allowResent accepts offsets received twice (after a dropped
// connection).
func checkStored(t *testing.T, what string, f wandbtest.File, want []map[string]any, allowResent bool) {
	t.Helper()
	if g := f.Gaps(); len(g) > 0 {
		t.Errorf("%s: server misses offsets %v", what, g)
	}
	if f.Len() != len(want) {
		t.Errorf("%s: server holds %d lines, want %d", what, f.Len(), len(want))
	}
	if r := f.Resent(); len(r) > 0 && !allowResent {
		t.Errorf("%s: offsets %v received more than once", what, r)
	}
	got, err := f.Rows()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !jsonEqual(got, want) {
		t.Errorf("%s: server rows differ from the local ones\n got: %v\nwant: %v", what, got, want)
	}
}

// jsonEqual compares values after a JSON round trip, as numbers may be
// int64 on one side and float64 on the other.
func jsonEqual(a, b any) bool {
	norm := func(v any) string {
		j, err := json.Marshal(v)
		if err != nil {
			return "!" + err.Error()
		}
		var x any
		_ = json.Unmarshal(j, &x)
		j, _ = json.Marshal(x)
		return string(j)
	}
	return norm(a) == norm(b)
}

// withinWatchdog runs f and fails the test if it has not returned after
// limit: a guard against a hang, far above any expected duration.
func withinWatchdog(t *testing.T, limit time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s still blocked after %v", what, limit)
	}
}
