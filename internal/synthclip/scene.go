package synthclip

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"

	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// Scene describes a generated clip. The zero Seed is a valid seed; it only
// changes the background noise, never the figures' geometry.
type Scene struct {
	Width, Height int
	// FPS is the exact frame rate FPSNum/FPSDen.
	FPSNum, FPSDen int
	Frames         int
	Audio          bool
	Seed           int64
	// Disguise lists, by figure label, the frames in which that figure's
	// body is drawn in DisguiseColour, which the synthetic detector does
	// not know: a person the detector misses in those frames (motion blur,
	// occlusion, a score dipping under the threshold), face in full view.
	Disguise map[string][]int
}

// DisguiseColour is far from every colour of the synthetic models'
// palette and from the grey backgrounds, so neither model sees it.
var DisguiseColour = synthetic.RGB{R: 200, G: 120, B: 90}

// DefaultScene is the scene tests, the demo and benchmarks use: NTSC rate
// (30000/1001, to exercise non-integer rates) and an audio track, which the
// program must carry over untouched.
func DefaultScene(width, height, frames int) Scene {
	return Scene{
		Width: width, Height: height,
		FPSNum: 30000, FPSDen: 1001,
		Frames: frames,
		Audio:  true,
	}
}

// Limits of Validate. Below the minimum height the smallest figure's
// shoulder dots, which keep a minimum size to survive encoding, would not
// fit side by side; narrower than 4:3 the figures' paths would cross, and
// touching figures would make Box depend on drawing order.
const (
	MinWidth  = 480
	MinHeight = 360
)

// Validate reports why the scene cannot be generated, if it cannot.
func (s Scene) Validate() error {
	var errs []error
	if s.Width < MinWidth || s.Height < MinHeight {
		errs = append(errs, fmt.Errorf("frame size %dx%d is too small: use at least %dx%d", s.Width, s.Height, MinWidth, MinHeight))
	}
	if s.Width%2 != 0 || s.Height%2 != 0 {
		// yuv420p subsamples chroma by two in both directions, and the
		// figures are drawn on the matching grid.
		errs = append(errs, fmt.Errorf("frame size %dx%d must be even in both directions for yuv420p", s.Width, s.Height))
	}
	if s.Width*3 < s.Height*4 {
		errs = append(errs, fmt.Errorf("frame size %dx%d is narrower than 4:3: the figures' paths would cross", s.Width, s.Height))
	}
	if s.FPSNum <= 0 || s.FPSDen <= 0 {
		errs = append(errs, fmt.Errorf("frame rate %d/%d must be positive", s.FPSNum, s.FPSDen))
	}
	if s.Frames < 1 {
		errs = append(errs, fmt.Errorf("frame count %d must be at least 1", s.Frames))
	}
	return errors.Join(errs...)
}

// Duration is the clip's length in seconds.
func (s Scene) Duration() float64 {
	return float64(s.Frames) * float64(s.FPSDen) / float64(s.FPSNum)
}

// Figure is the ground truth of one figure in one frame.
//
// Every figure is drawn on a grid of 2x2-pixel blocks aligned with the
// frame, so each chroma sample of yuv420p covers a single colour: with
// colour edges inside chroma blocks, the encoder would pair one colour's
// luma with a blend of chroma and invent colours the synthetic detector
// takes for another person. Points are continuous frame coordinates in
// which pixel (x, y) covers [x, x+1) x [y, y+1); dot centres fall on pixel
// corners, so each is both the exact centre of its dot and the index of a
// pixel inside it.
type Figure struct {
	Label  string
	Colour synthetic.RGB
	// Box is the exact extent of the pixels drawn in Colour, clipped to the
	// frame, half-open like every image.Rectangle. Empty when not Visible.
	Box image.Rectangle
	// HasNose says whether the figure carries the nose and shoulder dots.
	HasNose                           bool
	Nose, LeftShoulder, RightShoulder image.Point
	// DotRadius is the radius of the three dots in pixels; their edges
	// follow the block grid, so they deviate from a true circle by up to a
	// pixel.
	DotRadius int
	// TorsoCentre is a body-coloured pixel well away from the dots and
	// outside ExpectedDisk, so tests can check that masking left the rest
	// of the person alone.
	TorsoCentre image.Point
	Ghost       bool
	Visible     bool
	// Disguised says the body is drawn in DisguiseColour in this frame.
	Disguised bool
	// Head is the centre and HeadRadius the radius, in pixels, of the
	// head: what must be black in every frame the figure is visible.
	Head       image.Point
	HeadRadius int
}

// ExpectedDisk is where the masking rule puts the black disk for a figure
// with a nose: centred on the nose, reaching the farther shoulder. It
// covers the whole head by construction of the figure.
func (f Figure) ExpectedDisk() (centre image.Point, radius float64) {
	d := func(p image.Point) float64 {
		return math.Hypot(float64(p.X-f.Nose.X), float64(p.Y-f.Nose.Y))
	}
	return f.Nose, math.Max(d(f.LeftShoulder), d(f.RightShoulder))
}

// Figure labels, stable across frames so tests can find a figure by name.
const (
	LabelWalker   = "blue-walker"
	LabelNoNose   = "magenta-no-nose"
	LabelDiagonal = "teal-diagonal"
	LabelGhost    = "ghost"
)

// RingColour surrounds the shoulder dots. Without it the encoder mixes
// green on blue into teal and yellow on blue or teal into the ghost
// colour, which the synthetic detector would box as another person; a
// light grey mixes with every dot and body colour into nothing in the
// palette. The nose needs no ring: red blurred into blue or teal stays
// clear of every other palette colour.
var RingColour = synthetic.RGB{R: 210, G: 210, B: 210}

// block is the side of the grid every figure is drawn on; see Figure.
const block = 2

// Figure proportions, as fractions of the figure's height.
const (
	headRadius  = 0.11
	noseDrop    = 0.2 // nose below the head centre, in head radii
	neckHalfW   = 0.05
	torsoHalfW  = 0.18 // wide enough for two ringed shoulder dots on the smallest figure
	torsoTop    = 0.25
	torsoBottom = 0.60
	shoulderX   = 0.15 // where the arms hang from
	shoulderY   = 0.29
	armLength   = 0.33
	armRadius   = 0.035
	armSpread   = 12 * math.Pi / 180 // arms hang outwards by this, ± the same again
	hipX        = 0.08
	hipY        = 0.58
	legLength   = 0.40
	legRadius   = 0.045
	legSwing    = 18 * math.Pi / 180
	dotFraction = 0.025
	// minDotBlocks keeps the smallest dots (and rings) 4 px across in
	// radius, large enough to keep their colour through encoding.
	minDotBlocks = 2
	// stepFrames is one stride of the walk cycle, independent of how fast a
	// figure moves so limbs move between frames even in short clips.
	stepFrames = 20.0
)

// track is one figure's path through the clip.
type track struct {
	label   string
	colour  synthetic.RGB
	ghost   bool
	hasNose bool
	height  float64 // fraction of the frame height
	// Centre line x and top y in pixels, as functions of the progress p
	// in [0,1] through the clip.
	x, top  func(p float64) float64
	visible func(frame int) bool
	phase   float64 // walk cycle offset, radians
}

// tracks lays the four figures out in two bands: the two large ones walk
// towards each other along the bottom but stop well short of meeting, the
// two small ones share the top band. Paths are tied to progress through the
// clip, not to time, so every clip of three frames or more shows every
// situation; frame 0 is always empty.
func (s Scene) tracks() []track {
	W, H := float64(s.Width), float64(s.Height)
	lerp := func(a, b, p float64) float64 { return a + (b-a)*p }
	after := func(first int) func(int) bool { return func(f int) bool { return f >= first } }
	ghostEnd := max(2, s.Frames-s.Frames/5)
	tealH := 0.28 * H
	// The teal figure arrives at the left border at 70% of the clip, with
	// its torso (and so its head and dots) still inside, and walks on the
	// spot there.
	tealP := func(p float64) float64 { return math.Min(p/0.7, 1) }
	return []track{
		{
			label: LabelWalker, colour: synthetic.BodyColours[0], hasNose: true,
			height:  0.50,
			x:       func(p float64) float64 { return lerp(0.10*W, 0.42*W, p) },
			top:     func(float64) float64 { return 0.46 * H },
			visible: after(1),
		},
		{
			label: LabelNoNose, colour: synthetic.BodyColours[1],
			height:  0.42,
			x:       func(p float64) float64 { return lerp(0.90*W, 0.68*W, p) },
			top:     func(float64) float64 { return 0.54 * H },
			visible: after(max(1, s.Frames/5)),
			phase:   math.Pi / 2,
		},
		{
			label: LabelDiagonal, colour: synthetic.BodyColours[2], hasNose: true,
			height:  0.28,
			x:       func(p float64) float64 { return lerp(0.50*W, (torsoHalfW+0.03)*tealH, tealP(p)) },
			top:     func(p float64) float64 { return lerp(0.02*H, 0.13*H, tealP(p)) },
			visible: after(1),
			phase:   math.Pi,
		},
		{
			label: LabelGhost, colour: synthetic.GhostColour, ghost: true,
			height:  0.30,
			x:       func(p float64) float64 { return lerp(0.88*W, 0.72*W, p) },
			top:     func(float64) float64 { return 0.05 * H },
			visible: func(f int) bool { return f >= 1 && f < ghostEnd },
			phase:   3 * math.Pi / 2,
		},
	}
}

// progress maps frame 1..Frames-1 onto [0,1].
func (s Scene) progress(frame int) float64 {
	if s.Frames <= 2 {
		return 0
	}
	p := float64(frame-1) / float64(s.Frames-2)
	return math.Max(0, math.Min(1, p))
}

// Geometry below is in blocks, not pixels.

type circle struct {
	c image.Point
	r int
}

func (c circle) contains(x, y int) bool {
	dx, dy := x-c.c.X, y-c.c.Y
	return dx*dx+dy*dy <= c.r*c.r
}

func (c circle) bounds() image.Rectangle {
	return image.Rect(c.c.X-c.r, c.c.Y-c.r, c.c.X+c.r+1, c.c.Y+c.r+1)
}

// capsule is a thick line segment: the points within r of segment a-b.
type capsule struct {
	ax, ay, bx, by, r float64
}

func (c capsule) contains(x, y int) bool {
	px, py := float64(x)-c.ax, float64(y)-c.ay
	dx, dy := c.bx-c.ax, c.by-c.ay
	t := (px*dx + py*dy) / (dx*dx + dy*dy)
	t = math.Max(0, math.Min(1, t))
	ex, ey := px-t*dx, py-t*dy
	return ex*ex+ey*ey <= c.r*c.r
}

func (c capsule) bounds() image.Rectangle {
	return image.Rect(
		int(math.Floor(math.Min(c.ax, c.bx)-c.r)), int(math.Floor(math.Min(c.ay, c.by)-c.r)),
		int(math.Ceil(math.Max(c.ax, c.bx)+c.r))+1, int(math.Ceil(math.Max(c.ay, c.by)+c.r))+1)
}

type dot struct {
	circle
	ring   int // width of the RingColour ring around it; 0 for none
	colour synthetic.RGB
}

// shape is one figure in one frame, ready to rasterise.
type shape struct {
	fig      Figure // Box not yet computed
	circles  []circle
	rects    []image.Rectangle
	capsules []capsule
	dots     []dot
	bounds   image.Rectangle // covers every drawn block; not clipped
}

// colourAt is the single definition of what the figure draws at a block;
// Render and Figures both use it, so Box cannot disagree with the pixels.
func (sh *shape) colourAt(x, y int) (synthetic.RGB, bool) {
	for _, d := range sh.dots {
		dx, dy := x-d.c.X, y-d.c.Y
		dd := dx*dx + dy*dy
		if dd <= d.r*d.r {
			return d.colour, true
		}
		if outer := d.r + d.ring; d.ring > 0 && dd <= outer*outer {
			return RingColour, true
		}
	}
	for _, c := range sh.circles {
		if c.contains(x, y) {
			return sh.fig.Colour, true
		}
	}
	p := image.Pt(x, y)
	for _, r := range sh.rects {
		if p.In(r) {
			return sh.fig.Colour, true
		}
	}
	for _, c := range sh.capsules {
		if c.contains(x, y) {
			return sh.fig.Colour, true
		}
	}
	return synthetic.RGB{}, false
}

// shapes builds every visible figure of a frame; invisible ones come back
// with only their Figure filled in.
func (s Scene) shapes(frame int) []shape {
	p := s.progress(frame)
	out := make([]shape, 0, 4)
	for _, tr := range s.tracks() {
		sh := shape{fig: Figure{
			Label: tr.label, Colour: tr.colour, Ghost: tr.ghost, HasNose: tr.hasNose,
			Visible: frame >= 0 && frame < s.Frames && tr.visible(frame),
		}}
		if slices.Contains(s.Disguise[tr.label], frame) {
			sh.fig.Colour, sh.fig.Disguised = DisguiseColour, true
		}
		if sh.fig.Visible {
			s.build(&sh, tr, frame, p)
		}
		out = append(out, sh)
	}
	return out
}

func (s Scene) build(sh *shape, tr track, frame int, p float64) {
	h := tr.height * float64(s.Height) / block
	cx, top := int(math.Round(tr.x(p)/block)), int(math.Round(tr.top(p)/block))
	n := func(f float64) int { return int(math.Round(f * h)) }

	head := circle{image.Pt(cx, top+n(headRadius)), n(headRadius)}
	sh.circles = []circle{head}
	torso := image.Rect(cx-n(torsoHalfW), top+n(torsoTop), cx+n(torsoHalfW)+1, top+n(torsoBottom))
	neck := image.Rect(cx-n(neckHalfW), head.c.Y, cx+n(neckHalfW)+1, torso.Min.Y+1)
	sh.rects = []image.Rectangle{neck, torso}

	swing := math.Sin(2*math.Pi*float64(frame)/stepFrames + tr.phase)
	for _, side := range []float64{-1, 1} {
		// Arms always hang outwards so they never cover the shoulder dots;
		// legs swing in opposition.
		armAngle := armSpread * (1 + side*swing)
		ax, ay := float64(cx)+side*shoulderX*h, float64(top)+shoulderY*h
		legAngle := side * legSwing * swing
		lx, ly := float64(cx)+side*hipX*h, float64(top)+hipY*h
		sh.capsules = append(sh.capsules,
			capsule{ax, ay, ax + side*armLength*h*math.Sin(armAngle), ay + armLength*h*math.Cos(armAngle), armRadius * h},
			capsule{lx, ly, lx + legLength*h*math.Sin(legAngle), ly + legLength*h*math.Cos(legAngle), legRadius * h},
		)
	}

	dotR := max(minDotBlocks, n(dotFraction))
	ring := dotR
	// Shoulder dots sit in the torso's top corners, far enough in that
	// their rings stay inside the torso; the figure faces the camera, so
	// its left shoulder is on the image right.
	inset := dotR + ring + 1
	nose := image.Pt(cx, head.c.Y+int(math.Round(noseDrop*float64(head.r))))
	left := image.Pt(torso.Max.X-1-inset, torso.Min.Y+inset)
	right := image.Pt(torso.Min.X+inset, torso.Min.Y+inset)
	if tr.hasNose {
		sh.dots = []dot{
			{circle: circle{nose, dotR}, colour: synthetic.NoseColour},
			{circle: circle{left, dotR}, ring: ring, colour: synthetic.LeftShoulderColour},
			{circle: circle{right, dotR}, ring: ring, colour: synthetic.RightShoulderColour},
		}
	}
	// A block's centre is the corner its four pixels share.
	centre := func(b image.Point) image.Point { return b.Mul(block).Add(image.Pt(block/2, block/2)) }
	sh.fig.Nose, sh.fig.LeftShoulder, sh.fig.RightShoulder = centre(nose), centre(left), centre(right)
	sh.fig.DotRadius = dotR * block
	sh.fig.TorsoCentre = centre(image.Pt(cx, (torso.Min.Y+torso.Max.Y)/2))
	sh.fig.Head, sh.fig.HeadRadius = centre(head.c), head.r*block

	b := head.bounds()
	for _, r := range sh.rects {
		b = b.Union(r)
	}
	for _, c := range sh.capsules {
		b = b.Union(c.bounds())
	}
	sh.bounds = b
}

// blocks is the frame in blocks (Validate makes both sides even).
func (s Scene) blocks() image.Rectangle {
	return image.Rect(0, 0, s.Width/block, s.Height/block)
}

// Figures returns the ground truth of frame: every figure of the scene,
// with Visible telling which are drawn in it.
func (s Scene) Figures(frame int) []Figure {
	shapes := s.shapes(frame)
	figs := make([]Figure, len(shapes))
	for i := range shapes {
		sh := &shapes[i]
		f := sh.fig
		if f.Visible {
			b := sh.bodyBox(sh.bounds.Intersect(s.blocks()))
			f.Box = image.Rectangle{b.Min.Mul(block), b.Max.Mul(block)}
		}
		figs[i] = f
	}
	return figs
}

// bodyBox is the extent of the body-coloured blocks within r.
func (sh *shape) bodyBox(r image.Rectangle) image.Rectangle {
	box := image.Rectangle{}
	found := false
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c, ok := sh.colourAt(x, y)
			if !ok || c != sh.fig.Colour {
				continue
			}
			if !found {
				box = image.Rect(x, y, x+1, y+1)
				found = true
				continue
			}
			box.Min.X = min(box.Min.X, x)
			box.Max.X = max(box.Max.X, x+1)
			box.Max.Y = y + 1
		}
	}
	return box
}
