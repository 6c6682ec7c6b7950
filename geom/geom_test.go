package geom

import (
	"image"
	"testing"
)

func TestBox(t *testing.T) {
	b := Box{X1: 10.5, Y1: 20, X2: 30.2, Y2: 60.9}
	if w, h := b.W(), b.H(); w < 19.69 || w > 19.71 || h < 40.89 || h > 40.91 {
		t.Errorf("W, H = %v, %v", w, h)
	}
	// Whole pixels grow outward, so a mask drawn over Rect covers every
	// partly covered pixel.
	if got, want := b.Rect(), image.Rect(10, 20, 31, 61); got != want {
		t.Errorf("Rect() = %v, want %v", got, want)
	}
	if got := (Box{X1: 4, Y1: 4, X2: 4, Y2: 9}).Rect(); !got.Empty() {
		t.Errorf("a box without width covers %v", got)
	}
}
