package detect

import (
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// The inputs of DETR with its pre-processing in front (Fuse).
const (
	FrontFrames = "frames"    // uint8 [N,H,W,3]: decoded BGR frames, as they are in memory
	FrontSize   = "resize_to" // int64 [2]: the model's input height and width (ResizeTarget)
)

// frontOpset is the oldest operator set the front's operators all exist
// in with their current inputs (Range is the newest, from 11); a model
// importing an older one cannot take the front.
const frontOpset = 11

// Fuse returns a DETR model (a serialized ONNX model) with its
// pre-processing in front: it takes the decoded 8-bit BGR frames and the
// size to resize them to, and computes pixel_values (and pixel_mask, when
// the model has it) itself. Run on a GPU, a frame then crosses to it as
// 6 MB of bytes rather than 20 MB of floats and int64, and the CPU does
// none of the work.
func Fuse(model []byte, hasMask bool) ([]byte, error) {
	return frontGraph(hasMask).Prepend(model, frontOpset)
}

// frontGraph is the pre-processing as a graph whose outputs are DETR's
// inputs: BGR to RGB, Pillow's bilinear resize (DetrImageProcessor's), and
// ImageNet normalisation. The resize is Pillow's filter itself, a triangle
// widened by the scale when shrinking, written as two matrix products
// (rows, then columns) whose weights the graph computes from the sizes:
// it needs no per-size constants, matches Hugging Face's pre-processing
// more closely than OpenCV can (Pillow rounds to 8 bits between its two
// passes; the graph does not), and is made of the operators every
// execution provider runs best. The products spend about 23 GFLOPs on a
// 1080p frame, most of them on zero weights: nothing for a GPU, too much
// for a CPU, where the Go path (Preparer) is the one to use.
func frontGraph(hasMask bool) *onnxgraph.Graph {
	g := onnxgraph.New("anonymize_detr_preprocess").Scoped("anonymize_preprocess/")
	n, h, w := onnxgraph.Param("batch"), onnxgraph.Param("frame_height"), onnxgraph.Param("frame_width")
	frames := g.Input(FrontFrames, onnxgraph.Uint8, n, h, w, onnxgraph.Fixed(3))
	size := g.Input(FrontSize, onnxgraph.Int64, onnxgraph.Fixed(2))

	pick := func(v string, i ...int64) string {
		return g.Op("Gather", []string{v, g.Const(onnxgraph.Vector(i...))}, onnxgraph.Int("axis", 0))
	}
	shape := g.Op("Shape", []string{frames})
	wx := pillowWeights(g, pick(shape, 2), pick(size, 1)) // [out width, frame width]
	wy := pillowWeights(g, pick(shape, 1), pick(size, 0)) // [out height, frame height]

	x := g.Op("Cast", []string{frames}, onnxgraph.Int("to", int64(onnxgraph.Float32)))
	x = g.Op("Transpose", []string{x}, onnxgraph.Ints("perm", 0, 3, 1, 2))
	x = g.Op("Gather", []string{x, g.Const(onnxgraph.Vector(2, 1, 0))}, onnxgraph.Int("axis", 1)) // BGR to RGB
	x = g.Op("MatMul", []string{x, g.Op("Transpose", []string{wx}, onnxgraph.Ints("perm", 1, 0))})
	x = g.Op("MatMul", []string{wy, x})
	// (v/255 - mean)/std, as one subtraction and one product.
	var mean, scale [3]float32
	for c := range 3 {
		mean[c] = 255 * inference.ImageNetMean[c]
		scale[c] = 1 / (255 * inference.ImageNetStd[c])
	}
	x = g.Op("Sub", []string{x, g.Const(onnxgraph.Float32s([]int64{1, 3, 1, 1}, mean[:]...))})
	g.Node("Mul", []string{x, g.Const(onnxgraph.Float32s([]int64{1, 3, 1, 1}, scale[:]...))}, []string{models.DETRPixelValues})
	g.Output(models.DETRPixelValues, onnxgraph.Float32, n, onnxgraph.Fixed(3), onnxgraph.Param("height"), onnxgraph.Param("width"))
	if hasMask {
		// Every pixel is real: frames of one video need no padding.
		g.Node("ConstantOfShape", []string{pick(g.Op("Shape", []string{models.DETRPixelValues}), 0, 2, 3)},
			[]string{models.DETRPixelMask}, onnxgraph.TensorAttr("value", onnxgraph.Int64s([]int64{1}, 1)))
		g.Output(models.DETRPixelMask, onnxgraph.Int64, n, onnxgraph.Param("height"), onnxgraph.Param("width"))
	}
	return g
}

// pillowWeights adds to g the [out, in] matrix of Pillow's bilinear
// resampling from in to out pixels (both int64 [1]): output pixel x
// weighs input pixel i by the triangle max(0, 1 - |i + 0.5 - c| / f),
// where c = (x + 0.5) in/out is x's centre in input pixels and f =
// max(in/out, 1) widens the triangle when shrinking, normalised over the
// pixels of each row (fewer at the edges), as Pillow's precompute_coeffs.
func pillowWeights(g *onnxgraph.Graph, in, out string) string {
	scalar := func(v string) string { return g.Op("Reshape", []string{v, g.Const(onnxgraph.Int64s([]int64{0}))}) }
	float := func(v string) string { return g.Op("Cast", []string{v}, onnxgraph.Int("to", int64(onnxgraph.Float32))) }
	zero, one := g.Const(onnxgraph.Int64s(nil, 0)), g.Const(onnxgraph.Int64s(nil, 1))
	half, onef := g.Const(onnxgraph.Float32s(nil, 0.5)), g.Const(onnxgraph.Float32s(nil, 1))
	// Pixel centres: i + 0.5 for the input, (x + 0.5) in/out for the output.
	inPos := g.Op("Add", []string{float(g.Op("Range", []string{zero, scalar(in), one})), half})
	ratio := g.Op("Div", []string{float(in), float(out)})
	outPos := g.Op("Mul", []string{g.Op("Add", []string{float(g.Op("Range", []string{zero, scalar(out), one})), half}), ratio})
	outPos = g.Op("Reshape", []string{outPos, g.Const(onnxgraph.Vector(-1, 1))})
	support := g.Op("Max", []string{ratio, onef})
	d := g.Op("Div", []string{g.Op("Sub", []string{inPos, outPos}), support})
	weights := g.Op("Relu", []string{g.Op("Sub", []string{onef, g.Op("Abs", []string{d})})})
	// Row sums as a product with a column of ones: ReduceSum changed its
	// form between operator sets, MatMul did not.
	ones := g.Op("Expand", []string{onef, g.Op("Concat", []string{in, g.Const(onnxgraph.Vector(1))}, onnxgraph.Int("axis", 0))})
	return g.Op("Div", []string{weights, g.Op("MatMul", []string{weights, ones})})
}
