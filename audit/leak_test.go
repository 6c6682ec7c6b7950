//go:build matprofile

package audit

// Run with `go test -tags matprofile ./audit` (make test does): the audit
// runs on every sampled frame of a long job, so a Mat it forgets to close
// grows without bound.

import (
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

func TestDetectorLeavesNoMat(t *testing.T) {
	img := gocv.IMRead(testutil.Photo(t, "messi5.jpg"), gocv.IMReadColor)
	defer img.Close()
	before := gocv.MatProfile.Count()
	d := newTestDetector(t, DefaultConfig())
	for range 3 {
		faces, err := d.Faces(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(faces) == 0 {
			t.Fatal("no face found in messi5.jpg")
		}
		if err := WriteEvidence(img, faces[0].Box, filepath.Join(t.TempDir(), "face.png")); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if after := gocv.MatProfile.Count(); after != before {
		t.Errorf("%d Mats alive after the detector closed, %d before", after, before)
	}
}
