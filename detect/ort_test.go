package detect

import (
	"context"
	"image"
	"image/color"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/internal/testmodels"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

func fill(m *gocv.Mat, r image.Rectangle, c synthetic.RGB) {
	gocv.Rectangle(m, image.Rectangle{Min: r.Min, Max: r.Max.Sub(image.Pt(1, 1))}, color.RGBA{R: c.R, G: c.G, B: c.B, A: 255}, -1)
}

// TestDetectorThroughONNXRuntime checks that boxes come back in the
// original frame's pixels whatever the resize: the synthetic detector
// boxes the pixels of each body colour in its (resized) input.
func TestDetectorThroughONNXRuntime(t *testing.T) {
	detSess, _ := testmodels.SyntheticSessions(t)
	sizes := []image.Point{{640, 360}, {1920, 1080}, {300, 500}}
	for _, size := range sizes {
		frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 118, 122, 0), size.Y, size.X, gocv.MatTypeCV8UC3)
		defer frame.Close()
		sx, sy := size.X/64, size.Y/36 // draw in a 64x36 grid scaled to the frame
		blue := image.Rect(5*sx, 6*sy, 17*sx, 30*sy)
		magenta := image.Rect(40*sx, 2*sy, 50*sx, 20*sy)
		ghost := image.Rect(55*sx, 20*sy, 60*sx, 34*sy)
		fill(&frame, blue, synthetic.BodyColours[0])
		fill(&frame, magenta, synthetic.BodyColours[1])
		fill(&frame, ghost, synthetic.GhostColour)

		d, err := New(detSess, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		// Twice: the second run reuses the input buffers.
		for run := 0; run < 2; run++ {
			dets, err := d.Detect(context.Background(), frame)
			if err != nil {
				t.Fatal(err)
			}
			if len(dets) != 2 {
				t.Fatalf("%v run %d: %d detections %+v, want blue and magenta (not the 0.5 ghost)", size, run, len(dets), dets)
			}
			// One resized input pixel of slack: the model sees the frame
			// resized to DETR's input size.
			oh, _ := ResizeTarget(size.Y, size.X, 800, 1333)
			slack := float32(size.Y)/float32(oh) + 0.5
			for i, want := range []image.Rectangle{blue, magenta} {
				got := dets[i].Box
				if abs(got.X1-float32(want.Min.X)) > slack || abs(got.Y1-float32(want.Min.Y)) > slack ||
					abs(got.X2-float32(want.Max.X)) > slack || abs(got.Y2-float32(want.Max.Y)) > slack {
					t.Errorf("%v: detection %d box %+v, want %v (±%.1f)", size, i, got, want, slack)
				}
				if dets[i].Score < 0.99 {
					t.Errorf("%v: detection %d score %v", size, i, dets[i].Score)
				}
			}
		}
	}
}

func abs(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
