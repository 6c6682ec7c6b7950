package geom

import (
	"image"
	"math"
)

// Box is an axis-aligned box in frame pixels, X2/Y2 exclusive.
type Box struct{ X1, Y1, X2, Y2 float32 }

// W returns the box width.
func (b Box) W() float32 { return b.X2 - b.X1 }

// H returns the box height.
func (b Box) H() float32 { return b.Y2 - b.Y1 }

// Rect returns the box as whole pixels, growing it to cover partial pixels.
func (b Box) Rect() image.Rectangle {
	return image.Rect(int(math.Floor(float64(b.X1))), int(math.Floor(float64(b.Y1))),
		int(math.Ceil(float64(b.X2))), int(math.Ceil(float64(b.Y2))))
}

// Detection is one person found in a frame.
type Detection struct {
	Box   Box
	Score float32
}

// NumKeypoints is the number of COCO keypoints of a pose.
const NumKeypoints = 17

// Keypoint is one joint in frame pixels with the model's confidence (its
// heatmap peak).
type Keypoint struct {
	X, Y float32
	Conf float32
}

// Pose is one person's keypoints in COCO order.
type Pose [NumKeypoints]Keypoint

// MaskKind says how a mask was placed.
type MaskKind string

const (
	// MaskNose is the normal case: a disk on a confident nose.
	MaskNose MaskKind = "nose"
	// MaskFaceKeypoints: the nose was not confident; the disk is centred
	// on the confident eyes and ears.
	MaskFaceKeypoints MaskKind = "face_keypoints"
	// MaskHeadBox: no face keypoint was confident; the head region is
	// estimated from the person's box alone.
	MaskHeadBox MaskKind = "head_box"
	// MaskHeld: the detector missed a tracked person in this frame; the
	// mask they had is kept where they are predicted to be, grown.
	MaskHeld MaskKind = "held"
	// MaskBackfilled: the person was first detected in a later frame; the
	// mask they got then is drawn, grown, on this earlier frame.
	MaskBackfilled MaskKind = "backfilled"
)

// Region is what to black out for one person: a rectangle when Rect is not
// empty (the head box, and masks held or backfilled from one), else a
// disk.
type Region struct {
	Kind    MaskKind
	Center  image.Point
	Radius  int
	Rect    image.Rectangle
	Floored bool // the radius was raised to the box-tied floor
}

// Moved returns the region moved by (dx, dy) and grown by grow pixels on
// every side.
func (r Region) Moved(dx, dy, grow float64) Region {
	d := image.Pt(int(math.Round(dx)), int(math.Round(dy)))
	g := int(math.Ceil(max(grow, 0)))
	if !r.Rect.Empty() {
		r.Rect = r.Rect.Add(d).Inset(-g)
		return r
	}
	r.Center = r.Center.Add(d)
	r.Radius += g
	return r
}

// Area returns the box's area, 0 for an empty box.
func (b Box) Area() float32 { return max(b.W(), 0) * max(b.H(), 0) }

// Center returns the box's centre.
func (b Box) Center() (x, y float32) { return (b.X1 + b.X2) / 2, (b.Y1 + b.Y2) / 2 }

// IoU returns the intersection over union of two boxes, 0 when they do
// not overlap.
func (b Box) IoU(o Box) float32 {
	inter := Box{X1: max(b.X1, o.X1), Y1: max(b.Y1, o.Y1), X2: min(b.X2, o.X2), Y2: min(b.Y2, o.Y2)}.Area()
	union := b.Area() + o.Area() - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}
