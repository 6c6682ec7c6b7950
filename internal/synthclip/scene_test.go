package synthclip

import (
	"fmt"
	"image"
	"math"
	"reflect"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// paletteColours is every colour the synthetic models look for.
func paletteColours() map[string]synthetic.RGB {
	p := map[string]synthetic.RGB{
		"ghost":          synthetic.GhostColour,
		"nose":           synthetic.NoseColour,
		"left shoulder":  synthetic.LeftShoulderColour,
		"right shoulder": synthetic.RightShoulderColour,
	}
	for i, c := range synthetic.BodyColours {
		p[fmt.Sprintf("body %d", i)] = c
	}
	return p
}

// frameBuf is a rendered BGR frame with pixel accessors.
type frameBuf struct {
	w, h int
	b    []byte
}

func render(s Scene, frame int) frameBuf {
	b := make([]byte, s.Width*s.Height*3)
	s.renderInto(frame, b)
	return frameBuf{s.Width, s.Height, b}
}

func (f frameBuf) at(x, y int) synthetic.RGB {
	i := (y*f.w + x) * 3
	return synthetic.RGB{R: f.b[i+2], G: f.b[i+1], B: f.b[i]}
}

func (f frameBuf) atPt(p image.Point) synthetic.RGB { return f.at(p.X, p.Y) }

// boxOf is the bounding box of the pixels for which match holds.
func (f frameBuf) boxOf(match func(synthetic.RGB) bool) image.Rectangle {
	var box image.Rectangle
	for y := 0; y < f.h; y++ {
		for x := 0; x < f.w; x++ {
			if match(f.at(x, y)) {
				box = box.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return box
}

func near(a, b synthetic.RGB, tol int) bool {
	d := func(x, y uint8) int { return int(x) - int(y) }
	abs := func(v int) int { return max(v, -v) }
	return abs(d(a.R, b.R)) <= tol && abs(d(a.G, b.G)) <= tol && abs(d(a.B, b.B)) <= tol
}

func exactly(c synthetic.RGB) func(synthetic.RGB) bool {
	return func(p synthetic.RGB) bool { return p == c }
}

// diskArea counts the points of a disk of radius r on an integer grid.
func diskArea(r int) int {
	n := 0
	for y := -r; y <= r; y++ {
		for x := -r; x <= r; x++ {
			if x*x+y*y <= r*r {
				n++
			}
		}
	}
	return n
}

func (f frameBuf) countIn(r image.Rectangle, c synthetic.RGB) int {
	n := 0
	r = r.Intersect(image.Rect(0, 0, f.w, f.h))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if f.at(x, y) == c {
				n++
			}
		}
	}
	return n
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		scene Scene
		want  string // substring of the error; empty for valid
	}{
		{"default 360p", DefaultScene(640, 360, 30), ""},
		{"default 1080p", DefaultScene(1920, 1080, 300), ""},
		{"4:3", DefaultScene(480, 360, 2), ""},
		{"single frame", DefaultScene(640, 360, 1), ""},
		{"too small", DefaultScene(320, 180, 30), "too small"},
		{"odd width", DefaultScene(641, 360, 30), "even"},
		{"portrait", DefaultScene(360, 640, 30), "narrower than 4:3"},
		{"no frames", DefaultScene(640, 360, 0), "frame count"},
		{"zero rate", Scene{Width: 640, Height: 360, Frames: 3}, "frame rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.scene.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestFiguresDeterministic(t *testing.T) {
	s := DefaultScene(640, 360, 40)
	other := s
	other.Seed = 99 // the seed only changes the background
	for _, frame := range []int{0, 1, 7, 20, 39} {
		a, b, c := s.Figures(frame), s.Figures(frame), other.Figures(frame)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("frame %d: two calls differ:\n%+v\n%+v", frame, a, b)
		}
		if !reflect.DeepEqual(a, c) {
			t.Errorf("frame %d: seed changed the geometry:\n%+v\n%+v", frame, a, c)
		}
	}
	if reflect.DeepEqual(s.Figures(1), s.Figures(39)) {
		t.Error("figures do not move between frame 1 and 39")
	}
}

func TestFigureRoster(t *testing.T) {
	s := DefaultScene(640, 360, 40)
	for _, f := range s.Figures(0) {
		if f.Visible {
			t.Errorf("frame 0 shows %s; the first frame must be empty", f.Label)
		}
	}
	want := map[string]struct {
		colour         synthetic.RGB
		hasNose, ghost bool
	}{
		LabelWalker:   {synthetic.BodyColours[0], true, false},
		LabelNoNose:   {synthetic.BodyColours[1], false, false},
		LabelDiagonal: {synthetic.BodyColours[2], true, false},
		LabelGhost:    {synthetic.GhostColour, false, true},
	}
	figs := s.Figures(20)
	if len(figs) != len(want) {
		t.Fatalf("got %d figures, want %d", len(figs), len(want))
	}
	for _, f := range figs {
		w, ok := want[f.Label]
		if !ok {
			t.Errorf("unexpected figure %q", f.Label)
			continue
		}
		if f.Colour != w.colour || f.HasNose != w.hasNose || f.Ghost != w.ghost || !f.Visible {
			t.Errorf("%s = %+v, want colour %v, nose %v, ghost %v, visible", f.Label, f, w.colour, w.hasNose, w.ghost)
		}
	}
}

// TestRenderMatchesFigures is the contract the end-to-end tests rely on:
// every figure's Box is exactly where its colour is, the dots are whole and
// where Figures says, and figures keep apart.
func TestRenderMatchesFigures(t *testing.T) {
	sizes := []struct {
		w, h, frames int
		every        int // check every n-th frame
	}{
		{640, 360, 40, 1},
		{640, 360, 2, 1},
		{480, 360, 12, 1},
		{854, 480, 25, 3},
		{1920, 1080, 30, 7},
	}
	for _, sz := range sizes {
		s := DefaultScene(sz.w, sz.h, sz.frames)
		t.Run(fmt.Sprintf("%dx%dx%d", sz.w, sz.h, sz.frames), func(t *testing.T) {
			tealAtEdge := false
			for frame := 0; frame < s.Frames; frame += sz.every {
				checkFrame(t, s, frame)
			}
			// The teal figure must reach the border by the last frame, so
			// the clipped-box case is always in the clip.
			for i, f := range s.Figures(s.Frames - 1) {
				sh := s.shapes(s.Frames - 1)[i]
				if f.Label == LabelDiagonal && f.Box.Min.X == 0 && sh.bounds.Min.X < 0 {
					tealAtEdge = true
				}
			}
			if !tealAtEdge && s.Frames >= 3 { // frame 0 is empty; frame 1 is the start of the paths
				t.Errorf("%s is not cut by the frame border in the last frame", LabelDiagonal)
			}
		})
	}
}

func checkFrame(t *testing.T, s Scene, frame int) {
	t.Helper()
	img := render(s, frame)
	figs := s.Figures(frame)
	frameRect := image.Rect(0, 0, s.Width, s.Height)
	gap := max(6, s.Height/100)
	for i, f := range figs {
		got := img.boxOf(exactly(f.Colour))
		if got != f.Box {
			t.Errorf("frame %d %s: pixels of its colour span %v, Box says %v", frame, f.Label, got, f.Box)
		}
		if !f.Visible {
			continue
		}
		if f.Box.Empty() {
			t.Errorf("frame %d %s: visible but its Box is empty", frame, f.Label)
		}
		if b := f.Box; b.Min.X%block != 0 || b.Min.Y%block != 0 || b.Max.X%block != 0 || b.Max.Y%block != 0 {
			t.Errorf("frame %d %s: Box %v is not aligned to the %d-pixel grid", frame, f.Label, b, block)
		}
		for _, g := range figs[i+1:] {
			if g.Visible && f.Box.Inset(-gap).Overlaps(g.Box) {
				t.Errorf("frame %d: %s %v and %s %v are closer than %d px", frame, f.Label, f.Box, g.Label, g.Box, gap)
			}
		}
		if got := img.atPt(f.TorsoCentre); got != f.Colour {
			t.Errorf("frame %d %s: torso centre %v is %v, want the body colour", frame, f.Label, f.TorsoCentre, got)
		}
		if !f.HasNose {
			for _, c := range []synthetic.RGB{synthetic.NoseColour, synthetic.LeftShoulderColour, synthetic.RightShoulderColour} {
				if n := img.countIn(f.Box, c); n != 0 {
					t.Errorf("frame %d %s: has no nose but %d pixels of %v in its box", frame, f.Label, n, c)
				}
			}
			continue
		}
		if f.DotRadius < 3 || f.DotRadius%block != 0 {
			t.Errorf("frame %d %s: dot radius %d, want at least 3 and a whole number of blocks", frame, f.Label, f.DotRadius)
		}
		dots := []struct {
			name string
			at   image.Point
			c    synthetic.RGB
		}{
			{"nose", f.Nose, synthetic.NoseColour},
			{"left shoulder", f.LeftShoulder, synthetic.LeftShoulderColour},
			{"right shoulder", f.RightShoulder, synthetic.RightShoulderColour},
		}
		for _, d := range dots {
			// The whole dot, and nothing else of its colour, in the box.
			extent := image.Rect(d.at.X-f.DotRadius-1, d.at.Y-f.DotRadius-1, d.at.X+f.DotRadius+1, d.at.Y+f.DotRadius+1)
			if !extent.In(f.Box) || !extent.In(frameRect) {
				t.Errorf("frame %d %s: %s dot at %v is not wholly in the box %v and frame", frame, f.Label, d.name, d.at, f.Box)
			}
			if got := img.atPt(d.at); got != d.c {
				t.Errorf("frame %d %s: %s centre %v is %v, want %v", frame, f.Label, d.name, d.at, got, d.c)
			}
			if got, want := img.countIn(f.Box, d.c), block*block*diskArea(f.DotRadius/block); got != want {
				t.Errorf("frame %d %s: %d %s pixels in the box, want one dot of %d", frame, f.Label, got, d.name, want)
			}
		}
		if f.LeftShoulder.X <= f.RightShoulder.X {
			t.Errorf("frame %d %s: left shoulder %v is not on the image right of the right shoulder %v", frame, f.Label, f.LeftShoulder, f.RightShoulder)
		}
		// The disk must hide the whole head (every body pixel above the nose)
		// but not the torso centre.
		centre, radius := f.ExpectedDisk()
		for y := f.Box.Min.Y; y < centre.Y; y++ {
			for x := f.Box.Min.X; x < f.Box.Max.X; x++ {
				if img.at(x, y) == f.Colour && math.Hypot(float64(x-centre.X)+0.5, float64(y-centre.Y)+0.5) > radius {
					t.Fatalf("frame %d %s: head pixel (%d,%d) lies outside the expected disk %v r=%.1f", frame, f.Label, x, y, centre, radius)
				}
			}
		}
		if math.Hypot(float64(f.TorsoCentre.X-centre.X), float64(f.TorsoCentre.Y-centre.Y)) <= radius {
			t.Errorf("frame %d %s: torso centre %v lies inside the expected disk", frame, f.Label, f.TorsoCentre)
		}
	}
}

func TestExpectedDisk(t *testing.T) {
	f := Figure{
		Nose:          image.Pt(100, 50),
		LeftShoulder:  image.Pt(130, 90), // 50 away
		RightShoulder: image.Pt(80, 65),  // 25 away
	}
	c, r := f.ExpectedDisk()
	if c != f.Nose || r != 50 {
		t.Errorf("ExpectedDisk() = %v, %v; want %v, 50", c, r, f.Nose)
	}
}

// TestBackgroundOutsidePalette: no background pixel, in any frame, size or
// seed, may pass for a colour the synthetic models look for, with margin
// for what the encoder does to it.
func TestBackgroundOutsidePalette(t *testing.T) {
	const maxSpread = 15
	palette := paletteColours()
	for _, s := range []Scene{DefaultScene(640, 360, 10), {Width: 1920, Height: 1080, FPSNum: 25, FPSDen: 1, Frames: 3, Seed: -7}} {
		buf := make([]byte, s.Width*s.Height*3)
		for frame := 0; frame < s.Frames; frame++ {
			s.background(frame, buf)
			img := frameBuf{s.Width, s.Height, buf}
			for y := 0; y < s.Height; y++ {
				for x := 0; x < s.Width; x++ {
					p := img.at(x, y)
					spread := int(max(p.R, p.G, p.B)) - int(min(p.R, p.G, p.B))
					if spread > maxSpread {
						t.Fatalf("%dx%d frame %d: background (%d,%d) = %v has channel spread %d > %d", s.Width, s.Height, frame, x, y, p, spread, maxSpread)
					}
					for name, c := range palette {
						if near(p, c, synthetic.Tolerance) {
							t.Fatalf("%dx%d frame %d: background (%d,%d) = %v passes for %s %v", s.Width, s.Height, frame, x, y, p, name, c)
						}
					}
				}
			}
		}
	}
}

func TestBackgroundVaries(t *testing.T) {
	s := DefaultScene(480, 360, 2)
	a, b := render(s, 0), render(s, 1)
	if !reflect.DeepEqual(a.b, render(s, 0).b) {
		t.Error("rendering the same frame twice gave different pixels")
	}
	s.Seed = 1
	c := render(s, 0)
	for name, other := range map[string]frameBuf{"next frame": b, "other seed": c} {
		if reflect.DeepEqual(a.b, other.b) {
			t.Errorf("%s: background noise did not change", name)
		}
	}
}

func TestRenderMat(t *testing.T) {
	s := DefaultScene(480, 360, 5)
	m := gocv.NewMatWithSize(10, 10, gocv.MatTypeCV8UC1) // wrong shape: must be replaced
	defer func() { m.Close() }()

	s.Render(3, &m)
	if m.Rows() != s.Height || m.Cols() != s.Width || m.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("Render made a %dx%d type %v Mat, want %dx%d CV_8UC3", m.Cols(), m.Rows(), m.Type(), s.Width, s.Height)
	}
	got, err := m.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	if want := render(s, 3).b; !reflect.DeepEqual(got, want) {
		t.Fatal("Render's Mat differs from the reference rendering")
	}
	first := &got[0]

	s.Render(4, &m)
	again, err := m.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	if &again[0] != first {
		t.Error("Render reallocated a Mat that already had the right shape")
	}
	if want := render(s, 4).b; !reflect.DeepEqual(again, want) {
		t.Error("Render into a reused Mat differs from the reference rendering")
	}
}
