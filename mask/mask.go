package mask

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/models"
)

// Config holds the masking settings.
type Config struct {
	// KptThreshold is the keypoint confidence (heatmap peak) below which a
	// keypoint is not trusted.
	KptThreshold float64
	// Scale multiplies the keypoint-derived radius.
	Scale float64
	// FloorFraction sets the smallest radius, as a fraction of the box's
	// longer side: a standing adult's head is about 1/7.5 of their height,
	// so 0.08 covers a head whatever the keypoints say.
	FloorFraction float64
}

// DefaultConfig returns the defaults: the reference's radius rule (scale 1)
// and a keypoint threshold at which TransPose's peaks are reliable.
func DefaultConfig() Config {
	return Config{KptThreshold: 0.3, Scale: 1.0, FloorFraction: 0.08}
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.KptThreshold < 0 || c.KptThreshold > 1 {
		return fmt.Errorf("keypoint threshold %.2f must be between 0 and 1", c.KptThreshold)
	}
	if c.Scale <= 0 {
		return fmt.Errorf("mask scale %.2f must be positive", c.Scale)
	}
	if c.FloorFraction < 0 {
		return fmt.Errorf("mask floor fraction %.2f must not be negative", c.FloorFraction)
	}
	return nil
}

// Plan places the mask for a person from their box and pose (nil when no
// pose is available).
func Plan(box geom.Box, p *geom.Pose, cfg Config) geom.Region {
	floor := cfg.FloorFraction * float64(max(box.W(), box.H()))
	if p == nil {
		return headBox(box)
	}
	ok := func(k int) bool { return float64(p[k].Conf) >= cfg.KptThreshold }
	pt := func(k int) (float64, float64) { return float64(p[k].X), float64(p[k].Y) }

	var cx, cy float64
	kind := geom.MaskNose
	if ok(models.KptNose) {
		cx, cy = pt(models.KptNose)
	} else {
		n := 0
		for _, k := range faceKeypoints {
			if ok(k) {
				x, y := pt(k)
				cx, cy, n = cx+x, cy+y, n+1
			}
		}
		if n == 0 {
			return headBox(box)
		}
		cx, cy = cx/float64(n), cy/float64(n)
		kind = geom.MaskFaceKeypoints
		// Centred on the eyes and ears of a face seen from the side, the
		// disk must reach further to cover the nose and mouth.
		floor *= 1.5
	}

	// The reference's rule: the larger nose-to-shoulder distance covers
	// the head at any tilt. Without confident shoulders, twice the spread
	// of the face keypoints stands in for it.
	var r float64
	for _, k := range []int{models.KptLeftShoulder, models.KptRightShoulder} {
		if ok(k) {
			x, y := pt(k)
			r = max(r, math.Hypot(x-cx, y-cy))
		}
	}
	if r == 0 {
		for _, k := range faceKeypoints {
			if ok(k) {
				x, y := pt(k)
				r = max(r, 2*math.Hypot(x-cx, y-cy))
			}
		}
	}
	r *= cfg.Scale
	reg := geom.Region{Kind: kind, Center: image.Pt(int(math.Round(cx)), int(math.Round(cy)))}
	if r < floor {
		r, reg.Floored = floor, true
	}
	reg.Radius = max(1, int(math.Ceil(r)))
	return reg
}

var faceKeypoints = []int{models.KptLeftEye, models.KptRightEye, models.KptLeftEar, models.KptRightEar}

// headBox covers the top of the box: a quarter of its height for a
// standing person (head and neck), half its width when the box is wide
// (upper-body shots, where the head fills more of it).
func headBox(box geom.Box) geom.Region {
	r := box.Rect()
	h := max(r.Dy()/4, r.Dx()/2)
	h = min(max(h, 1), r.Dy())
	return geom.Region{Kind: geom.MaskHeadBox, Rect: image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+h)}
}

var black = color.RGBA{A: 255}

// Apply blacks out the regions in a BGR frame.
func Apply(frame *gocv.Mat, regions []geom.Region) {
	for _, r := range regions {
		if !r.Rect.Empty() {
			// gocv draws rectangles corner to corner inclusive; Rect's Max
			// is exclusive.
			gocv.Rectangle(frame, image.Rectangle{Min: r.Rect.Min, Max: r.Rect.Max.Sub(image.Pt(1, 1))}, black, -1)
			continue
		}
		if r.Radius > 0 {
			gocv.Circle(frame, r.Center, r.Radius, black, -1)
		}
	}
}

// FallbackRadiusFloor names the fallback of a radius raised to the floor
// tied to the person's box (a geom.Region with Floored set).
const FallbackRadiusFloor = "radius_floor"

// Counts tallies how masks were placed over a run.
type Counts struct {
	Nose          int `json:"nose"`
	FaceKeypoints int `json:"face_keypoints"`
	HeadBox       int `json:"head_box"`
	RadiusFloor   int `json:"radius_floor"`
	// Held and Backfilled count the masks tracking added where the
	// detector found nobody (see package track).
	Held       int `json:"held"`
	Backfilled int `json:"backfilled"`
}

// Add counts one region.
func (c *Counts) Add(r geom.Region) {
	switch r.Kind {
	case geom.MaskNose:
		c.Nose++
	case geom.MaskFaceKeypoints:
		c.FaceKeypoints++
	case geom.MaskHeadBox:
		c.HeadBox++
	case geom.MaskHeld:
		c.Held++
	case geom.MaskBackfilled:
		c.Backfilled++
	}
	if r.Floored {
		c.RadiusFloor++
	}
}

// Merge adds another tally to c.
func (c *Counts) Merge(o Counts) {
	c.Nose += o.Nose
	c.FaceKeypoints += o.FaceKeypoints
	c.HeadBox += o.HeadBox
	c.RadiusFloor += o.RadiusFloor
	c.Held += o.Held
	c.Backfilled += o.Backfilled
}

// Fallbacks is the number of masks of detected people not placed by the
// normal rule; held and backfilled masks are counted apart.
func (c Counts) Fallbacks() int { return c.FaceKeypoints + c.HeadBox + c.RadiusFloor }
