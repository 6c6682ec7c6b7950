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
	kpt    int
	at     rect
	peak   cell    // heatmap cell the peak must be in
	height float64 // peak value: the share of the cell the mark covers
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
			// A mark filling one cell exactly.
			{models.KptNose, rect{x0: 60, y0: 100, x1: 64, y1: 104}, cell{25, 15}, 1},
			// 3x3 pixels over columns 22-24: six in cell column 5, three in 6.
			{models.KptLeftShoulder, rect{x0: 22, y0: 41, x1: 25, y1: 44}, cell{10, 5}, 6.0 / 16},
			// 5x2 pixels over columns 150-154: four in column 37, six in 38.
			{models.KptRightShoulder, rect{x0: 150, y0: 201, x1: 155, y1: 203}, cell{50, 38}, 6.0 / 16},
		},
		{
			// Marks in the last and first cells, and no right shoulder.
			{models.KptNose, rect{x0: w - 4, y0: h - 4, x1: w, y1: h}, cell{63, 47}, 1},
			{models.KptLeftShoulder, rect{x0: 0, y0: 0, x1: 2, y1: 2}, cell{0, 0}, 4.0 / 16},
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
			if got != m.peak || math.Abs(float64(hm[best])-m.height) > 1e-6 {
				t.Errorf("image %d %s: peak %v at %v, want %v at %v",
					i, models.KeypointNames[m.kpt], hm[best], got, m.height, m.peak)
			}
		}
	}
}

// coverage is the reference heatmap: the share of each 4x4 cell's pixels
// that are exactly colour c.
func coverage(m *image, c synthetic.RGB) []float64 {
	const hw = models.PoseHeatmapWidth
	out := make([]float64, models.PoseHeatmapHeight*hw)
	for y := range m.h {
		for x := range m.w {
			if m.pix[y*m.w+x] == c {
				out[(y/4)*hw+x/4] += 1.0 / 16
			}
		}
	}
	return out
}
