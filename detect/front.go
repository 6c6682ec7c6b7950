package detect

import (
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// FrontFrames is the input of DETR with its pre-processing in front
// (Fuse): uint8 [N,H,W,3], decoded BGR frames as they are in memory.
const FrontFrames = models.DETRFrames

// FrontVersion numbers the front's graph: a fused model made by another
// version is made again.
const FrontVersion = 1

// frontOpset is the oldest operator set the front's operators all exist
// in with their current inputs (Range is the newest, from 11); a model
// importing an older one cannot take the front.
const frontOpset = 11

// Fuse returns a DETR model (a serialized ONNX model) with its
// pre-processing for cfg's sizes in front: it takes the decoded 8-bit BGR
// frames and computes pixel_values (and pixel_mask, when the model has
// it: see PixelMask) itself. Run on a GPU, a frame then crosses to it as 6 MB of bytes
// rather than 20 MB of floats and int64, and the CPU does none of the
// work.
func Fuse(model []byte, mask PixelMask, cfg Config) ([]byte, error) {
	return frontGraph(mask, cfg).Prepend(model, frontOpset)
}

// frontGraph is the pre-processing as a graph whose outputs are DETR's
// inputs: the size DetrImageProcessor resizes to, BGR to RGB, Pillow's
// bilinear resize (DetrImageProcessor's), and ImageNet normalisation. The
// resize is Pillow's filter itself, a triangle widened by the scale when
// shrinking, written as two matrix products (rows, then columns) whose
// weights the graph computes from the sizes: any frame size goes through
// one model, it matches Hugging Face's pre-processing more closely than
// OpenCV can (Pillow rounds to 8 bits between its two passes; the graph
// does not), and it is made of the operators every execution provider
// runs best. The products spend about 23 GFLOPs on a 1080p frame, most of
// them on zero weights: nothing for a GPU, too much for a CPU, where the
// Go path (Preparer) is the one to use.
func frontGraph(mask PixelMask, cfg Config) *onnxgraph.Graph {
	g := onnxgraph.New("anonymize_detr_preprocess").Scoped("anonymize_preprocess/")
	n, h, w := onnxgraph.Param("batch"), onnxgraph.Param("frame_height"), onnxgraph.Param("frame_width")
	frames := g.Input(FrontFrames, onnxgraph.Uint8, n, h, w, onnxgraph.Fixed(3))

	pick := func(v string, i ...int64) string {
		return g.Op("Gather", []string{v, g.Const(onnxgraph.Vector(i...))}, onnxgraph.Int("axis", 0))
	}
	shape := g.Op("Shape", []string{frames})
	frameH, frameW := pick(shape, 1), pick(shape, 2)
	outH, outW := resizeTarget(g, frameH, frameW, cfg)
	wx := pillowWeights(g, frameW, outW) // [out width, frame width]
	wy := pillowWeights(g, frameH, outH) // [out height, frame height]

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
	if mask.Present {
		// Every pixel is real: frames of one video need no padding. The
		// mask takes the batch from pixel_values, and each side from it too
		// unless the model fixes that side.
		shape := g.Op("Shape", []string{models.DETRPixelValues})
		side := func(fixed, axis int64, name string) (string, onnxgraph.Dim) {
			if fixed > 0 {
				return g.Const(onnxgraph.Vector(fixed)), onnxgraph.Fixed(fixed)
			}
			return pick(shape, axis), onnxgraph.Param(name)
		}
		mh, hDim := side(mask.Height, 2, "height")
		mw, wDim := side(mask.Width, 3, "width")
		dims := g.Op("Concat", []string{pick(shape, 0), mh, mw}, onnxgraph.Int("axis", 0))
		g.Node("ConstantOfShape", []string{dims},
			[]string{models.DETRPixelMask}, onnxgraph.TensorAttr("value", onnxgraph.Int64s([]int64{1}, 1)))
		g.Output(models.DETRPixelMask, onnxgraph.Int64, n, hDim, wDim)
	}
	return g
}

// resizeTarget adds to g ResizeTarget for frames of h x w (int64 [1]
// each) and returns the output height and width (int64 [1] each). It
// computes in float64 with the same operations in the same order as
// ResizeTarget (and DetrImageProcessor, in Python), so it gives the same
// sizes: in float32 the long side came out a pixel off for some frame
// sizes, where the exact answer is a whole number.
func resizeTarget(g *onnxgraph.Graph, h, w string, cfg Config) (outH, outW string) {
	double := func(v string) string { return g.Op("Cast", []string{v}, onnxgraph.Int("to", int64(onnxgraph.Float64))) }
	op := func(name string, in ...string) string { return g.Op(name, in) }
	where := func(cond, a, b string) string { return op("Where", cond, a, b) }
	hf, wf := double(h), double(w)
	// Whole numbers, exact in float32.
	short := double(g.Const(onnxgraph.Float32s(nil, float32(cfg.ShortSide))))
	long := double(g.Const(onnxgraph.Float32s(nil, float32(cfg.LongSide))))
	minSide, maxSide := op("Min", hf, wf), op("Max", hf, wf)
	// The short side becomes short, unless the long side would then pass
	// long: then the long side becomes long.
	capped := op("Greater", op("Mul", op("Div", maxSide, minSide), short), long)
	raw := op("Div", op("Mul", long, minSide), maxSide)
	size := where(capped, op("Round", raw), short)
	base := where(capped, raw, size)
	scaled := func(side string) string { return op("Floor", op("Div", op("Mul", base, side), minSide)) }
	wider := op("Less", wf, hf) // portrait
	oh, ow := where(wider, scaled(hf), size), where(wider, size, scaled(wf))
	// A frame whose short side is already the size keeps its size.
	keep := op("Or",
		op("And", op("Not", op("Greater", hf, wf)), op("Equal", hf, size)),
		op("And", op("Not", op("Greater", wf, hf)), op("Equal", wf, size)))
	toInt := func(v string) string { return g.Op("Cast", []string{v}, onnxgraph.Int("to", int64(onnxgraph.Int64))) }
	return toInt(where(keep, hf, oh)), toInt(where(keep, wf, ow))
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
