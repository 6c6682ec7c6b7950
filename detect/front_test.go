package detect

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"go.opentelemetry.io/otel/trace/noop"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testmodels"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/onnxgraph"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// front runs the pre-processing graph alone on ONNX Runtime (CPU).
type front struct {
	sess *ort.DynamicAdvancedSession
	cfg  Config
}

func newFront(tb testing.TB, cfg Config) *front {
	tb.Helper()
	model, err := frontGraph(PixelMask{Present: true}, cfg).Marshal(frontOpset)
	if err != nil {
		tb.Fatal(err)
	}
	return &front{sess: openFronted(tb, model, models.DETRPixelValues, models.DETRPixelMask), cfg: cfg}
}

// openFronted opens a model that takes the front's inputs, on the CPU,
// closed when the test ends.
func openFronted(tb testing.TB, model []byte, outputs ...string) *ort.DynamicAdvancedSession {
	tb.Helper()
	if _, err := inference.Load(inference.LibrarySearch{Flag: testutil.ORTLib(tb)}, nil); err != nil {
		tb.Fatal(err)
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{FrontFrames}, outputs, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sess.Destroy() })
	return sess
}

// frontInputs makes the fused model's input for a batch of frames of one
// size.
func frontInputs(tb testing.TB, frames ...gocv.Mat) []ort.Value {
	tb.Helper()
	var px []uint8
	for _, f := range frames {
		b, err := f.DataPtrUint8()
		if err != nil || !f.IsContinuous() {
			tb.Fatalf("frame pixels: %v", err)
		}
		px = append(px, b...)
	}
	v, err := ort.NewTensor(ort.NewShape(int64(len(frames)), int64(frames[0].Rows()), int64(frames[0].Cols()), 3), px)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { v.Destroy() })
	return []ort.Value{v}
}

// run returns the pixel values and mask the graph computes for one frame.
func (f *front) run(tb testing.TB, frame gocv.Mat) (pixels []float32, shape []int64, mask []int64, took time.Duration) {
	tb.Helper()
	outs := make([]ort.Value, 2)
	start := time.Now()
	if err := f.sess.Run(frontInputs(tb, frame), outs); err != nil {
		tb.Fatal(err)
	}
	took = time.Since(start)
	defer outs[0].Destroy()
	defer outs[1].Destroy()
	pv := outs[0].(*ort.Tensor[float32])
	pm := outs[1].(*ort.Tensor[int64])
	if ms := pm.GetShape(); len(ms) != 3 || ms[0] != 1 || ms[1] != pv.GetShape()[2] || ms[2] != pv.GetShape()[3] {
		tb.Fatalf("pixel_mask %v for pixel_values %v", ms, pv.GetShape())
	}
	return append([]float32(nil), pv.GetData()...), pv.GetShape(), append([]int64(nil), pm.GetData()...), took
}

// goPath prepares one frame the way the pipeline does without the front.
func goPath(tb testing.TB, frame gocv.Mat, cfg Config) ([]float32, *Batch, time.Duration) {
	tb.Helper()
	b := &Batch{rows: 1, cfg: cfg}
	tb.Cleanup(func() { b.Close() })
	if err := b.Fit(frame.Cols(), frame.Rows()); err != nil {
		tb.Fatal(err)
	}
	p := &Preparer{tracer: noop.Tracer{}, resized: gocv.NewMat(), scratch: gocv.NewMat()}
	defer p.Close()
	start := time.Now()
	if err := p.Prepare(context.Background(), frame, b, 0); err != nil {
		tb.Fatal(err)
	}
	return b.pixels.GetData(), b, time.Since(start)
}

// TestFrontMatchesPillowAndGoPath: the pre-processing graph gives the
// tensor Pillow's resize (DetrImageProcessor's) gives, within its
// rounding, and the Go path's within about half a level of 8-bit colour,
// on detailed frames at sizes that shrink, enlarge and keep the size. The
// differences are in levels (0-255) per channel value.
func TestFrontMatchesPillowAndGoPath(t *testing.T) {
	cfg := DefaultConfig()
	f := newFront(t, cfg)
	for _, size := range [][2]int{{1920, 1080}, {2560, 1440}, {3840, 2160}, {1600, 900}, {1280, 720}, {1333, 750}, {720, 1280}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			frame := detailFrame(t, size[0], size[1])
			defer frame.Close()
			goPixels, b, goTook := goPath(t, frame, cfg)
			got, shape, mask, took := f.run(t, frame)
			if shape[2] != int64(b.inH) || shape[3] != int64(b.inW) {
				t.Fatalf("graph resized to %dx%d, the Go path to %dx%d", shape[3], shape[2], b.inW, b.inH)
			}
			for _, v := range mask {
				if v != 1 {
					t.Fatal("pixel_mask is not all ones")
				}
			}
			// Pillow's output, normalised as the Go path normalises.
			src, _ := frame.DataPtrUint8()
			ref := pilResize(src, size[0], size[1], int(frame.Step()), b.inW, b.inH)
			pil := make([]float32, len(got))
			if err := inference.PackImageNet(pil, ref, b.inW, b.inH, 3*b.inW); err != nil {
				t.Fatal(err)
			}
			plane := b.inW * b.inH
			diff := func(want []float32) (mean, worst float64) {
				for i := range want {
					d := math.Abs(float64(got[i]-want[i])) * 255 * float64(inference.ImageNetStd[i/plane])
					mean += d
					worst = max(worst, d)
				}
				return mean / float64(len(want)), worst
			}
			pilMean, pilMax := diff(pil)
			goMean, goMax := diff(goPixels)
			t.Logf("%dx%d to %dx%d: from Pillow mean %.3f, max %.1f levels; from the Go path mean %.3f, max %.1f; graph %v, Go path %v",
				size[0], size[1], b.inW, b.inH, pilMean, pilMax, goMean, goMax, took.Round(time.Millisecond), goTook.Round(time.Millisecond))
			if pilMean > 0.3 || pilMax > 1.5 {
				t.Errorf("%.3f levels from Pillow on average (limit 0.3), %.1f at most (limit 1.5): the graph does not resize as Pillow does", pilMean, pilMax)
			}
			if goMean > 0.75 {
				t.Errorf("%.3f levels from the Go path on average (limit 0.75)", goMean)
			}
		})
	}
}

// TestFusedDetectsTheSame runs the synthetic DETR with the front fused in
// through the detector, on batches of two scene frames, and the plain
// model through the Go path on each: the same people, boxes within 2
// pixels and scores within 0.02, at a size that shrinks and at one kept as
// it is.
func TestFusedDetectsTheSame(t *testing.T) {
	plain := plainSynthetic(t)
	cfg := DefaultConfig()
	cfg.Batch = 2
	fused, err := New(fusedSynthetic(t, cfg), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fused.Close()
	if !fused.fused {
		t.Fatal("the detector does not see the fused model's frames input")
	}

	for _, size := range [][2]int{{1920, 1080}, {1333, 750}} {
		scene := synthclip.DefaultScene(size[0], size[1], 60)
		frames := []gocv.Mat{gocv.NewMat(), gocv.NewMat()}
		scene.Render(20, &frames[0])
		scene.Render(40, &frames[1])
		b, p := fused.NewBatch(), fused.NewPreparer()
		if err := b.Fit(size[0], size[1]); err != nil {
			t.Fatal(err)
		}
		ctxs := []context.Context{context.Background(), context.Background()}
		for i, f := range frames {
			if err := p.Prepare(ctxs[i], f, b, i); err != nil {
				t.Fatal(err)
			}
		}
		got, err := fused.Run(ctxs, b)
		if err != nil {
			t.Fatal(err)
		}
		for i, frame := range frames {
			want, err := plain.Detect(context.Background(), frame)
			if err != nil {
				t.Fatal(err)
			}
			sameDetections(t, fmt.Sprintf("%dx%d frame %d, fused next to the Go path", size[0], size[1], i), got[i], want)
		}
		b.Close()
		p.Close()
		frames[0].Close()
		frames[1].Close()
	}
}

// plainSynthetic is a detector on the synthetic DETR, on the Go path.
func plainSynthetic(t *testing.T) *Detector {
	t.Helper()
	sess, _ := testmodels.SyntheticSessions(t)
	d, err := New(sess, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// sameDetections checks two answers for the same frame: the same people
// (at least one), boxes within 2 pixels and scores within 0.02.
func sameDetections(t *testing.T, what string, got, want []geom.Detection) {
	t.Helper()
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%s: %d people, want %d (and some)", what, len(got), len(want))
	}
	for k := range want {
		g, w := got[k], want[k]
		if math.Abs(float64(g.Score-w.Score)) > 0.02 || !near(g.Box.X1, w.Box.X1) || !near(g.Box.Y1, w.Box.Y1) ||
			!near(g.Box.X2, w.Box.X2) || !near(g.Box.Y2, w.Box.Y2) {
			t.Errorf("%s: person %d %+v, want %+v", what, k, g, w)
		}
	}
}

// fusedSynthetic opens the synthetic DETR with the front fused in, on the
// CPU, closed when the test ends.
func fusedSynthetic(t *testing.T, cfg Config) *inference.Session {
	t.Helper()
	plain, err := synthetic.DetectorModel()
	if err != nil {
		t.Fatal(err)
	}
	model, err := Fuse(plain, PixelMask{Present: true}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return openModel(t, model, models.DETRFused)
}

// openModel opens a model on the CPU, closed when the test ends.
func openModel(t *testing.T, model []byte, contract models.Contract) *inference.Session {
	t.Helper()
	path := filepath.Join(t.TempDir(), "detr.onnx")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := inference.Load(inference.LibrarySearch{Flag: testutil.ORTLib(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := rt.OpenSession(inference.SessionOptions{Role: "detector", Path: path, Contract: contract,
		Device: inference.Device{Kind: inference.DeviceCPU}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// TestFixedPixelMask: a DETR export that declares pixel_mask 64x64 (as
// Hugging Face's exporter does) is fed 64x64 ones, through the Go path and
// fused, and finds the same people as the synthetic model whose mask
// follows the image. A mask of the image's size would be refused by the
// runtime; a mask of zeros would hide everyone.
func TestFixedPixelMask(t *testing.T) {
	plain := plainSynthetic(t)
	cfg := DefaultConfig()

	const side = 64
	model, err := synthetic.DetectorModelFixedMask(side)
	if err != nil {
		t.Fatal(err)
	}
	goPath, err := New(openModel(t, model, models.DETR), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer goPath.Close()
	if goPath.mask != (PixelMask{Present: true, Height: side, Width: side}) {
		t.Fatalf("detector reads pixel_mask as %+v, want %dx%d", goPath.mask, side, side)
	}
	fusedModel, err := Fuse(model, goPath.mask, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fused, err := New(openModel(t, fusedModel, models.DETRFused), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fused.Close()

	for _, size := range [][2]int{{1920, 1080}, {640, 360}, {360, 640}} {
		scene := synthclip.DefaultScene(size[0], size[1], 60)
		frame := gocv.NewMat()
		scene.Render(30, &frame)
		want, err := plain.Detect(context.Background(), frame)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			t.Fatalf("%dx%d: the scene has nobody to find", size[0], size[1])
		}
		for name, d := range map[string]*Detector{"Go path": goPath, "fused": fused} {
			got, err := d.Detect(context.Background(), frame)
			if err != nil {
				t.Fatalf("%dx%d %s: %v", size[0], size[1], name, err)
			}
			sameDetections(t, fmt.Sprintf("%dx%d %s, next to the image-sized mask", size[0], size[1], name), got, want)
		}
		frame.Close()
	}
}

// TestFrontResizeTarget: the size the front computes in float32 is the
// one ResizeTarget computes, for landscape and portrait frames, frames
// already at the size, and other --detect-size values.
func TestFrontResizeTarget(t *testing.T) {
	for _, cfg := range []Config{DefaultConfig(), {ShortSide: 640, LongSide: 1066}, {ShortSide: 512, LongSide: 853}} {
		g := onnxgraph.New("size")
		hw := g.Input("hw", onnxgraph.Int64, onnxgraph.Fixed(2))
		pick := func(i int64) string {
			return g.Op("Gather", []string{hw, g.Const(onnxgraph.Vector(i))}, onnxgraph.Int("axis", 0))
		}
		oh, ow := resizeTarget(g, pick(0), pick(1), cfg)
		g.Node("Concat", []string{oh, ow}, []string{"out"}, onnxgraph.Int("axis", 0))
		g.Output("out", onnxgraph.Int64, onnxgraph.Fixed(2))
		model, err := g.Marshal(frontOpset)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inference.Load(inference.LibrarySearch{Flag: testutil.ORTLib(t)}, nil); err != nil {
			t.Fatal(err)
		}
		sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"hw"}, []string{"out"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sizes := [][2]int{{1080, 1920}, {1920, 1080}, {720, 1280}, {2160, 3840}, {1440, 2560}, {576, 768}, {528, 720},
			{750, 1333}, {800, 1200}, {799, 1199}, {801, 3000}, {360, 640}, {1081, 1921}, {17, 4000}, {4000, 17}}
		for h := 100; h <= 2200; h += 37 {
			sizes = append(sizes, [2]int{h, h*16/9 + h%7}, [2]int{h*4/3 - h%5, h})
		}
		for _, hwv := range sizes {
			in, _ := ort.NewTensor(ort.NewShape(2), []int64{int64(hwv[0]), int64(hwv[1])})
			outs := []ort.Value{nil}
			if err := sess.Run([]ort.Value{in}, outs); err != nil {
				t.Fatal(err)
			}
			got := outs[0].(*ort.Tensor[int64]).GetData()
			wh, ww := ResizeTarget(hwv[0], hwv[1], cfg.ShortSide, cfg.LongSide)
			if got[0] != int64(wh) || got[1] != int64(ww) {
				t.Errorf("short %d long %d, %dx%d frame: the graph resizes to %dx%d, ResizeTarget to %dx%d",
					cfg.ShortSide, cfg.LongSide, hwv[1], hwv[0], got[1], got[0], ww, wh)
			}
			in.Destroy()
			outs[0].Destroy()
		}
		sess.Destroy()
	}
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) <= 2 }

// BenchmarkFront1080p times the pre-processing graph on ONNX Runtime's CPU
// provider on a 1080p frame, to set against BenchmarkPreprocess1080p (the
// Go path): on the CPU the front is a way to check equivalence, not a
// speed-up; its point is a GPU, where it moves the work off the CPU.
func BenchmarkFront1080p(b *testing.B) {
	f := newFront(b, DefaultConfig())
	frame := detailFrame(b, 1920, 1080)
	defer frame.Close()
	inputs := frontInputs(b, frame)
	outs := make([]ort.Value, 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f.sess.Run(inputs, outs); err != nil {
			b.Fatal(err)
		}
		for _, o := range outs {
			o.Destroy()
		}
		outs[0], outs[1] = nil, nil
	}
}
