package synthetic_test

import (
	"math"
	"testing"

	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// poseColours maps the heatmap channels the synthetic pose model fills to
// the colour each one looks for.
var poseColours = map[int]synthetic.RGB{
	models.KptNose:          synthetic.NoseColour,
	models.KptLeftShoulder:  synthetic.LeftShoulderColour,
	models.KptRightShoulder: synthetic.RightShoulderColour,
}

// cell is a heatmap position (row, column).
type cell struct{ row, col int }

type poseMark struct {
	kpt int
	at  rect
	// peak is the heatmap cell the peak must be in: the one nearest the
	// mark's centre in the training convention (input x at cell x/4).
	peak cell
}

func TestPoseHeatmaps(t *testing.T) {
	model, err := synthetic.PoseModel()
	if err != nil {
		t.Fatal(err)
	}
	const h, w = models.PoseInputHeight, models.PoseInputWidth
	// Each image's marks, placed at known pixels. Cells are 4x4 pixels, so
	// pixel (x, y) falls in cell (y/4, x/4).
	batch := [][]poseMark{
		{
			// A 4x4 mark centred on input (61.5, 101.5): 4 x (15.4, 25.4).
			{models.KptNose, rect{x0: 60, y0: 100, x1: 64, y1: 104}, cell{25, 15}},
			// A 12x12 mark centred on input (28, 48) = 4 x (7, 12).
			{models.KptLeftShoulder, rect{x0: 22, y0: 42, x1: 34, y1: 54}, cell{12, 7}},
			// 9x4 pixels centred on input (155, 202.5): 4 x (38.75, 50.6).
			{models.KptRightShoulder, rect{x0: 151, y0: 201, x1: 160, y1: 205}, cell{51, 39}},
		},
		{
			// Marks in the last and first cells, and no right shoulder.
			{models.KptNose, rect{x0: w - 4, y0: h - 4, x1: w, y1: h}, cell{63, 47}},
			{models.KptLeftShoulder, rect{x0: 0, y0: 0, x1: 2, y1: 2}, cell{0, 0}},
		},
		nil, // nothing to find: every heatmap must be zero
	}
	imgs := make([]*image, len(batch))
	for i, marks := range batch {
		// A body-coloured figure under the marks must not leak into any
		// heatmap.
		imgs[i] = newImage(h, w).fill(rect{x0: 40, y0: 60, x1: 150, y1: 250}, synthetic.BodyColours[0])
		for _, m := range marks {
			imgs[i].fill(m.at, poseColours[m.kpt])
		}
	}

	inShape, in := pixelValues(t, imgs)
	shapes, data := runModel(t, model, []feed{newFeed(t, "input", inShape, in)}, "heatmaps")
	const hh, hw = models.PoseHeatmapHeight, models.PoseHeatmapWidth
	wantShape := []int64{int64(len(batch)), models.NumKeypoints, hh, hw}
	if len(shapes[0]) != 4 || [4]int64(shapes[0]) != [4]int64(wantShape) {
		t.Fatalf("heatmaps shape %v, want %v", shapes[0], wantShape)
	}
	heatmaps := data[0]

	for i, marks := range batch {
		for k := range models.NumKeypoints {
			hm := heatmaps[(i*models.NumKeypoints+k)*hh*hw:][:hh*hw]
			colour, filled := poseColours[k]
			want := make([]float64, hh*hw)
			if filled {
				want = coverage(imgs[i], colour)
			}
			for j, v := range hm {
				if math.Abs(float64(v)-want[j]) > 1e-6 {
					t.Errorf("image %d %s: cell (%d,%d) = %v, want %v",
						i, models.KeypointNames[k], j/hw, j%hw, v, want[j])
					break
				}
			}
		}
		for _, m := range marks {
			hm := heatmaps[(i*models.NumKeypoints+m.kpt)*hh*hw:][:hh*hw]
			best := 0
			for j := range hm {
				if hm[j] > hm[best] {
					best = j
				}
			}
			got := cell{best / hw, best % hw}
			if got != m.peak || hm[best] <= 0 {
				t.Errorf("image %d %s: peak %v at %v, want a peak at %v",
					i, models.KeypointNames[m.kpt], hm[best], got, m.peak)
			}
		}
	}
}

// coverage is the reference heatmap: for each cell, the share of pixels
// of colour c in its 4x4 window centred on input pixel (4*col, 4*row)
// (pixels outside the image not counted), then blurred by BlurKernel with
// zero padding.
func coverage(m *image, c synthetic.RGB) []float64 {
	const hh, hw = models.PoseHeatmapHeight, models.PoseHeatmapWidth
	share := make([]float64, hh*hw)
	for r := range hh {
		for col := range hw {
			n, hit := 0, 0
			for y := 4*r - 2; y <= 4*r+1; y++ {
				for x := 4*col - 2; x <= 4*col+1; x++ {
					if y < 0 || x < 0 || y >= m.h || x >= m.w {
						continue
					}
					n++
					if m.pix[y*m.w+x] == c {
						hit++
					}
				}
			}
			share[r*hw+col] = float64(hit) / float64(n)
		}
	}
	out := make([]float64, hh*hw)
	for r := range hh {
		for col := range hw {
			var v float64
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					rr, cc := r+dy, col+dx
					if rr < 0 || cc < 0 || rr >= hh || cc >= hw {
						continue
					}
					v += float64(synthetic.BlurKernel[(dy+1)*3+dx+1]) * share[rr*hw+cc]
				}
			}
			out[r*hw+col] = v
		}
	}
	return out
}
