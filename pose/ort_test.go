package pose

import (
	"context"
	"image"
	"image/color"
	"math"
	"slices"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/internal/testmodels"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

func dot(m *gocv.Mat, p image.Point, r int, c synthetic.RGB) {
	gocv.Circle(m, p, r, color.RGBA{R: c.R, G: c.G, B: c.B, A: 255}, -1)
}

// TestEstimatorThroughONNXRuntime checks that keypoints come back where
// they are in the frame, through the crop, the model and the inverse
// transform: the synthetic pose model peaks on red (nose), green (left
// shoulder) and yellow (right shoulder) dots.
func TestEstimatorThroughONNXRuntime(t *testing.T) {
	_, poseSess := testmodels.SyntheticSessions(t)
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 120, 120, 0), 720, 1280, gocv.MatTypeCV8UC3)
	defer frame.Close()

	type person struct {
		box            geom.Box
		nose, lsh, rsh image.Point
		dotRadius      int
	}
	people := []person{
		// Tall standing figure, near the left edge.
		{geom.Box{X1: 20, Y1: 100, X2: 140, Y2: 500}, image.Pt(80, 140), image.Pt(115, 200), image.Pt(45, 200), 10},
		// Wide box (crop grows vertically).
		{geom.Box{X1: 400, Y1: 300, X2: 800, Y2: 420}, image.Pt(600, 320), image.Pt(700, 380), image.Pt(500, 380), 12},
		// Small figure.
		{geom.Box{X1: 1000, Y1: 50, X2: 1040, Y2: 150}, image.Pt(1020, 62), image.Pt(1032, 80), image.Pt(1008, 80), 3},
	}
	boxes := make([]geom.Box, len(people))
	for i, p := range people {
		dot(&frame, p.nose, p.dotRadius, synthetic.NoseColour)
		dot(&frame, p.lsh, p.dotRadius, synthetic.LeftShoulderColour)
		dot(&frame, p.rsh, p.dotRadius, synthetic.RightShoulderColour)
		boxes[i] = p.box
	}

	for _, tt := range []struct {
		batch int
		pad   bool
		rows  []int // the batch sizes the model saw
	}{
		{batch: 1, rows: []int{1}},
		{batch: 2, rows: []int{1, 2}},
		{batch: 16, rows: []int{3}},
		{batch: 16, pad: true, rows: []int{4}},
		{batch: 3, pad: true, rows: []int{3}},
	} {
		batch := tt.batch
		est, err := New(poseSess, Config{BatchSize: batch, Padding: 1.25, PadBatches: tt.pad})
		if err != nil {
			t.Fatal(err)
		}
		defer est.Close()
		poses, err := est.Estimate(context.Background(), frame, boxes)
		if err != nil {
			t.Fatal(err)
		}
		var rows []int
		for r := range est.inputs {
			rows = append(rows, r)
		}
		slices.Sort(rows)
		if !slices.Equal(rows, tt.rows) {
			t.Errorf("batch %d, padded %v: the model saw batches of %v, want %v", batch, tt.pad, rows, tt.rows)
		}
		if len(poses) != len(people) {
			t.Fatalf("batch %d: %d poses for %d people", batch, len(poses), len(people))
		}
		for i, p := range people {
			tr := CropTransform(p.box, models.PoseInputWidth, models.PoseInputHeight, 1.25)
			// A heatmap cell is 4 input pixels; allow one cell and a half
			// in frame pixels (the peak cell plus the stride convention).
			tol := 6 / tr.Scale
			for _, kp := range []struct {
				k    int
				want image.Point
			}{{models.KptNose, p.nose}, {models.KptLeftShoulder, p.lsh}, {models.KptRightShoulder, p.rsh}} {
				got := poses[i][kp.k]
				d := math.Hypot(float64(got.X)-float64(kp.want.X), float64(got.Y)-float64(kp.want.Y))
				if d > tol {
					t.Errorf("batch %d person %d %s at (%.1f,%.1f), want %v (off by %.1f > %.1f)",
						batch, i, models.KeypointNames[kp.k], got.X, got.Y, kp.want, d, tol)
				}
				if got.Conf < 0.5 {
					t.Errorf("batch %d person %d %s confidence %.2f", batch, i, models.KeypointNames[kp.k], got.Conf)
				}
			}
			if c := poses[i][models.KptLeftEye].Conf; c != 0 {
				t.Errorf("person %d: left eye confidence %v, want 0 (nothing drawn)", i, c)
			}
		}
	}
}
