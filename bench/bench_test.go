package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/pipeline"
)

// TestStageClock: nested spans are summed under their parent's name, the
// frame root's children under their own.
func TestStageClock(t *testing.T) {
	clock := newStageClock()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(clock))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for frame := range 2 {
		base := frame * 100
		ctx, root := tr.Start(context.Background(), frameSpan, trace.WithTimestamp(at(base)))
		dctx, det := tr.Start(ctx, "person_detection", trace.WithTimestamp(at(base)))
		_, inf := tr.Start(dctx, "inference", trace.WithTimestamp(at(base+1)))
		inf.End(trace.WithTimestamp(at(base + 4)))
		det.End(trace.WithTimestamp(at(base + 5)))
		pctx, pose := tr.Start(ctx, "pose_estimation", trace.WithTimestamp(at(base+5)))
		_, pinf := tr.Start(pctx, "inference", trace.WithTimestamp(at(base+5)))
		pinf.End(trace.WithTimestamp(at(base + 7)))
		pose.End(trace.WithTimestamp(at(base + 8)))
		root.End(trace.WithTimestamp(at(base + 10)))
	}
	// A frame that shared a run with two others counts a third of it.
	ctx, root := tr.Start(context.Background(), frameSpan, trace.WithTimestamp(at(300)))
	dctx, det := tr.Start(ctx, "person_detection", trace.WithTimestamp(at(300)))
	_, inf := tr.Start(dctx, "inference", trace.WithTimestamp(at(300)), trace.WithAttributes(attribute.Int(detect.AttrBatchFrames, 3)))
	inf.End(trace.WithTimestamp(at(309)))
	det.End(trace.WithTimestamp(at(310)))
	root.End(trace.WithTimestamp(at(310)))
	for key, want := range map[string]time.Duration{
		"person_detection":           20 * time.Millisecond,
		"person_detection/inference": 9 * time.Millisecond,
		"pose_estimation/inference":  4 * time.Millisecond,
		frameSpan:                    30 * time.Millisecond,
		"inference":                  0,
	} {
		if got, _ := clock.get(key); got != want {
			t.Errorf("%s: %v, want %v", key, got, want)
		}
	}
	if _, n := clock.get("pose_estimation"); n != 2 {
		t.Errorf("pose_estimation counted %d times, want 2", n)
	}
	if len(clock.names) != 0 {
		t.Errorf("%d span names kept after their spans ended", len(clock.names))
	}
	clock.reset()
	if got, n := clock.get("person_detection"); got != 0 || n != 0 {
		t.Errorf("after reset: %v over %d spans", got, n)
	}
}

// TestRun measures a small generated clip with the null models: every
// figure the table shows is there and plausible.
func TestRun(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	cfg := DefaultConfig()
	cfg.Width, cfg.Height, cfg.Frames, cfg.Runs = 480, 360, 24, 2
	cfg.Pipeline.Device, cfg.Pipeline.Audit = inference.Device{Kind: inference.DeviceCPU}, pipeline.AuditOff
	cfg.WorkDir = t.TempDir()
	var said []string
	cfg.Progress = func(s string) { said = append(said, s) }
	res, err := Run(context.Background(), cfg, pipeline.Env{Library: inference.LibrarySearch{Flag: testutil.ORTLib(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames != 24 || res.Width != 480 || res.Height != 360 || !res.Generated || !res.NullModels {
		t.Errorf("result %+v: want 24 generated 480x360 frames with the null models", res)
	}
	if len(said) != 5 || !strings.Contains(said[0], "generating") || said[4] != "run 2 of 2: anonymize" {
		t.Errorf("progress %q", said)
	}
	for name, u := range map[string]Usage{"ffmpeg": res.FFmpeg, "anonymize": res.Anonymize} {
		if u.Wall <= 0 || u.CPU() <= 0 || u.PeakRSS < 1<<20 {
			t.Errorf("%s usage %+v: want positive times and a peak RSS of at least 1 MiB", name, u)
		}
	}
	if r := res.Ratio(); r <= 0 || r != res.FFmpeg.Wall.Seconds()/res.Anonymize.Wall.Seconds() {
		t.Errorf("ratio %v", r)
	}
	// The null models find people in every frame, so every step ran.
	for _, s := range res.Steps {
		if s.PerFrame <= 0 && s.Name != "audit" {
			t.Errorf("step %s/%s: %v per frame", s.Stage, s.Name, s.PerFrame)
		}
	}
	for _, s := range res.Stages {
		if s.Busy <= 0 || s.Busy > 1.05 {
			t.Errorf("stage %s busy %.2f: want a share of the wall time", s.Name, s.Busy)
		}
	}
	if res.AllocsPerFrame <= 0 || res.AllocBytesPerFrame <= 0 {
		t.Errorf("allocations %v per frame, %v bytes", res.AllocsPerFrame, res.AllocBytesPerFrame)
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"24 frames of 480x360 (generated scene), null models", "ffmpeg decode+encode", "ratio to ffmpeg",
		"person_detection/preprocess", "encode"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}
