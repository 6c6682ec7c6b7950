package detect

import (
	"image"
	"math"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// onnxResize is the resize a pre-processing graph run by ONNX Runtime
// would do: Resize (opset 18) in linear mode with antialias, which widens
// the filter when shrinking as Pillow does. It runs on the CPU provider
// here; on a GPU the same graph would run on CUDA or TensorRT.
type onnxResize struct {
	sess    *ort.AdvancedSession
	in, out *ort.Tensor[float32]
}

func newONNXResize(tb testing.TB, w, h, ow, oh int) *onnxResize {
	tb.Helper()
	// Through inference.Load, as the package's other tests load it: ONNX
	// Runtime is initialised once per process.
	if _, err := inference.Load(inference.LibrarySearch{Flag: testutil.ORTLib(tb)}, nil); err != nil {
		tb.Fatal(err)
	}
	g := onnxgraph.New("resize")
	x := g.Input("x", onnxgraph.Float32, onnxgraph.Fixed(1), onnxgraph.Fixed(3), onnxgraph.Fixed(int64(h)), onnxgraph.Fixed(int64(w)))
	sizes := g.Const(onnxgraph.Vector(1, 3, int64(oh), int64(ow)))
	g.Node("Resize", []string{x, "", "", sizes}, []string{"y"},
		onnxgraph.String("mode", "linear"), onnxgraph.Int("antialias", 1))
	g.Output("y", onnxgraph.Float32, onnxgraph.Fixed(1), onnxgraph.Fixed(3), onnxgraph.Fixed(int64(oh)), onnxgraph.Fixed(int64(ow)))
	model, err := g.Marshal(18)
	if err != nil {
		tb.Fatal(err)
	}
	r := &onnxResize{}
	if r.in, err = ort.NewEmptyTensor[float32](ort.NewShape(1, 3, int64(h), int64(w))); err != nil {
		tb.Fatal(err)
	}
	if r.out, err = ort.NewEmptyTensor[float32](ort.NewShape(1, 3, int64(oh), int64(ow))); err != nil {
		tb.Fatal(err)
	}
	if r.sess, err = ort.NewAdvancedSessionWithONNXData(model, []string{"x"}, []string{"y"},
		[]ort.Value{r.in}, []ort.Value{r.out}, nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.sess.Destroy(); r.in.Destroy(); r.out.Destroy() })
	return r
}

// run resizes a BGR frame and returns it as 8-bit BGR (HWC), rounded as
// an image would be, and the time ONNX Runtime took.
func (r *onnxResize) run(tb testing.TB, frame gocv.Mat) ([]uint8, time.Duration) {
	tb.Helper()
	w, h := frame.Cols(), frame.Rows()
	src, _ := frame.DataPtrUint8()
	in := r.in.GetData()
	for y := range h {
		for x := range w {
			for c := range 3 {
				in[(c*h+y)*w+x] = float32(src[y*int(frame.Step())+3*x+c])
			}
		}
	}
	start := time.Now()
	if err := r.sess.Run(); err != nil {
		tb.Fatal(err)
	}
	took := time.Since(start)
	shape := r.out.GetShape()
	oh, ow := int(shape[2]), int(shape[3])
	out := r.out.GetData()
	px := make([]uint8, oh*ow*3)
	for y := range oh {
		for x := range ow {
			for c := range 3 {
				px[(y*ow+x)*3+c] = uint8(min(max(math.Round(float64(out[(c*oh+y)*ow+x])), 0), 255))
			}
		}
	}
	return px, took
}

// twoStep halves the frame with INTER_AREA (an exact 2x2 average, fast),
// then resizes with INTER_LINEAR: the "two-step downscale" candidate.
func twoStep(frame gocv.Mat, out, tmp *gocv.Mat, size image.Point) {
	gocv.Resize(frame, tmp, image.Pt(frame.Cols()/2, frame.Rows()/2), 0, 0, gocv.InterpolationArea)
	gocv.Resize(*tmp, out, size, 0, 0, gocv.InterpolationLinear)
}

// TestOtherResizesAgainstPIL measures the two other candidates the same way
// as TestResizeAgainstPIL: a two-step downscale, and ONNX Runtime's Resize
// with antialias (what a pre-processing graph fused into the model would
// do). Figures only: neither is used yet.
func TestOtherResizesAgainstPIL(t *testing.T) {
	for _, size := range []image.Point{{1920, 1080}, {2560, 1440}, {3840, 2160}} {
		frame := detailFrame(t, size.X, size.Y)
		defer frame.Close()
		oh, ow := ResizeTarget(size.Y, size.X, DefaultConfig().ShortSide, DefaultConfig().LongSide)
		src, _ := frame.DataPtrUint8()
		ref := pilResize(src, size.X, size.Y, int(frame.Step()), ow, oh)
		diff := func(got []uint8) (mean, worst float64) {
			var sum float64
			for i := range ref {
				d := math.Abs(float64(got[i]) - float64(ref[i]))
				sum += d
				worst = max(worst, d)
			}
			return sum / float64(len(ref)), worst
		}
		out, tmp := gocv.NewMat(), gocv.NewMat()
		twoStep(frame, &out, &tmp, image.Pt(ow, oh))
		got, _ := out.DataPtrUint8()
		mean, worst := diff(got)
		t.Logf("%dx%d to %dx%d, two-step (AREA 1/2, LINEAR) mean %.3f levels, max %.0f", size.X, size.Y, ow, oh, mean, worst)
		out.Close()
		tmp.Close()

		r := newONNXResize(t, size.X, size.Y, ow, oh)
		r.run(t, frame) // the first run sets ONNX Runtime up
		px, took := r.run(t, frame)
		mean, worst = diff(px)
		t.Logf("%dx%d to %dx%d, ONNX Resize antialias (CPU) mean %.3f levels, max %.0f, %v", size.X, size.Y, ow, oh, mean, worst, took.Round(100*time.Microsecond))
		if mean > 1 {
			t.Errorf("ONNX Runtime's antialiased Resize is %.2f levels from Pillow's on average: a fused graph would not match DetrImageProcessor", mean)
		}
	}
}
