package pose

import (
	"github.com/anonymize-dev/anonymize/geom"
)

// Transform is the similarity transform (uniform scale plus translation, no
// rotation) that maps a person's box, padded and fitted to the model's
// aspect ratio, onto the model input. Top-down pose estimators (HRNet,
// TransPose) crop this way so people keep their proportions; squashing the
// box to 192x256 instead, as the reference did, distorts them and the
// keypoints the model returns.
type Transform struct {
	Scale    float64 // input pixels per frame pixel
	CX, CY   float64 // box centre, frame pixels
	InW, InH int     // model input size
}

// CropTransform fits box, grown by padding (1.25 in HRNet and TransPose),
// to an inW x inH input while keeping its aspect ratio: the box is widened
// or heightened to inW:inH around its centre, never cut.
func CropTransform(box geom.Box, inW, inH int, padding float64) Transform {
	w, h := float64(box.W()), float64(box.H())
	aspect := float64(inW) / float64(inH)
	if w > aspect*h {
		h = w / aspect
	} else {
		w = h * aspect
	}
	h *= padding
	if h <= 0 {
		h = 1
	}
	return Transform{
		Scale: float64(inH) / h,
		CX:    float64(box.X1+box.X2) / 2,
		CY:    float64(box.Y1+box.Y2) / 2,
		InW:   inW,
		InH:   inH,
	}
}

// ToInput maps frame coordinates to model-input coordinates.
func (t Transform) ToInput(x, y float64) (float64, float64) {
	return (x-t.CX)*t.Scale + float64(t.InW)/2, (y-t.CY)*t.Scale + float64(t.InH)/2
}

// ToFrame maps model-input coordinates back to frame coordinates.
func (t Transform) ToFrame(u, v float64) (float64, float64) {
	return (u-float64(t.InW)/2)/t.Scale + t.CX, (v-float64(t.InH)/2)/t.Scale + t.CY
}

// Matrix returns the 2x3 affine matrix of ToInput, row-major, for warpAffine.
func (t Transform) Matrix() [6]float64 {
	return [6]float64{
		t.Scale, 0, float64(t.InW)/2 - t.Scale*t.CX,
		0, t.Scale, float64(t.InH)/2 - t.Scale*t.CY,
	}
}
