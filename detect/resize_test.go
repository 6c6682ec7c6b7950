package detect

import (
	"fmt"
	"image"
	"math"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

// pilResize is Pillow's Image.resize with BILINEAR (what Hugging Face's
// DetrImageProcessor uses), written from Pillow's Resample.c: a triangle
// filter widened by the scale when shrinking (so it averages the whole
// footprint), coefficients in 22-bit fixed point, a horizontal pass then a
// vertical one, each rounded and clipped to 8 bits. It is the reference
// the detector's pre-processing is measured against.
func pilResize(src []uint8, w, h, stride, ow, oh int) []uint8 {
	const precision = 32 - 8 - 2
	coeffs := func(in, out int) (bounds [][2]int, ks [][]int64) {
		scale := float64(in) / float64(out)
		filterScale := max(scale, 1)
		support := 1.0 * filterScale
		for x := range out {
			center := (float64(x) + 0.5) * scale
			xmin := max(int(center-support+0.5), 0)
			xmax := min(int(center+support+0.5), in) - xmin
			k := make([]float64, xmax)
			var ww float64
			for i := range xmax {
				v := (float64(i+xmin) - center + 0.5) / filterScale
				k[i] = max(0, 1-math.Abs(v))
				ww += k[i]
			}
			fixed := make([]int64, xmax)
			for i := range k {
				if ww != 0 {
					k[i] /= ww
				}
				if k[i] < 0 {
					fixed[i] = int64(k[i]*(1<<precision) - 0.5)
				} else {
					fixed[i] = int64(k[i]*(1<<precision) + 0.5)
				}
			}
			bounds = append(bounds, [2]int{xmin, xmax})
			ks = append(ks, fixed)
		}
		return bounds, ks
	}
	clip := func(v int64) uint8 { return uint8(min(max(v>>precision, 0), 255)) }
	// Horizontal pass into a w' x h image, then vertical.
	hb, hk := coeffs(w, ow)
	tmp := make([]uint8, ow*h*3)
	for y := range h {
		row := src[y*stride:]
		for x := range ow {
			for c := range 3 {
				ss := int64(1) << (precision - 1)
				for i, k := range hk[x] {
					ss += int64(row[(hb[x][0]+i)*3+c]) * k
				}
				tmp[(y*ow+x)*3+c] = clip(ss)
			}
		}
	}
	vb, vk := coeffs(h, oh)
	out := make([]uint8, ow*oh*3)
	for y := range oh {
		for x := range ow {
			for c := range 3 {
				ss := int64(1) << (precision - 1)
				for i, k := range vk[y] {
					ss += int64(tmp[((vb[y][0]+i)*ow+x)*3+c]) * k
				}
				out[(y*ow+x)*3+c] = clip(ss)
			}
		}
	}
	return out
}

// TestPILResizeMatchesHandComputed checks the reference on cases small
// enough to work out by hand. Shrinking 4 pixels to 2 (scale 2): the
// triangle widened to a support of 2 is centred on 1.0 and 3.0, so output 0
// weighs pixels 0, 1, 2 by 0.75, 0.75, 0.25 (over 1.75): 0*3/7 + 100*3/7 +
// 200/7 = 71.4; output 1 weighs pixels 1, 2, 3 by 0.25, 0.75, 0.75:
// 100/7 + 200*3/7 + 50*3/7 = 121.4.
func TestPILResizeMatchesHandComputed(t *testing.T) {
	src := []uint8{
		0, 0, 0, 100, 100, 100, 200, 200, 200, 50, 50, 50,
	}
	got := pilResize(src, 4, 1, 12, 2, 1)
	want := []uint8{71, 71, 71, 121, 121, 121}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Enlarging by 2: each output pixel sits a quarter of the way between
	// two inputs, weights 3/4 and 1/4; the ends repeat the edge.
	got = pilResize([]uint8{0, 0, 0, 100, 100, 100}, 2, 1, 6, 4, 1)
	want = []uint8{0, 0, 0, 25, 25, 25, 75, 75, 75, 100, 100, 100}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("enlarged: got %v, want %v", got, want)
	}
}

// detailFrame is a w x h frame tiled with photographs at their own
// resolution (no resampling, so it keeps a camera's fine detail): the aloe
// plant, the notebook, Messi and the basketball player.
func detailFrame(t testing.TB, w, h int) gocv.Mat {
	t.Helper()
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), h, w, gocv.MatTypeCV8UC3)
	var photos []gocv.Mat
	for _, name := range []string{"aloeL.jpg", "ela_original.jpg", "messi5.jpg", "basketball1.png"} {
		img := gocv.IMRead(testutil.Photo(t, name), gocv.IMReadColor)
		if img.Empty() {
			t.Fatalf("cannot read %s", name)
		}
		defer img.Close()
		photos = append(photos, img)
	}
	// Row by row, each photograph in turn, cut at the frame's edges.
	i := 0
	for y := 0; y < h; {
		rowH := 0
		for x := 0; x < w; i++ {
			img := photos[i%len(photos)]
			size := image.Pt(min(img.Cols(), w-x), min(img.Rows(), h-y))
			src := img.Region(image.Rect(0, 0, size.X, size.Y))
			dst := frame.Region(image.Rectangle{Min: image.Pt(x, y), Max: image.Pt(x, y).Add(size)})
			src.CopyTo(&dst)
			src.Close()
			dst.Close()
			x += size.X
			rowH = max(rowH, size.Y)
		}
		y += rowH
	}
	return frame
}

// resizeMethods are the OpenCV resizes measured against Pillow's.
var resizeMethods = []struct {
	name   string
	interp gocv.InterpolationFlags
	// blur, when above 0, is the sigma of a Gaussian blur first, as a
	// share of the scale: an anti-aliasing filter in front of a resize
	// that has none; -1 matches the variance of Pillow's filter.
	blur float64
}{
	{name: "INTER_AREA", interp: gocv.InterpolationArea},
	{name: "INTER_LINEAR", interp: gocv.InterpolationLinear},
	{name: "INTER_LINEAR_EXACT", interp: 5}, // gocv 0.31 has no name for it
	{name: "INTER_CUBIC", interp: gocv.InterpolationCubic},
	{name: "blur .30s + LINEAR", interp: gocv.InterpolationLinear, blur: 0.30},
	{name: "blur .35s + LINEAR", interp: gocv.InterpolationLinear, blur: 0.35},
	{name: "blur .40s + LINEAR", interp: gocv.InterpolationLinear, blur: 0.40},
	{name: "matched blur+LINEAR", interp: gocv.InterpolationLinear, blur: -1},
}

// resizeWith resizes as a method of resizeMethods does, through tmp when
// it blurs first.
func resizeWith(frame gocv.Mat, out, tmp *gocv.Mat, size image.Point, interp gocv.InterpolationFlags, blur float64) {
	if blur != 0 {
		scale := float64(frame.Cols()) / float64(size.X)
		sigma := blur * scale
		if blur < 0 {
			sigma = math.Sqrt((scale*scale - 1) / 6)
		}
		k := 2*int(math.Ceil(3*sigma)) + 1
		gocv.GaussianBlur(frame, tmp, image.Pt(k, k), sigma, sigma, gocv.BorderReflect101)
		frame = *tmp
	}
	gocv.Resize(frame, out, size, 0, 0, interp)
}

// TestResizeAgainstPIL measures how far each OpenCV resize of detailed
// frames (720p, enlarged; 810p, 990p, 1080p, 1440p, 2160p) to DETR's input is
// from Pillow's, in 8-bit levels and in the normalised tensor's units (a
// level is 1/(255*std), about 0.017). The detector's own resize must be at
// least as close as INTER_AREA, and within a level on average.
func TestResizeAgainstPIL(t *testing.T) {
	for _, size := range []image.Point{{1280, 720}, {1440, 810}, {1760, 990}, {1920, 1080}, {2560, 1440}, {3840, 2160}} {
		frame := detailFrame(t, size.X, size.Y)
		defer frame.Close()
		oh, ow := ResizeTarget(size.Y, size.X, DefaultConfig().ShortSide, DefaultConfig().LongSide)
		src, _ := frame.DataPtrUint8()
		ref := pilResize(src, size.X, size.Y, int(frame.Step()), ow, oh)
		out, tmp := gocv.NewMat(), gocv.NewMat()
		defer out.Close()
		defer tmp.Close()
		report := func(name string, got []uint8) float64 {
			var sum, worst float64
			for i := range ref {
				diff := math.Abs(float64(got[i]) - float64(ref[i]))
				sum += diff
				worst = max(worst, diff)
			}
			mean := sum / float64(len(ref))
			t.Logf("%dx%d to %dx%d, %-18s mean %.3f levels (%.4f normalised), max %.0f levels (%.3f normalised)",
				size.X, size.Y, ow, oh, name, mean, mean/255/0.224, worst, worst/255/0.224)
			return mean
		}
		area := 0.0
		for _, m := range resizeMethods {
			resizeWith(frame, &out, &tmp, image.Pt(ow, oh), m.interp, m.blur)
			got, _ := out.DataPtrUint8()
			if mean := report(m.name, got); m.interp == gocv.InterpolationArea {
				area = mean
			}
		}
		d := &Preparer{resized: gocv.NewMat(), scratch: gocv.NewMat()}
		d.resize(frame, ow, oh)
		got, _ := d.resized.DataPtrUint8()
		if mean := report("the detector's", got); mean > 1 || mean > area+0.02 {
			t.Errorf("the detector's resize is %.3f levels from Pillow's on average: want at most 1 and INTER_AREA's %.3f", mean, area)
		}
		d.resized.Close()
		d.scratch.Close()
	}
}

// BenchmarkResize1080p times each resize of a detailed 1080p frame to
// 1333x750, as the detector's pre-processing does it.
func BenchmarkResize1080p(b *testing.B) {
	frame := detailFrame(b, 1920, 1080)
	defer frame.Close()
	out, tmp := gocv.NewMat(), gocv.NewMat()
	defer out.Close()
	defer tmp.Close()
	for _, m := range resizeMethods {
		b.Run(m.name, func(b *testing.B) {
			for range b.N {
				resizeWith(frame, &out, &tmp, image.Pt(1333, 750), m.interp, m.blur)
			}
		})
	}
	b.Run("detector", func(b *testing.B) {
		d := &Preparer{resized: gocv.NewMat(), scratch: gocv.NewMat()}
		defer d.resized.Close()
		defer d.scratch.Close()
		for range b.N {
			d.resize(frame, 1333, 750)
		}
	})
}
