package testmodels

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/anonymize-dev/anonymize/models/onnxgraph"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// Broken detectors: models with DETR's names that a wrong export, a wrong
// checkpoint or a numerical fault would give. Each must stop the program,
// never pass as frames without people.
const (
	// NaNLogits and InfLogits answer NaN / +Inf logits for any picture with
	// a bright pixel (the synthetic scene's noses), finite ones for a plain
	// grey picture: they pass the check at load and fail on a frame.
	NaNLogits = "nan-logits"
	InfLogits = "inf-logits"
	// NaNBoxes likewise spoils pred_boxes.
	NaNBoxes = "nan-boxes"
	// ReversedMask answers NaN whenever pixel_mask marks real pixels with
	// 1, as a DETR traced with the mask's polarity reversed does.
	ReversedMask = "reversed-pixel-mask"
	// FixedSize fixes pixel_values at 1x3x750x1333.
	FixedSize = "fixed-size"
	// Classes91 has a class head of 91, not 92: another label set.
	Classes91 = "91-classes"
	// ZeroQueries declares no queries at all.
	ZeroQueries = "zero-queries"
)

// BrokenPose kinds.
const (
	// NaNHeatmaps answers NaN heatmaps for crops with a bright pixel.
	NaNHeatmaps = "nan-heatmaps"
)

const (
	brokenQueries = 4
	cocoClasses   = 92
	opset         = 13
)

// WriteBroken writes the broken model kind into a test folder and returns
// its path.
func WriteBroken(t testing.TB, kind string) string {
	t.Helper()
	var data []byte
	var err error
	if kind == NaNHeatmaps {
		data, err = brokenPose()
	} else {
		data, err = brokenDetector(kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), kind+".onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// WritePoseFixedBatch writes the synthetic pose model with its batch fixed
// at n.
func WritePoseFixedBatch(t testing.TB, n int) string {
	t.Helper()
	data, err := synthetic.PoseModelFixedBatch(n)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("transpose_batch%d.onnx", n))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func brokenDetector(kind string) ([]byte, error) {
	g := onnxgraph.New("detr_" + kind)
	batch, h, w := onnxgraph.Param("batch"), onnxgraph.Param("height"), onnxgraph.Param("width")
	if kind == FixedSize {
		batch, h, w = onnxgraph.Fixed(1), onnxgraph.Fixed(750), onnxgraph.Fixed(1333)
	}
	pixels := g.Input("pixel_values", onnxgraph.Float32, batch, onnxgraph.Fixed(3), h, w)
	mask := g.Input("pixel_mask", onnxgraph.Int64, batch, h, w)
	classes := int64(cocoClasses)
	if kind == Classes91 {
		classes = 91
	}

	// Every query says "no object", unless spoiled below.
	noObject := make([]float32, classes)
	noObject[classes-1] = 10
	batchSize := g.Op("Gather", []string{g.Op("Shape", []string{pixels}), g.Const(onnxgraph.Vector(0))}, onnxgraph.Int("axis", 0))
	rows := func(row []float32) string {
		shape := g.Op("Concat", []string{batchSize, g.Const(onnxgraph.Vector(brokenQueries, int64(len(row))))}, onnxgraph.Int("axis", 0))
		return g.Op("Expand", []string{g.Const(onnxgraph.Float32s([]int64{1, 1, int64(len(row))}, row...)), shape})
	}
	logits, boxes := rows(noObject), rows([]float32{0.5, 0.5, 0.1, 0.1})

	switch kind {
	case NaNLogits:
		logits = g.Op("Add", []string{logits, whenBright(g, pixels, float32(math.NaN()))})
	case InfLogits:
		logits = g.Op("Add", []string{logits, whenBright(g, pixels, float32(math.Inf(1)))})
	case NaNBoxes:
		boxes = g.Op("Add", []string{boxes, whenBright(g, pixels, float32(math.NaN()))})
	case ReversedMask:
		// (1-m)/(1-m) is 0/0 wherever the mask says 1; the sum carries
		// the NaN into every logit, as masked-out attention does.
		m := g.Op("Cast", []string{mask}, onnxgraph.Int("to", int64(onnxgraph.Float32)))
		free := g.Op("Sub", []string{g.Const(onnxgraph.Float32s(nil, 1)), m})
		nan := g.Op("ReduceSum", []string{g.Op("Div", []string{free, free})}, onnxgraph.Int("keepdims", 0))
		logits = g.Op("Add", []string{logits, g.Op("Mul", []string{nan, g.Const(onnxgraph.Float32s(nil, 0))})})
	}
	g.Node("Identity", []string{logits}, []string{"logits"})
	g.Node("Identity", []string{boxes}, []string{"pred_boxes"})
	queries := onnxgraph.Fixed(brokenQueries)
	if kind == ZeroQueries {
		queries = onnxgraph.Fixed(0)
	}
	g.Output("logits", onnxgraph.Float32, batch, queries, onnxgraph.Fixed(classes))
	g.Output("pred_boxes", onnxgraph.Float32, batch, queries, onnxgraph.Fixed(4))
	return g.Marshal(opset)
}

func brokenPose() ([]byte, error) {
	g := onnxgraph.New("transpose_" + NaNHeatmaps)
	batch := onnxgraph.Param("batch")
	in := g.Input("input", onnxgraph.Float32, batch, onnxgraph.Fixed(3), onnxgraph.Fixed(256), onnxgraph.Fixed(192))
	shape := g.Op("Concat", []string{
		g.Op("Gather", []string{g.Op("Shape", []string{in}), g.Const(onnxgraph.Vector(0))}, onnxgraph.Int("axis", 0)),
		g.Const(onnxgraph.Vector(17, 64, 48)),
	}, onnxgraph.Int("axis", 0))
	zeros := g.Op("Expand", []string{g.Const(onnxgraph.Float32s([]int64{1, 1, 1, 1}, 0)), shape})
	g.Node("Add", []string{zeros, whenBright(g, in, float32(math.NaN()))}, []string{"heatmaps"})
	g.Output("heatmaps", onnxgraph.Float32, batch, onnxgraph.Fixed(17), onnxgraph.Fixed(64), onnxgraph.Fixed(48))
	return g.Marshal(opset)
}

// whenBright is a scalar that is bad where the input tensor holds a value
// above 1.5 (a channel above about 210 of 255, after ImageNet
// normalisation) and 0 elsewhere: plain grey pictures pass, the synthetic
// scene's bright noses do not.
func whenBright(g *onnxgraph.Graph, x string, bad float32) string {
	peak := g.Op("ReduceMax", []string{x}, onnxgraph.Int("keepdims", 0))
	bright := g.Op("Greater", []string{peak, g.Const(onnxgraph.Float32s(nil, 1.5))})
	return g.Op("Where", []string{bright, g.Const(onnxgraph.Float32s(nil, bad)), g.Const(onnxgraph.Float32s(nil, 0))})
}
