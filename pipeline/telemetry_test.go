package pipeline

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testmodels"
	"github.com/anonymize-dev/anonymize/mask"
	"github.com/anonymize-dev/anonymize/pose"
	"github.com/anonymize-dev/anonymize/telemetry"
)

// sceneSource renders the synthetic scene's frames.
type sceneSource struct {
	scene synthclip.Scene
	next  int
}

func (s *sceneSource) Read(dst *gocv.Mat) (time.Duration, error) {
	if s.next == s.scene.Frames {
		return 0, io.EOF
	}
	s.scene.Render(s.next, dst)
	pts := sceneTime(s.scene, s.next)
	s.next++
	return pts, nil
}

// sceneTime is when frame i of the scene is shown.
func sceneTime(s synthclip.Scene, i int) time.Duration {
	return time.Duration(i) * time.Second * time.Duration(s.FPSDen) / time.Duration(s.FPSNum)
}

type discardSink struct{}

func (discardSink) WriteFrame(gocv.Mat, time.Duration) error { return nil }

// TestSpanTree records the spans of a 3-frame run with the real (synthetic)
// models: one trace per frame rooted at process_single_frame and linked to
// the run's span, with the stage spans as children, whether the detector
// runs one frame at a time or in batches (of 2: frames 0 and 1 share a
// run, frame 2 runs in a padded batch of its own).
func TestSpanTree(t *testing.T) {
	for _, batch := range []int{1, 2} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) { testSpanTree(t, batch) })
	}
}

func testSpanTree(t *testing.T, batch int) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	det, pe := openModels(t, testmodels.SyntheticSessions, batch, 2)

	// Frame 0 of the scene is empty; frames 1 and 2 hold people.
	scene := synthclip.DefaultScene(640, 360, 3)
	ctx, run := tp.Tracer("test").Start(context.Background(), "anonymize_video")
	var people []int
	var trackIDs [][]int64
	_, err := RunStages(ctx, StageConfig{QueueSize: 2, Mask: mask.DefaultConfig(), Track: DefaultConfig().trackConfig(30)},
		&sceneSource{scene: scene}, det, pe, discardSink{}, func(r FrameResult) {
			people = append(people, len(r.People))
			var ids []int64
			for _, p := range r.People {
				ids = append(ids, int64(p.TrackID))
			}
			trackIDs = append(trackIDs, ids)
		})
	run.End()
	if err != nil {
		t.Fatal(err)
	}
	if people[0] != 0 || people[1] == 0 {
		t.Fatalf("people per frame %v: the scene should start empty and then hold people", people)
	}

	spans := rec.Ended()
	byID := map[string]sdktrace.ReadOnlySpan{}
	children := map[string][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	for _, s := range spans {
		if s.Name() == "process_single_frame" {
			roots = append(roots, s)
			if s.Parent().IsValid() {
				t.Errorf("frame span has a parent: each frame must be its own trace")
			}
			continue
		}
		children[s.Parent().SpanID().String()] = append(children[s.Parent().SpanID().String()], s)
	}
	if len(roots) != 3 {
		t.Fatalf("%d process_single_frame spans, want 3", len(roots))
	}
	slices.SortFunc(roots, func(a, b sdktrace.ReadOnlySpan) int {
		return int(attrMap(a.Attributes())["frame.index"].(int64) - attrMap(b.Attributes())["frame.index"].(int64))
	})
	inferences := make([]sdktrace.ReadOnlySpan, 3)
	traces := map[string]bool{}
	for i, root := range roots {
		traces[root.SpanContext().TraceID().String()] = true
		attrs := attrMap(root.Attributes())
		if attrs["frame.index"] != int64(i) {
			t.Errorf("root %d frame.index = %v", i, attrs["frame.index"])
		}
		if want := float64(sceneTime(scene, i)) / float64(time.Millisecond); attrs["frame.timestamp_ms"] != want {
			t.Errorf("root %d frame.timestamp_ms = %v, want %v", i, attrs["frame.timestamp_ms"], want)
		}
		if attrs["people.count"] != int64(people[i]) {
			t.Errorf("root %d people.count = %v, want %d", i, attrs["people.count"], people[i])
		}
		if links := root.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != run.SpanContext().SpanID() {
			t.Errorf("root %d links %v, want the run span", i, links)
		}

		got := names(children[root.SpanContext().SpanID().String()])
		want := []string{"decode", "wait_for_inference", "person_detection", "wait_for_pose", "pose_estimation",
			"wait_for_track", "track", "wait_for_encode", "mask", "encode"}
		if !sameSet(got, want) {
			t.Errorf("frame %d children %v, want %v", i, got, want)
		}
		for _, c := range children[root.SpanContext().SpanID().String()] {
			sub := names(children[c.SpanContext().SpanID().String()])
			switch c.Name() {
			case "person_detection":
				if !sameSet(sub, []string{"preprocess", "wait_for_batch", "inference", "postprocess"}) {
					t.Errorf("frame %d person_detection children %v", i, sub)
				}
				for _, s := range children[c.SpanContext().SpanID().String()] {
					if s.Name() != "inference" {
						continue
					}
					inferences[i] = s
					a := attrMap(s.Attributes())
					wantFrames := int64(min(batch, 3-i/batch*batch))
					if a[detect.AttrBatchFrames] != wantFrames || a["batch.row"] != int64(i%batch) || a["batch.rows"] != int64(batch) {
						t.Errorf("frame %d inference span %v, want %d frames in a batch of %d, row %d", i, a, wantFrames, batch, i%batch)
					}
				}
				if attrMap(c.Attributes())["detections"] != int64(people[i]) {
					t.Errorf("frame %d detections attribute %v, want %d", i, attrMap(c.Attributes())["detections"], people[i])
				}
			case "track":
				// The ids on the span are the frame's people's, each tracked.
				ids, _ := attrMap(c.Attributes())["track.ids"].([]int64)
				if !slices.Equal(ids, trackIDs[i]) || slices.Contains(ids, 0) {
					t.Errorf("frame %d track.ids %v, want the people's track ids %v (none 0)", i, ids, trackIDs[i])
				}
			case "pose_estimation":
				batches := (people[i] + 1) / 2
				if attrMap(c.Attributes())["batches"] != int64(batches) {
					t.Errorf("frame %d batches %v, want %d", i, attrMap(c.Attributes())["batches"], batches)
				}
				var want []string
				for b := 0; b < batches; b++ {
					want = append(want, "preprocess", "inference", "postprocess")
				}
				if !sameSet(sub, want) {
					t.Errorf("frame %d pose_estimation children %v, want %v", i, sub, want)
				}
			}
			if c.SpanContext().TraceID() != root.SpanContext().TraceID() {
				t.Errorf("frame %d: %s is in another trace", i, c.Name())
			}
		}
	}
	if len(traces) != 3 {
		t.Errorf("%d distinct traces for 3 frames", len(traces))
	}
	// Frames of one batch show the one run they shared.
	for i := 1; i < 3; i++ {
		shared := inferences[i].StartTime().Equal(inferences[i-1].StartTime())
		if want := i/batch == (i-1)/batch; shared != want {
			t.Errorf("frames %d and %d share an inference run: %v, want %v", i-1, i, shared, want)
		}
	}
}

func attrMap(kvs []attribute.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// sameSet compares two lists as multisets: concurrent stages end spans in
// no fixed order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestMetricsPerFrame reads the metrics with a manual reader after every
// frame: the detected-people gauge equals that frame's detections, and the
// counters add up over the run.
func TestMetricsPerFrame(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	in, err := telemetry.NewInstrumentsFrom(mp.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	detSess, poseSess := testmodels.SyntheticSessions(t)
	det, _ := detect.New(detSess, detect.DefaultConfig())
	defer det.Close()
	pe, _ := pose.New(poseSess, pose.DefaultConfig())
	defer pe.Close()

	scene := synthclip.DefaultScene(640, 360, 12)
	var gauges, people []int64
	stats, err := RunStages(context.Background(),
		StageConfig{QueueSize: 2, Mask: mask.DefaultConfig(), Instruments: in, Track: DefaultConfig().trackConfig(30)},
		&sceneSource{scene: scene}, DETR(det), pe, discardSink{},
		func(r FrameResult) {
			people = append(people, int64(len(r.People)))
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			g, ok := findMetric(rm, telemetry.MetricDetectedPeople).(metricdata.Gauge[int64])
			if !ok || len(g.DataPoints) != 1 {
				t.Fatalf("frame %d: detected-people gauge missing: %+v", r.Index, g)
			}
			gauges = append(gauges, g.DataPoints[0].Value)
		})
	if err != nil {
		t.Fatal(err)
	}
	for i := range people {
		if gauges[i] != people[i] {
			t.Errorf("frame %d: gauge %d, detections %d", i, gauges[i], people[i])
		}
	}
	if people[0] != 0 || stats.MaxPeople < 2 {
		t.Fatalf("scene did not vary the people count: %v", people)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	// Every series a run can add to exists from its start, at 0 until
	// something happens: a query sees 0, not "No data".
	frames := sumByAttr(t, findMetric(rm, telemetry.MetricFrames), telemetry.AttrOutcome)
	if want := map[string]int64{telemetry.OutcomeOK: int64(scene.Frames), telemetry.OutcomeFailed: 0, telemetry.OutcomeCancelled: 0}; !maps.Equal(frames, want) {
		t.Errorf("frames counter %v, want %v", frames, want)
	}
	masks := sumByAttr(t, findMetric(rm, telemetry.MetricMasks), telemetry.AttrKind)
	for _, kind := range []string{"nose", "face_keypoints", "head_box", "held", "backfilled"} {
		if _, ok := masks[kind]; !ok {
			t.Errorf("masks counter has no %s series: %v", kind, masks)
		}
	}
	if masks["nose"] != int64(stats.Masks.Nose) || masks["head_box"] != int64(stats.Masks.HeadBox) {
		t.Errorf("masks counter %v, stats %+v", masks, stats.Masks)
	}
	fallbacks := sumByAttr(t, findMetric(rm, telemetry.MetricMaskFallbacks), telemetry.AttrKind)
	if fallbacks["head_box"] != int64(stats.Masks.HeadBox) || fallbacks["head_box"] == 0 {
		t.Errorf("fallbacks counter %v, stats %+v", fallbacks, stats.Masks)
	}
	h, ok := findMetric(rm, telemetry.MetricPeoplePerFrame).(metricdata.Histogram[int64])
	if !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Count != uint64(scene.Frames) || h.DataPoints[0].Sum != int64(stats.People) {
		t.Errorf("people-per-frame histogram %+v, want %d frames summing to %d", h, scene.Frames, stats.People)
	}
}

func findMetric(rm metricdata.ResourceMetrics, name string) metricdata.Aggregation {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m.Data
			}
		}
	}
	return nil
}

func sumByAttr(t *testing.T, data metricdata.Aggregation, key string) map[string]int64 {
	t.Helper()
	s, ok := data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("metric is %T, want an int64 sum", data)
	}
	out := map[string]int64{}
	for _, p := range s.DataPoints {
		v, _ := p.Attributes.Value(attribute.Key(key))
		out[v.AsString()] += p.Value
	}
	return out
}
