package audit

import (
	"image"
	"image/color"
	"log/slog"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/testutil"
)

// knownFaces are the faces of the opencv-doc photographs, boxed by hand:
// Messi's, and the man's on the left of basketball1.png (the man on the
// right turns his face away).
var knownFaces = map[string][]image.Rectangle{
	"messi5.jpg":       {image.Rect(222, 95, 258, 131)},
	"basketball1.png":  {image.Rect(68, 98, 106, 136)},
	"ela_original.jpg": nil, // a notebook
}

func newTestDetector(t *testing.T, cfg Config) *Detector {
	t.Helper()
	rt, err := inference.Load(inference.LibrarySearch{Flag: testutil.ORTLib(t)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := rt.OpenSession(inference.SessionOptions{Role: "face detector", Path: testutil.AuditModel(t), Contract: BlazeFace,
		Device: inference.Device{Kind: inference.DeviceCPU}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	d, err := New(sess, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// blackOut draws a black disk over each box, reaching its corners and a
// quarter beyond: what the masking would do.
func blackOut(img *gocv.Mat, boxes []image.Rectangle) {
	for _, b := range boxes {
		c := image.Pt((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2)
		gocv.Circle(img, c, max(b.Dx(), b.Dy())*3/4+2, color.RGBA{A: 255}, -1)
	}
}

func TestFacesOnPhotographs(t *testing.T) {
	d := newTestDetector(t, DefaultConfig())
	for name, faces := range knownFaces {
		t.Run(name, func(t *testing.T) {
			img := gocv.IMRead(testutil.Photo(t, name), gocv.IMReadColor)
			defer img.Close()
			got, err := d.Faces(img)
			if err != nil {
				t.Fatal(err)
			}
			// Every known face is found, and nothing else.
			for _, want := range faces {
				found := false
				for _, f := range got {
					if f.Box.IoU(boxOf(want)) >= 0.4 {
						found = true
					}
				}
				if !found {
					t.Errorf("face %v not found; found %+v", want, got)
				}
			}
			if len(got) != len(faces) {
				t.Errorf("found %d faces %+v, want %d", len(got), got, len(faces))
			}
			// Masked, it has none.
			blackOut(&img, faces)
			if got, err := d.Faces(img); err != nil || len(got) != 0 {
				t.Errorf("after masking: faces %+v, %v", got, err)
			}
		})
	}
}

func boxOf(r image.Rectangle) geom.Box {
	return geom.Box{X1: float32(r.Min.X), Y1: float32(r.Min.Y), X2: float32(r.Max.X), Y2: float32(r.Max.Y)}
}
