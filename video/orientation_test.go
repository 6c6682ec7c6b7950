package video

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

// fixed is 1.0 in the 16.16 fixed point of display matrices.
const fixed = 1 << 16

// displayed computes, straight from the definition of the display matrix
// (a coded pixel (p, q) is shown at (a·p + c·q + x, b·p + d·q + y)), the
// picture a player shows for src: an independent check of Orientation.
func displayed(t *testing.T, src gocv.Mat, m [9]float64) gocv.Mat {
	t.Helper()
	w, h := src.Cols(), src.Rows()
	sign := func(v float64) int {
		switch {
		case v > 0.5:
			return 1
		case v < -0.5:
			return -1
		}
		return 0
	}
	a, b, c, d := sign(m[0]/fixed), sign(m[1]/fixed), sign(m[3]/fixed), sign(m[4]/fixed)
	at := func(p, q int) (int, int) { return a*p + c*q, b*p + d*q }
	minX, minY := 1<<30, 1<<30
	maxX, maxY := -1<<30, -1<<30
	for _, pq := range [][2]int{{0, 0}, {w - 1, 0}, {0, h - 1}, {w - 1, h - 1}} {
		x, y := at(pq[0], pq[1])
		minX, minY, maxX, maxY = min(minX, x), min(minY, y), max(maxX, x), max(maxY, y)
	}
	out := gocv.NewMatWithSize(maxY-minY+1, maxX-minX+1, gocv.MatTypeCV8UC3)
	for q := range h {
		for p := range w {
			x, y := at(p, q)
			v := src.GetVecbAt(q, p)
			for ch := range 3 {
				out.SetUCharAt(y-minY, (x-minX)*3+ch, v[ch])
			}
		}
	}
	return out
}

// matrices are the eight display matrices that turn by quarter turns,
// mirrored or not, with how a player describes each.
var matrices = []struct {
	name string
	m    [9]float64
	want string
}{
	{"identity", [9]float64{fixed, 0, 0, 0, fixed, 0, 0, 0, 1 << 30}, "as coded"},
	{"rotate=90 as ffmpeg writes it", [9]float64{0, -fixed, 0, fixed, 0, 0, 0, 0, 1 << 30}, "turned 270° clockwise"},
	{"180", [9]float64{-fixed, 0, 0, 0, -fixed, 0, 0, 0, 1 << 30}, "turned 180° clockwise"},
	{"iPhone portrait, with translation", [9]float64{0, fixed, 0, -fixed, 0, 0, 1080 * fixed, 0, 1 << 30}, "turned 90° clockwise"},
	{"mirrored", [9]float64{-fixed, 0, 0, 0, fixed, 0, 0, 0, 1 << 30}, "mirrored"},
	{"upside down mirror", [9]float64{fixed, 0, 0, 0, -fixed, 0, 0, 0, 1 << 30}, "mirrored and turned 180° clockwise"},
	{"transpose", [9]float64{0, fixed, 0, fixed, 0, 0, 0, 0, 1 << 30}, "mirrored and turned 270° clockwise"},
	{"anti-transpose, scaled 2x", [9]float64{0, -2 * fixed, 0, -2 * fixed, 0, 0, 0, 0, 1 << 30}, "mirrored and turned 90° clockwise"},
}

func TestOrientationMatchesDisplayMatrix(t *testing.T) {
	// A 5x3 picture whose every pixel differs.
	src := gocv.NewMatWithSize(3, 5, gocv.MatTypeCV8UC3)
	defer src.Close()
	for q := range 3 {
		for p := range 5 {
			src.SetUCharAt(q, p*3, uint8(10*q+p))
			src.SetUCharAt(q, p*3+1, uint8(p))
			src.SetUCharAt(q, p*3+2, uint8(q))
		}
	}
	seen := map[Orientation]bool{}
	for _, tt := range matrices {
		t.Run(tt.name, func(t *testing.T) {
			o, exact := orientationFromMatrix(tt.m)
			if !exact {
				t.Fatalf("orientationFromMatrix(%v) not exact", tt.m)
			}
			seen[o] = true
			if o.String() != tt.want {
				t.Errorf("String() = %q, want %q", o, tt.want)
			}
			want := displayed(t, src, tt.m)
			defer want.Close()
			got := gocv.NewMat()
			defer got.Close()
			o.apply(src, &got)
			if w, h := o.Upright(5, 3); got.Cols() != w || got.Rows() != h || want.Cols() != w || want.Rows() != h {
				t.Fatalf("sizes: applied %dx%d, defined %dx%d, Upright %dx%d", got.Cols(), got.Rows(), want.Cols(), want.Rows(), w, h)
			}
			diff := gocv.NewMat()
			defer diff.Close()
			gocv.AbsDiff(got, want, &diff)
			if s := diff.Sum(); s.Val1+s.Val2+s.Val3 != 0 {
				t.Errorf("%v shows the picture differently from its display matrix", o)
			}
		})
	}
	if len(seen) != 8 {
		t.Errorf("the eight matrices gave %d distinct orientations", len(seen))
	}
}

func TestOrientationOddAngle(t *testing.T) {
	// 45 degrees: players tilt the picture; the nearest quarter turn is
	// the best frames can do, and the caller is told.
	o, exact := orientationFromRotation(45 + 30)
	if exact {
		t.Error("a 75° turn reported as exact")
	}
	if deg, _ := o.Clockwise(); deg != 270 {
		t.Errorf("75° counter-clockwise snapped to %d° clockwise, want 270", deg)
	}
	if o, exact := orientationFromRotation(-90); !exact || o.String() != "turned 90° clockwise" {
		t.Errorf("rotation -90: %v (exact %v), want turned 90° clockwise", o, exact)
	}
}

func TestParseDisplayMatrix(t *testing.T) {
	// As ffprobe prints it in its JSON.
	s := "\n00000000:            0       65536           0\n00000001:       -65536           0           0\n00000002:     70778880           0  1073741824\n"
	m, ok := parseDisplayMatrix(s)
	want := [9]float64{0, 65536, 0, -65536, 0, 0, 70778880, 0, 1073741824}
	if !ok || m != want {
		t.Errorf("parseDisplayMatrix = %v, %v; want %v", m, ok, want)
	}
	for _, bad := range []string{"", "00000000: 1 2 3\n", "00000000: 1 2 x\n00000001: 1 2 3\n00000002: 1 2 3\n"} {
		if _, ok := parseDisplayMatrix(bad); ok {
			t.Errorf("parseDisplayMatrix(%q) accepted", bad)
		}
	}
}

// TestReaderOrientation compares the frames Reader returns for phone-style
// videos with the frames ffmpeg itself turns upright, frame by frame.
func TestReaderOrientation(t *testing.T) {
	dir := t.TempDir()
	src := makeClip(t, dir, clipSpec{name: "src.mp4", size: "160x96", frames: 8})
	tagged := func(name, rotate string) string {
		out := filepath.Join(dir, name)
		runFFmpeg(t, "-i", src, "-c", "copy", "-metadata:s:v:0", "rotate="+rotate, out)
		return out
	}
	iphone := filepath.Join(dir, "iphone.mp4")
	runFFmpeg(t, "-i", src, "-c", "copy", iphone)
	// What an iPhone writes for portrait: a quarter turn clockwise with
	// the translation that keeps the picture in view.
	testutil.SetDisplayMatrix(t, iphone, [9]int32{0, fixed, 0, -fixed, 0, 0, 96 * fixed, 0, 1 << 30})

	tests := []struct {
		name     string
		path     string
		portrait bool
	}{
		{"rotate=90", tagged("r90.mp4", "90"), true},
		{"rotate=180", tagged("r180.mp4", "180"), false},
		{"rotate=270", tagged("r270.mp4", "270"), true},
		{"rotate=-90", tagged("rm90.mp4", "-90"), true},
		{"iPhone matrix (ffprobe: rotation=-90)", iphone, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, h, want := testutil.DecodeBGR(t, tt.path)
			if portrait := h > w; portrait != tt.portrait {
				t.Fatalf("ffmpeg shows %dx%d", w, h)
			}
			r, err := Open(context.Background(), tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if info := r.Info(); info.Width != w || info.Height != h || info.CodedWidth != 160 || info.CodedHeight != 96 {
				t.Errorf("Info: %dx%d coded %dx%d, want %dx%d coded 160x96", info.Width, info.Height, info.CodedWidth, info.CodedHeight, w, h)
			}
			m := gocv.NewMat()
			defer m.Close()
			for i := 0; ; i++ {
				_, err := r.Read(&m)
				if errors.Is(err, io.EOF) {
					if i != len(want) {
						t.Errorf("read %d frames, ffmpeg decodes %d", i, len(want))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if m.Cols() != w || m.Rows() != h {
					t.Fatalf("frame %d is %dx%d, want %dx%d", i, m.Cols(), m.Rows(), w, h)
				}
				got, _ := m.DataPtrUint8()
				// Both decode the same stream; only the colour conversion
				// may differ slightly.
				if d := testutil.MeanAbsDiff(got, want[i]); d > 2 {
					t.Errorf("frame %d differs from ffmpeg's upright frame by %.1f on average", i, d)
				}
			}
		})
	}
}

func ExampleOrientation_String() {
	o, _ := orientationFromRotation(-90)
	fmt.Println(o)
	// Output: turned 90° clockwise
}
