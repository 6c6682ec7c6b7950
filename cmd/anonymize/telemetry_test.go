package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/anonymize-dev/anonymize/internal/otlptest"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/telemetry"
	"github.com/anonymize-dev/anonymize/telemetry/wandb/wandbtest"
)

const wandbKey = "test-key-0123456789"

func wandbEnv(srv *wandbtest.Server, dir string, extra ...string) []string {
	return append([]string{
		"WANDB_BASE_URL=" + srv.URL, "WANDB_API_KEY=" + srv.APIKey, "WANDB_ENTITY=lab",
		"WANDB_PROJECT=faces", "WANDB_DIR=" + dir,
	}, extra...)
}

// TestTelemetryOTLPAndWandB runs a video with both sinks at once, as a
// user would with a Collector and a W&B account, over each OTLP protocol.
func TestTelemetryOTLPAndWandB(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	for _, proto := range []string{"http/protobuf", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			var recv *otlptest.Receiver
			var endpoint string
			if proto == "grpc" {
				recv, endpoint = otlptest.StartGRPC(t)
			} else {
				recv, endpoint = otlptest.StartHTTP(t)
			}
			wb := wandbtest.NewServer(t, wandbKey)
			dir := t.TempDir()
			env := wandbEnv(wb, dir, "OTEL_EXPORTER_OTLP_ENDPOINT="+endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL="+proto,
				"OTEL_SERVICE_NAME=anonymize-test", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=ci")
			out := filepath.Join(dir, "out.mp4")
			r := run(t, env, append(append([]string{"video", "--device", "cpu", "--telemetry", "otlp,wandb"},
				modelFlags(detector, pose)...), clip, out)...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			if strings.Contains(r.stderr, "telemetry incomplete") {
				t.Errorf("telemetry reported losses with healthy sinks:\n%s", r.stderr)
			}

			// OTLP: one trace per frame with the stage spans, the run span,
			// and the metrics.
			names := map[string]int{}
			for _, s := range recv.Spans() {
				names[s.GetName()]++
			}
			for name, want := range map[string]int{
				"process_single_frame": scene.Frames, "decode": scene.Frames, "person_detection": scene.Frames,
				"pose_estimation": scene.Frames, "mask": scene.Frames, "encode": scene.Frames,
				"wait_for_inference": scene.Frames, "wait_for_batch": scene.Frames, "wait_for_pose": scene.Frames,
				"wait_for_track": scene.Frames, "track": scene.Frames,
				"wait_for_encode": scene.Frames, "anonymize_video": 1,
			} {
				if names[name] != want {
					t.Errorf("OTLP: %d %s spans, want %d", names[name], name, want)
				}
			}
			metrics := map[string]bool{}
			for _, m := range recv.Metrics() {
				metrics[m.GetName()] = true
			}
			for _, want := range []string{"anonymize.detected_people", "anonymize.people_per_frame", "anonymize.frames",
				"anonymize.stage.duration", "anonymize.masks", "anonymize.mask.fallbacks", "anonymize.runs"} {
				if !metrics[want] {
					t.Errorf("OTLP: metric %s missing (got %v)", want, slices.Sorted(maps.Keys(metrics)))
				}
			}
			if len(recv.Logs()) == 0 {
				t.Error("OTLP: no log records (the models' \"model loaded\" at least)")
			}
			res := recv.Resources()
			if len(res) == 0 || res[0]["service.name"] != "anonymize-test" || res[0]["deployment.environment"] != "ci" ||
				res[0]["service.version"] == "" || res[0]["host.name"] == "" {
				t.Errorf("OTLP resource %v: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES not honoured or host missing", res)
			}

			// W&B: one row per frame with every child span's key.
			wrun, ok := wb.Run("lab", "faces", wandbRunID(t, dir))
			if !ok {
				t.Fatalf("no W&B run on the server; runs: %+v", wb.Runs())
			}
			checkWandBRun(t, wrun, scene.Frames)
			if v, _ := wrun.Config["model.detector.sha256"].(map[string]any); v["value"] == nil {
				t.Errorf("W&B config lacks the detector sha256: %v", wrun.Config)
			}
			if v, _ := wrun.Config["threshold"].(map[string]any); v["value"] != 0.7 {
				t.Errorf("W&B config threshold %v, want 0.7", v)
			}
		})
	}
}

// checkWandBRun asserts a complete run with one row per frame.
func checkWandBRun(t *testing.T, wrun wandbtest.Run, frames int) {
	t.Helper()
	if !wrun.Complete || wrun.ExitCode == nil || *wrun.ExitCode != 0 || wrun.CompleteCount != 1 {
		t.Errorf("W&B run complete=%v exit=%v count=%d, want completed once with 0", wrun.Complete, wrun.ExitCode, wrun.CompleteCount)
	}
	rows, err := wrun.History.Rows()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != frames || len(wrun.History.Gaps()) != 0 {
		t.Fatalf("%d history rows (gaps %v), want %d", len(rows), wrun.History.Gaps(), frames)
	}
	for i, row := range rows {
		if row["_step"] != float64(i) {
			t.Errorf("row %d _step %v", i, row["_step"])
		}
		for _, key := range []string{
			"otel/span/process_single_frame/duration/ms", "otel/span/process_single_frame/people.count",
			"otel/span/decode/duration/ms", "otel/span/wait_for_inference/duration/ms",
			"otel/span/person_detection/duration/ms", "otel/span/person_detection.preprocess/duration/ms",
			"otel/span/person_detection.inference/duration/ms", "otel/span/person_detection.postprocess/duration/ms",
			"otel/span/person_detection.wait_for_batch/duration/ms", "otel/span/wait_for_pose/duration/ms",
			"otel/span/pose_estimation/duration/ms", "otel/span/pose_estimation/batches",
			"otel/span/wait_for_track/duration/ms", "otel/span/track/duration/ms", "otel/span/track/track.held",
			"otel/span/wait_for_encode/duration/ms", "otel/span/mask/duration/ms", "otel/span/encode/duration/ms",
		} {
			if _, ok := row[key]; !ok {
				t.Errorf("row %d lacks %s", i, key)
			}
		}
	}
}

// wandbRunID reads the id of the single run saved under dir.
func wandbRunID(t *testing.T, dir string) string {
	t.Helper()
	runs, _ := filepath.Glob(filepath.Join(dir, "wandb", "*run-*"))
	if len(runs) != 1 {
		t.Fatalf("%d W&B run folders in %s, want 1", len(runs), dir)
	}
	return runs[0][strings.LastIndex(runs[0], "-")+1:]
}

// TestWandBOfflineThenSync records a run offline, then uploads it.
func TestWandBOfflineThenSync(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	wb := wandbtest.NewServer(t, wandbKey)
	dir := t.TempDir()
	r := run(t, wandbEnv(wb, dir, "WANDB_MODE=offline"), append(append([]string{"video", "-q", "--device", "cpu",
		"--telemetry", "wandb"}, modelFlags(detector, pose)...), clip, filepath.Join(dir, "out.mp4"))...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if n := len(wb.Requests()); n != 0 {
		t.Fatalf("offline run sent %d requests", n)
	}
	r = run(t, wandbEnv(wb, dir), "wandb", "sync", filepath.Join(dir, "wandb"))
	if r.code != 0 {
		t.Fatalf("sync: exit %d\n%s", r.code, r.stderr)
	}
	wrun, ok := wb.Run("lab", "faces", wandbRunID(t, dir))
	if !ok {
		t.Fatalf("sync created no run; runs: %+v", wb.Runs())
	}
	checkWandBRun(t, wrun, scene.Frames)
	// Syncing again sends nothing new.
	before := len(wb.Requests())
	if r = run(t, wandbEnv(wb, dir), "wandb", "sync", filepath.Join(dir, "wandb")); r.code != 0 {
		t.Fatalf("second sync: exit %d\n%s", r.code, r.stderr)
	}
	if after := len(wb.Requests()); after != before {
		t.Errorf("second sync sent %d requests for a completed run", after-before)
	}
}

// TestTelemetrySinksDownNeverHurtTheJob points OTLP at a closed port and
// W&B at a server that hangs: the video comes out whole, exit 0, and one
// warning says what was lost and how to recover the W&B run.
func TestTelemetrySinksDownNeverHurtTheJob(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	wb := wandbtest.NewServer(t, wandbKey)
	wb.Hang(true)
	dir := t.TempDir()
	env := wandbEnv(wb, dir, "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
	out := filepath.Join(dir, "out.mp4")
	start := time.Now()
	r := run(t, env, append(append([]string{"video", "-q", "--device", "cpu", "--telemetry", "otlp,wandb"},
		modelFlags(detector, pose)...), clip, out)...)
	t.Logf("run with dead sinks took %v", time.Since(start))
	if r.code != 0 {
		t.Fatalf("exit %d with sinks down\n%s", r.code, r.stderr)
	}
	if n := countFrames(t, out); n != scene.Frames {
		t.Errorf("%d frames written, want %d", n, scene.Frames)
	}
	var warnings []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.Contains(l, "telemetry incomplete") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("%d telemetry warnings, want one:\n%s", len(warnings), r.stderr)
	}
	for _, want := range []string{"spans not sent to otlp", "anonymize wandb sync"} {
		if !strings.Contains(warnings[0], want) {
			t.Errorf("warning %q does not mention %q", warnings[0], want)
		}
	}
	// The W&B run is complete on disk and can be uploaded later.
	wb.Hang(false)
	if r := run(t, wandbEnv(wb, dir), "wandb", "sync", filepath.Join(dir, "wandb")); r.code != 0 {
		t.Fatalf("sync after the outage: exit %d\n%s", r.code, r.stderr)
	}
	wrun, ok := wb.Run("lab", "faces", wandbRunID(t, dir))
	if !ok {
		t.Fatal("no run after sync")
	}
	checkWandBRun(t, wrun, scene.Frames)
}

// TestLogsTiedToTheRun runs a video whose odd size makes the pipeline warn
// while it runs, with OTLP and --log-format json: the warning reaches the
// receiver as a record of the run's trace and span, stderr has it as a
// JSON line with the same ids, and the run counts as started and
// succeeded.
func TestLogsTiedToTheRun(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "odd.mkv")
	mustRun(t, testutil.Tool(t, "ffmpeg"), "-v", "error", "-y", "-i", clip, "-frames:v", "8", "-an",
		"-vf", fmt.Sprintf("scale=%d:%d", scene.Width+1, scene.Height+1), "-c:v", "ffv1", in)
	recv, endpoint := otlptest.StartHTTP(t)
	r := run(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"},
		append(append([]string{"--log-format", "json", "video", "--device", "cpu", "--telemetry", "otlp"},
			modelFlags(detector, pose)...), in, filepath.Join(dir, "out.mp4"))...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "telemetry incomplete") {
		t.Errorf("telemetry reported losses with a healthy receiver:\n%s", r.stderr)
	}
	var runSpan *tracepb.Span
	for _, s := range recv.Spans() {
		if s.GetName() == "anonymize_video" {
			runSpan = s
		}
	}
	if runSpan == nil {
		t.Fatal("no anonymize_video span")
	}
	traceID, spanID := hex.EncodeToString(runSpan.GetTraceId()), hex.EncodeToString(runSpan.GetSpanId())

	// OTLP: the warning, in the run's span; nothing in another trace.
	var odd *logspb.LogRecord
	for _, l := range recv.Logs() {
		if strings.Contains(l.GetBody().GetStringValue(), "is odd") {
			odd = l
		}
		if tid := hex.EncodeToString(l.GetTraceId()); tid != "" && tid != traceID {
			t.Errorf("OTLP record %q in trace %s, not the run's %s", l.GetBody().GetStringValue(), tid, traceID)
		}
	}
	if odd == nil {
		t.Fatalf("OTLP: no odd-size warning among %d records", len(recv.Logs()))
	}
	if hex.EncodeToString(odd.GetTraceId()) != traceID || hex.EncodeToString(odd.GetSpanId()) != spanID ||
		odd.GetSeverityNumber() != logspb.SeverityNumber_SEVERITY_NUMBER_WARN {
		t.Errorf("OTLP warning trace %x span %x severity %v; want the run's %s %s and WARN",
			odd.GetTraceId(), odd.GetSpanId(), odd.GetSeverityNumber(), traceID, spanID)
	}

	// stderr: records as JSON lines, the warning with the same ids.
	found := false
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(line, "anonymize: warning:") || strings.HasPrefix(line, "anonymize: error:") {
			t.Errorf("a text record with --log-format json: %q", line)
		}
		if !strings.HasPrefix(line, "{") {
			continue // the summary
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not JSON: %q", line)
			continue
		}
		if msg, _ := rec["msg"].(string); strings.Contains(msg, "is odd") {
			found = true
			if rec["level"] != "WARN" || rec["trace_id"] != traceID || rec["span_id"] != spanID {
				t.Errorf("JSON warning %v: want WARN in trace %s span %s", rec, traceID, spanID)
			}
		}
	}
	if !found {
		t.Errorf("no JSON line for the odd-size warning:\n%s", r.stderr)
	}

	// anonymize.runs: started and succeeded, the other series at 0.
	got := map[string]int64{}
	for _, m := range recv.Metrics() {
		if m.GetName() == telemetry.MetricRuns {
			clear(got) // cumulative: the last export has the totals
			for _, p := range m.GetSum().GetDataPoints() {
				got[otlptest.PointAttrs(p)[telemetry.AttrStatus]] = p.GetAsInt()
			}
		}
	}
	want := map[string]int64{telemetry.RunStarted: 1, telemetry.RunSucceeded: 1, telemetry.RunFailed: 0, telemetry.RunInterrupted: 0}
	if !maps.Equal(got, want) {
		t.Errorf("%s %v, want %v", telemetry.MetricRuns, got, want)
	}
}

// TestWasInterrupted: the runs counter's interrupted is what Execute calls
// an interruption: a signal, or a cancelled context (exit status 130).
func TestWasInterrupted(t *testing.T) {
	signalled, stop := context.WithCancelCause(context.Background())
	stop(interruption{syscall.SIGTERM})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"succeeded", context.Background(), nil, false},
		{"failed", context.Background(), errors.New("decode: broken"), false},
		{"files failed", context.Background(), exitCodeError{3}, false},
		{"signal", signalled, fmt.Errorf("in.mp4: %w", context.Canceled), true},
		{"signal after the work", signalled, nil, true},
		{"cancelled", cancelled, fmt.Errorf("in.mp4: %w", context.Canceled), true},
		{"failed while cancelled", cancelled, errors.New("write: disk full"), false},
	}
	for _, tt := range tests {
		if got := wasInterrupted(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%s: interrupted %v, want %v (exit %d)", tt.name, got, tt.want, exitCodeOf(tt.ctx, tt.err))
		}
	}
}
