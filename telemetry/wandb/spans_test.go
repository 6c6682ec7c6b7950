package wandb

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

func TestFrameRows(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch bool // BatchSpanProcessor rather than SimpleSpanProcessor
	}{
		{"simple processor", false},
		{"batch processor", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSettings(t, ModeOffline, nil, "frames01")
			r, tp := startRun(t, Options{Settings: s, now: fixedClock(runStart)}, tc.batch)
			first := runStart.Add(time.Second)
			frames := emitFrames(t, tp, first, 7)
			emitRunSpan(tp, runStart, frames[len(frames)-1].end.Add(time.Millisecond))
			shutdown(t, tp)
			res := finish(t, r, 5*time.Second, 0)
			if res.LocalErr != nil {
				t.Fatalf("local error: %v", res.LocalErr)
			}

			rows := localHistory(t, r.Dir())
			if len(rows) != len(frames) || res.HistoryRows != len(frames) {
				t.Fatalf("%d rows in the file, %d in the result; want one per frame, %d", len(rows), res.HistoryRows, len(frames))
			}
			for i, row := range rows {
				if got := row["_step"]; got != float64(i) {
					t.Errorf("row %d: _step = %v", i, got)
				}
			}
			// Roots arrive in frame order, so row i is frame i.
			for i, f := range frames {
				row := rows[i]
				want := map[string]any{
					"otel/span/process_single_frame/duration/ms":         float64(frameTotal) / 1e6,
					"otel/span/process_single_frame/frame.index":         float64(f.index),
					"otel/span/process_single_frame/frame.timestamp_ms":  float64(f.index) * 40,
					"otel/span/process_single_frame/people.count":        float64(f.people),
					"otel/span/decode/duration/ms":                       5.0,
					"otel/span/wait_for_inference/duration/ms":           5.0,
					"otel/span/person_detection/duration/ms":             20.0,
					"otel/span/person_detection/detections":              float64(f.detections),
					"otel/span/person_detection.preprocess/duration/ms":  2.0,
					"otel/span/person_detection.inference/duration/ms":   15.0,
					"otel/span/person_detection.postprocess/duration/ms": 3.0,
					"otel/span/pose_estimation/duration/ms":              30.0,
					"otel/span/pose_estimation/people":                   float64(f.people),
					"otel/span/pose_estimation/batches":                  float64(f.batches),
					"otel/span/pose_estimation.inference/duration/ms":    f.poseInferenceMS(),
					"otel/span/pose_estimation.inference/batch":          float64(f.batches - 1), // the last batch's
					"otel/span/pose_estimation.preprocess/duration/ms":   float64(f.batches),
					"otel/span/wait_for_encode/duration/ms":              10.0,
					"otel/span/mask/duration/ms":                         5.0,
					"otel/span/mask/masks":                               float64(f.people),
					"otel/span/encode/duration/ms":                       15.0,
					"_runtime":                                           f.end.Sub(runStart).Seconds(),
					"_timestamp":                                         float64(f.end.UnixNano()) / 1e9,
				}
				for k, v := range want {
					got, ok := row[k]
					if !ok {
						t.Errorf("row %d has no %s", i, k)
						continue
					}
					if g, ok := got.(float64); !ok || math.Abs(g-v.(float64)) > 1e-6 {
						t.Errorf("row %d: %s = %v, want %v", i, k, got, v)
					}
				}
				for k := range row {
					if strings.Contains(k, RunSpanName) {
						t.Errorf("row %d has a key from the run span: %s", i, k)
					}
				}
			}

			sum := localSummary(t, r.Dir())
			for k, v := range map[string]any{
				"otel/span/anonymize_video/video.codec":           "h264",
				"otel/span/anonymize_video/video.width":           1280.0,
				"otel/span/anonymize_video/video.has_audio":       true,
				"otel/span/anonymize_video/device":                "cpu",
				"otel/span/anonymize_video/model.detector.sha256": "feedbeef",
				"_step": float64(len(frames) - 1),
				// A fixed clock: the run ends when it starts.
				"_runtime": 0.0,
				"otel/span/process_single_frame/frame.index": float64(len(frames) - 1),
			} {
				if sum[k] != v {
					t.Errorf("summary %s = %v (%T), want %v", k, sum[k], sum[k], v)
				}
			}
		})
	}
}

// A frame whose root never comes (the program stopped mid-frame) makes no
// row; the pending bound evicts the oldest such frames, and Finish counts
// them all.
func TestIncompleteFrames(t *testing.T) {
	s := testSettings(t, ModeOffline, nil, "incompl1")
	r, tp := startRun(t, Options{Settings: s, MaxPendingTraces: 2}, false)
	tr := tp.Tracer("test")
	var roots []trace.Span
	for range 3 {
		ctx, root := tr.Start(context.Background(), FrameSpanName, trace.WithNewRoot())
		_, c := tr.Start(ctx, "decode")
		c.End()
		roots = append(roots, root)
	}
	// Another root (not a frame, not the run) ends its trace without a row.
	ctx, other := tr.Start(context.Background(), "models.pull", trace.WithNewRoot())
	_, c := tr.Start(ctx, "download")
	c.End()
	other.End()
	roots[2].End() // only the last frame completes
	// A frame still open when the run finishes is counted at Finish.
	ctx4, _ := tr.Start(context.Background(), FrameSpanName, trace.WithNewRoot())
	_, c4 := tr.Start(ctx4, "decode")
	c4.End()

	shutdown(t, tp)
	res := finish(t, r, 5*time.Second, 0)
	if res.HistoryRows != 1 {
		t.Errorf("%d rows, want 1 (the only frame whose root ended)", res.HistoryRows)
	}
	// With room for two pending traces, frame 0's goes when frame 2's
	// comes and frame 1's when the models.pull trace comes; the open
	// frame is still pending at Finish.
	if res.Dropped.IncompleteTraces != 3 {
		t.Errorf("IncompleteTraces = %d, want 3", res.Dropped.IncompleteTraces)
	}
	rows := localHistory(t, r.Dir())
	if len(rows) == 1 {
		if _, ok := rows[0]["otel/span/decode/duration/ms"]; !ok {
			t.Errorf("the completed frame lost its child: %v", rows[0])
		}
		for k := range rows[0] {
			if strings.Contains(k, "download") || strings.Contains(k, "models.pull") {
				t.Errorf("a non-frame trace leaked into the row: %s", k)
			}
		}
	}
}

func TestLateSpansCounted(t *testing.T) {
	s := testSettings(t, ModeOffline, nil, "late0001")
	r, tp := startRun(t, Options{Settings: s}, false)
	res := finish(t, r, 5*time.Second, 0)
	if res.Dropped.Total() != 0 {
		t.Fatalf("dropped before anything happened: %+v", res.Dropped)
	}
	emitFrames(t, tp, time.Now(), 2)
	shutdown(t, tp)
	// Finish returns its first result; the drop shows in a fresh count.
	if n := r.drops.lateSpans.Load(); n == 0 {
		t.Error("spans after Finish were not counted as late")
	}
}

func TestAttrValue(t *testing.T) {
	for _, tc := range []struct {
		in   attribute.Value
		want any
		ok   bool
	}{
		{attribute.BoolValue(true), true, true},
		{attribute.Int64Value(-3), int64(-3), true},
		{attribute.IntValue(7), int64(7), true},
		{attribute.Float64Value(1.5), 1.5, true},
		{attribute.Float64Value(math.NaN()), nil, false},
		{attribute.Float64Value(math.Inf(1)), nil, false},
		{attribute.StringValue("x"), "x", true},
		{attribute.Int64SliceValue([]int64{1, 2}), []int64{1, 2}, true},
		{attribute.Float64SliceValue([]float64{1, math.NaN()}), nil, false},
		{attribute.StringSliceValue([]string{"a"}), []string{"a"}, true},
	} {
		t.Run(tc.in.Type().String()+"/"+tc.in.Emit(), func(t *testing.T) {
			got, ok := attrValue(tc.in)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok && !jsonEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}
