package pose

import (
	"math"
	"testing"

	"github.com/anonymize-dev/anonymize/geom"
)

func TestCropTransformRoundTrip(t *testing.T) {
	boxes := []geom.Box{
		{X1: 100, Y1: 50, X2: 160, Y2: 290},     // tall: width grows to 3:4
		{X1: 10, Y1: 10, X2: 410, Y2: 110},      // wide: height grows to 3:4
		{X1: 0, Y1: 0, X2: 192, Y2: 256},        // already 3:4
		{X1: 500.5, Y1: 20.25, X2: 501, Y2: 21}, // tiny
	}
	for _, b := range boxes {
		tr := CropTransform(b, 192, 256, 1.25)
		for _, p := range [][2]float64{{float64(b.X1), float64(b.Y1)}, {float64(b.X2), float64(b.Y2)}, {123.4, 56.7}} {
			u, v := tr.ToInput(p[0], p[1])
			x, y := tr.ToFrame(u, v)
			if math.Abs(x-p[0]) > 1e-9 || math.Abs(y-p[1]) > 1e-9 {
				t.Errorf("box %+v: %v -> (%v,%v) -> (%v,%v)", b, p, u, v, x, y)
			}
		}
		// The box centre lands on the input centre.
		u, v := tr.ToInput(tr.CX, tr.CY)
		if u != 96 || v != 128 {
			t.Errorf("box %+v: centre maps to (%v,%v), want (96,128)", b, u, v)
		}
		// The whole box fits inside the input with the padding to spare,
		// and the tighter side is padded by exactly 1.25.
		u1, v1 := tr.ToInput(float64(b.X1), float64(b.Y1))
		u2, v2 := tr.ToInput(float64(b.X2), float64(b.Y2))
		if u1 < 0 || v1 < 0 || u2 > 192 || v2 > 256 {
			t.Errorf("box %+v maps to (%v,%v)-(%v,%v), outside the 192x256 input", b, u1, v1, u2, v2)
		}
		wFrac, hFrac := (u2-u1)/192, (v2-v1)/256
		if tight := math.Max(wFrac, hFrac); math.Abs(tight-1/1.25) > 1e-9 {
			t.Errorf("box %+v fills %.4f of its tighter side, want %.4f", b, tight, 1/1.25)
		}
	}
}

func TestCropTransformKeepsAspect(t *testing.T) {
	// A square in the frame must stay a square in the crop: the scale is
	// the same along both axes.
	tr := CropTransform(geom.Box{X1: 0, Y1: 0, X2: 50, Y2: 200}, 192, 256, 1.25)
	u1, v1 := tr.ToInput(10, 10)
	u2, v2 := tr.ToInput(20, 20)
	if math.Abs((u2-u1)-(v2-v1)) > 1e-9 {
		t.Errorf("a 10x10 square became %vx%v", u2-u1, v2-v1)
	}
	m := tr.Matrix()
	if m[0] != m[4] || m[1] != 0 || m[3] != 0 {
		t.Errorf("matrix %v is not a uniform scale plus translation", m)
	}
	// Matrix and ToInput agree.
	x, y := 33.0, 77.0
	u, v := tr.ToInput(x, y)
	if mu, mv := m[0]*x+m[1]*y+m[2], m[3]*x+m[4]*y+m[5]; math.Abs(mu-u) > 1e-9 || math.Abs(mv-v) > 1e-9 {
		t.Errorf("Matrix gives (%v,%v), ToInput (%v,%v)", mu, mv, u, v)
	}
}

func TestDecodeHeatmaps(t *testing.T) {
	const h, w = 8, 6
	hm := make([]float32, 4*h*w)
	set := func(k, x, y int, v float32) { hm[k*h*w+y*w+x] = v }
	// Joint 0: peak at (3,4), right neighbour higher than left, upper higher than lower.
	set(0, 3, 4, 0.9)
	set(0, 4, 4, 0.5)
	set(0, 2, 4, 0.1)
	set(0, 3, 3, 0.4)
	set(0, 3, 5, 0.2)
	// Joint 1: peak on the border: no refinement across the edge.
	set(1, 0, 7, 0.8)
	set(1, 1, 7, 0.3)
	// Joint 2: all zero: confidence 0.
	// Joint 3: symmetric neighbours: no shift.
	set(3, 2, 2, 0.7)
	set(3, 1, 2, 0.3)
	set(3, 3, 2, 0.3)

	got := DecodeHeatmaps(hm, 4, h, w)
	want := []geom.Keypoint{
		{X: 3.25, Y: 3.75, Conf: 0.9},
		{X: 0, Y: 7, Conf: 0.8},
		{X: 0, Y: 0, Conf: 0},
		{X: 2, Y: 2, Conf: 0.7},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("joint %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
