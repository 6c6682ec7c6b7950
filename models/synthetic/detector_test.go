package synthetic_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// at scales a rectangle given in fractions of the image to pixels.
func at(h, w int, fx0, fy0, fx1, fy1 float64) rect {
	return rect{
		x0: int(fx0 * float64(w)), y0: int(fy0 * float64(h)),
		x1: int(fx1 * float64(w)), y1: int(fy1 * float64(h)),
	}
}

// colourQueries are the detector's colour queries in query order.
var colourQueries = append(append([]synthetic.RGB(nil), synthetic.BodyColours...), synthetic.GhostColour)

// detectorScene is one image and, per colour query, the pixel rectangle the
// model must box (the zero rect where the colour must not be found).
type detectorScene struct {
	img  *image
	want []rect
}

// fullScene has every kind of query answer: a colour in two separate blobs
// (one box around both), a single blob, an absent colour and the ghost.
func fullScene(h, w int) detectorScene {
	blueA := at(h, w, 0.05, 0.10, 0.25, 0.60)
	blueB := at(h, w, 0.30, 0.70, 0.35, 0.75)
	magenta := at(h, w, 0.60, 0.05, 0.90, 0.40)
	ghost := at(h, w, 0.45, 0.50, 0.55, 0.95)
	img := newImage(h, w).
		fill(blueA, synthetic.BodyColours[0]).
		fill(blueB, synthetic.BodyColours[0]).
		fill(magenta, synthetic.BodyColours[1]).
		fill(ghost, synthetic.GhostColour)
	return detectorScene{img, []rect{blueA.union(blueB), magenta, {}, ghost}}
}

// paddedScene checks pixel_mask: a blue figure lies wholly in the padding
// and must not be found, a magenta one is cut at the padding's edge.
func paddedScene(h, w int) detectorScene {
	ch, cw := h*3/4, w*4/5
	teal := at(h, w, 0.10, 0.20, 0.40, 0.50)
	blue := at(h, w, 0.85, 0.10, 0.95, 0.30)
	magenta := at(h, w, 0.50, 0.60, 0.70, 0.90)
	img := newImage(h, w).
		fill(teal, synthetic.BodyColours[2]).
		fill(blue, synthetic.BodyColours[0]).
		fill(magenta, synthetic.BodyColours[1]).
		pad(ch, cw)
	visible := magenta
	visible.y1 = ch
	return detectorScene{img, []rect{{}, visible, teal, {}}}
}

func runDetector(t *testing.T, model []byte, scenes []detectorScene) (logits, boxes []float32) {
	t.Helper()
	imgs := make([]*image, len(scenes))
	for i, s := range scenes {
		imgs[i] = s.img
	}
	pvShape, pv := pixelValues(t, imgs)
	pmShape, pm := pixelMask(imgs)
	shapes, data := runModel(t, model, []feed{
		newFeed(t, models.DETRPixelValues, pvShape, pv),
		newFeed(t, models.DETRPixelMask, pmShape, pm),
	}, models.DETRLogits, models.DETRPredBoxes)

	b := int64(len(scenes))
	for i, want := range [][]int64{{b, synthetic.Queries, synthetic.Classes}, {b, synthetic.Queries, 4}} {
		if fmt.Sprint(shapes[i]) != fmt.Sprint(want) {
			t.Fatalf("output %d has shape %v, want %v", i, shapes[i], want)
		}
	}
	return data[0], data[1]
}

func TestDetectorBoxesColours(t *testing.T) {
	model, err := synthetic.DetectorModel()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		h, w   int
		scenes func(h, w int) []detectorScene
	}{
		{"one image", 64, 48, func(h, w int) []detectorScene { return []detectorScene{fullScene(h, w)} }},
		{"two images", 64, 48, func(h, w int) []detectorScene { return []detectorScene{fullScene(h, w), paddedScene(h, w)} }},
		{"odd sizes", 37, 53, func(h, w int) []detectorScene { return []detectorScene{paddedScene(h, w), fullScene(h, w)} }},
		{"wide frame", 800, 1422, func(h, w int) []detectorScene { return []detectorScene{fullScene(h, w), paddedScene(h, w)} }},
		{"empty", 40, 30, func(h, w int) []detectorScene {
			return []detectorScene{{newImage(h, w), make([]rect, len(colourQueries))}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scenes := tt.scenes(tt.h, tt.w)
			logits, boxes := runDetector(t, model, scenes)
			for i, s := range scenes {
				checkQueries(t, i, logits, boxes, s.want, tt.h, tt.w)
			}
		})
	}
}

// checkQueries compares every query of image i with what its scene holds.
func checkQueries(t *testing.T, i int, logits, boxes []float32, want []rect, h, w int) {
	t.Helper()
	personScore := math.Exp(synthetic.PersonLogit) / (math.Exp(synthetic.PersonLogit) + synthetic.Classes - 1)
	for q := range synthetic.Queries {
		row := logits[(i*synthetic.Queries+q)*synthetic.Classes:][:synthetic.Classes]
		box := boxes[(i*synthetic.Queries+q)*4:][:4]
		where := fmt.Sprintf("image %d query %d", i, q)

		found := q < len(want) && want[q] != (rect{})
		wantRow := make([]float64, synthetic.Classes)
		wantBox := []float64{0.5, 0.5, 0.1, 0.1}
		wantScore := 0.0
		switch {
		case found && q == len(synthetic.BodyColours):
			wantRow[models.COCOPersonClass] = synthetic.GhostLogit
			wantScore = 0.5
		case found:
			wantRow[models.COCOPersonClass] = synthetic.PersonLogit
			wantScore = personScore
		default:
			wantRow[synthetic.Classes-1] = synthetic.PersonLogit
		}
		if found {
			r := want[q]
			wantBox = []float64{
				float64(r.x0+r.x1) / 2 / float64(w), float64(r.y0+r.y1) / 2 / float64(h),
				float64(r.x1-r.x0) / float64(w), float64(r.y1-r.y0) / float64(h),
			}
		}

		for c, v := range row {
			if math.Abs(float64(v)-wantRow[c]) > 1e-6 {
				t.Errorf("%s: logit %d = %v, want %v", where, c, v, wantRow[c])
			}
		}
		for c, v := range box {
			if math.Abs(float64(v)-wantBox[c]) > 1e-6 {
				t.Errorf("%s: box = %v, want %v", where, box, wantBox)
				break
			}
		}

		probs := softmax(row)
		if found {
			if math.Abs(probs[models.COCOPersonClass]-wantScore) > 1e-5 {
				t.Errorf("%s: person score %.6f, want %.6f", where, probs[models.COCOPersonClass], wantScore)
			}
		} else if best := argmax(probs); best != synthetic.Classes-1 || probs[models.COCOPersonClass] > 1e-4 {
			t.Errorf("%s: top class %d, person score %.6f; want no object", where, best, probs[models.COCOPersonClass])
		}
	}
}

func softmax(logits []float32) []float64 {
	top := math.Inf(-1)
	for _, v := range logits {
		top = math.Max(top, float64(v))
	}
	out := make([]float64, len(logits))
	sum := 0.0
	for i, v := range logits {
		out[i] = math.Exp(float64(v) - top)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

// TestDetectorTolerance puts one stray pixel, off the query colour by the
// given amounts, outside a magenta figure: it belongs to the figure's box
// exactly when every channel is within synthetic.Tolerance.
func TestDetectorTolerance(t *testing.T) {
	model, err := synthetic.DetectorModel()
	if err != nil {
		t.Fatal(err)
	}
	tol := synthetic.Tolerance
	tests := []struct {
		name       string
		dr, dg, db int
		counted    bool
	}{
		{"exact", 0, 0, 0, true},
		{"red at tolerance", tol, 0, 0, true},
		{"blue at minus tolerance", 0, 0, -tol, true},
		{"all channels just inside", tol - 1, tol - 1, -(tol - 1), true},
		{"green one past", 0, tol + 1, 0, false},
		{"red one past below", -(tol + 1), 0, 0, false},
		{"blue far", 0, 0, -3 * tol, false},
	}
	const h, w = 40, 60
	figure := rect{x0: 10, y0: 5, x1: 20, y1: 25}
	stray := rect{x0: 50, y0: 35, x1: 51, y1: 36}
	magenta := synthetic.BodyColours[1]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off := synthetic.RGB{
				R: channel(t, magenta.R, tt.dr), G: channel(t, magenta.G, tt.dg), B: channel(t, magenta.B, tt.db),
			}
			img := newImage(h, w).fill(figure, magenta).fill(stray, off)
			want := make([]rect, len(colourQueries))
			want[1] = figure
			if tt.counted {
				want[1] = figure.union(stray)
			}
			logits, boxes := runDetector(t, model, []detectorScene{{img, want}})
			checkQueries(t, 0, logits, boxes, want, h, w)
		})
	}
}

func channel(t *testing.T, v uint8, d int) uint8 {
	t.Helper()
	x := int(v) + d
	if x < 0 || x > 255 {
		t.Fatalf("test colour channel %d%+d is outside 0-255", v, d)
	}
	return uint8(x)
}
