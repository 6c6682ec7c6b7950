package audit

import (
	"image"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

// smallestFace scales the messi5 photograph down step by step onto a
// 1920x1080 frame of the notebook photograph and returns the smallest
// width of Messi's face (in frame pixels) that the detector still finds.
func smallestFace(t *testing.T, d *Detector) int {
	t.Helper()
	photo := gocv.IMRead(testutil.Photo(t, "messi5.jpg"), gocv.IMReadColor)
	defer photo.Close()
	bg := gocv.IMRead(testutil.Photo(t, "ela_original.jpg"), gocv.IMReadColor)
	defer bg.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	scaled := gocv.NewMat()
	defer scaled.Close()
	face := knownFaces["messi5.jpg"][0]
	smallest := 0
	for width := 160; width >= 8; width = width * 9 / 10 {
		f := float64(width) / float64(face.Dx())
		gocv.Resize(bg, &frame, image.Pt(1920, 1080), 0, 0, gocv.InterpolationLinear)
		gocv.Resize(photo, &scaled, image.Pt(int(float64(photo.Cols())*f), int(float64(photo.Rows())*f)), 0, 0, gocv.InterpolationArea)
		// Paste so the face lands mid-frame, off the tiles' edges.
		fx, fy := int(float64(face.Min.X)*f), int(float64(face.Min.Y)*f)
		at := image.Pt(960-fx-width/2, 540-fy-width/2)
		src := image.Rect(0, 0, scaled.Cols(), scaled.Rows())
		dst := src.Add(at).Intersect(image.Rect(0, 0, 1920, 1080))
		part := scaled.Region(dst.Sub(at))
		win := frame.Region(dst)
		part.CopyTo(&win)
		part.Close()
		win.Close()
		faces, err := d.Faces(frame)
		if err != nil {
			t.Fatal(err)
		}
		want := boxOf(image.Rect(at.X+fx, at.Y+fy, at.X+fx+width, at.Y+fy+width))
		found := false
		for _, g := range faces {
			found = found || g.Box.IoU(want) >= 0.3
		}
		if !found {
			break
		}
		smallest = width
	}
	return smallest
}

func TestSmallestFace(t *testing.T) {
	for _, tt := range []struct {
		levels int
		most   int // the largest acceptable smallest face, in 1080p pixels
	}{
		{0, 200},
		{1, 90},
		{2, 45},
	} {
		cfg := DefaultConfig()
		cfg.Levels = tt.levels
		got := smallestFace(t, newTestDetector(t, cfg))
		t.Logf("levels %d (%d windows at 1080p): smallest face found %d px wide", tt.levels, len(Windows(1920, 1080, tt.levels)), got)
		if got == 0 || got > tt.most {
			t.Errorf("levels %d: smallest face found %d px, want at most %d", tt.levels, got, tt.most)
		}
	}
}
