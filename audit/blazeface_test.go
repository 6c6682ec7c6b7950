package audit

import (
	"image"
	"math"
	"testing"

	"github.com/anonymize-dev/anonymize/geom"
)

func TestAnchors(t *testing.T) {
	if len(anchors) != layer1+layer2 {
		t.Fatalf("%d anchors, want %d", len(anchors), layer1+layer2)
	}
	// The first layer: 16 cells a row, two anchors a cell, row by row.
	for _, tt := range []struct {
		i    int
		x, y float32
	}{
		{0, 0.5 / 16, 0.5 / 16},
		{1, 0.5 / 16, 0.5 / 16},
		{2, 1.5 / 16, 0.5 / 16},
		{33, 0.5 / 16, 1.5 / 16},
		{layer1 - 1, 15.5 / 16, 15.5 / 16},
		// The second: 8 cells a row, six a cell.
		{layer1, 0.5 / 8, 0.5 / 8},
		{layer1 + 5, 0.5 / 8, 0.5 / 8},
		{layer1 + 6, 1.5 / 8, 0.5 / 8},
		{layer1 + 48, 0.5 / 8, 1.5 / 8},
		{layer1 + layer2 - 1, 7.5 / 8, 7.5 / 8},
	} {
		if a := anchors[tt.i]; a.x != tt.x || a.y != tt.y {
			t.Errorf("anchor %d at (%v, %v), want (%v, %v)", tt.i, a.x, a.y, tt.x, tt.y)
		}
	}
}

func TestDecode(t *testing.T) {
	scores := make([]float32, len(anchors))
	boxes := make([]float32, len(anchors)*valuesPerAnchor)
	for i := range scores {
		scores[i] = -10 // sigmoid 4.5e-5: nothing
	}
	// Anchor 35 (cell 1,1 of the first layer, second anchor: centre
	// 1.5/16*256 = 24): offset (+4, -2), size 20x30, logit 2 (0.8808).
	scores[35] = 2
	copy(boxes[35*valuesPerAnchor:], []float32{4, -2, 20, 30})
	// The last anchor (centre 7.5/8*256 = 240), logit 1000: clipped to
	// 100 before the sigmoid, so exactly 1.
	scores[len(anchors)-1] = 1000
	copy(boxes[(len(anchors)-1)*valuesPerAnchor:], []float32{0, 0, 16, 16})

	faces := decode(scores, boxes, 0.5)
	want := []Face{
		{Box: geom.Box{X1: 28 - 10, Y1: 22 - 15, X2: 28 + 10, Y2: 22 + 15}, Score: float32(1 / (1 + math.Exp(-2)))},
		{Box: geom.Box{X1: 232, Y1: 232, X2: 248, Y2: 248}, Score: 1},
	}
	if len(faces) != len(want) {
		t.Fatalf("decode = %+v, want %+v", faces, want)
	}
	for i := range want {
		if faces[i].Box != want[i].Box || math.Abs(float64(faces[i].Score-want[i].Score)) > 1e-6 {
			t.Errorf("face %d = %+v, want %+v", i, faces[i], want[i])
		}
	}
	if got := decode(scores, boxes, 0.9); len(got) != 1 {
		t.Errorf("at 0.9: %d faces, want only the certain one", len(got))
	}
}

func TestWeightedNMS(t *testing.T) {
	faces := []Face{
		{Box: geom.Box{X1: 0, Y1: 0, X2: 10, Y2: 10}, Score: 0.6},
		{Box: geom.Box{X1: 2, Y1: 0, X2: 12, Y2: 10}, Score: 0.9}, // IoU 8/12 with the first
		{Box: geom.Box{X1: 50, Y1: 50, X2: 60, Y2: 60}, Score: 0.7},
	}
	got := weightedNMS(faces, 0.3)
	if len(got) != 2 {
		t.Fatalf("weightedNMS = %+v, want two faces", got)
	}
	// The pair becomes one face: the best score, the boxes averaged with
	// the scores as weights, x from (0*0.6 + 2*0.9)/1.5 = 1.2.
	merged := got[0]
	if merged.Score != 0.9 || math.Abs(float64(merged.Box.X1-1.2)) > 1e-5 || math.Abs(float64(merged.Box.X2-11.2)) > 1e-5 {
		t.Errorf("merged face %+v, want score 0.9 and x from 1.2 to 11.2", merged)
	}
	if got[1] != faces[2] {
		t.Errorf("separate face %+v, want %+v untouched", got[1], faces[2])
	}
}

func TestWindows(t *testing.T) {
	// The whole 1920x1080 frame, as a square around it, then tiles of 540
	// (7 across, 3 down) spaced by at most 270 and ending at the edges.
	w := Windows(1920, 1080, 1)
	if w[0] != image.Rect(0, -420, 1920, 1500) {
		t.Errorf("whole-frame window %v", w[0])
	}
	tiles := w[1:]
	if len(tiles) != 7*3 {
		t.Fatalf("%d tiles, want 21", len(tiles))
	}
	for _, r := range tiles {
		if r.Dx() != 540 || r.Dy() != 540 || !r.In(image.Rect(0, 0, 1920, 1080)) {
			t.Errorf("tile %v", r)
		}
	}
	if last := tiles[len(tiles)-1]; last.Max != image.Pt(1920, 1080) {
		t.Errorf("last tile %v does not reach the corner", last)
	}
	if n := len(Windows(1920, 1080, 2)); n != 1+21+14*7 {
		t.Errorf("two levels: %d windows, want %d", n, 1+21+14*7)
	}
	// Tiles stop where they would be finer than a quarter of the input.
	if n := len(Windows(200, 120, 3)); n != 1 {
		t.Errorf("a 200x120 frame has %d windows, want the whole frame only", n)
	}
}
