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

func TestIoU(t *testing.T) {
	a := Box{X1: 0, Y1: 0, X2: 10, Y2: 10}
	for _, tt := range []struct {
		b    Box
		want float32
	}{
		{a, 1},
		{Box{X1: 5, Y1: 0, X2: 15, Y2: 10}, 50.0 / 150},
		{Box{X1: 10, Y1: 0, X2: 20, Y2: 10}, 0},
		{Box{X1: 2, Y1: 2, X2: 4, Y2: 4}, 4.0 / 100},
		{Box{}, 0},
	} {
		if got := a.IoU(tt.b); got < tt.want-1e-6 || got > tt.want+1e-6 {
			t.Errorf("IoU(%v) = %v, want %v", tt.b, got, tt.want)
		}
	}
}
