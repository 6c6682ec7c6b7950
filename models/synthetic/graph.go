package synthetic

import (
	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// Operator set 13: ArgMax has select_last_index (since 12), which finds a
// run's last pixel, and ReduceMax/ReduceMin still take their axes as an
// attribute (an input from 18 on).
const opset = 13

// Both real networks take RGB scaled to [0,1] and normalised with the
// ImageNet statistics; the synthetic models see exactly the same tensors, so
// they compare pixels against colours normalised the same way.
var (
	imagenetMean = [3]float64{0.485, 0.456, 0.406}
	imagenetStd  = [3]float64{0.229, 0.224, 0.225}
)

// normalised is colour c as it appears in a model input tensor.
func normalised(c RGB) [3]float32 {
	v := [3]uint8{c.R, c.G, c.B}
	var out [3]float32
	for i := range v {
		out[i] = float32((float64(v[i])/255 - imagenetMean[i]) / imagenetStd[i])
	}
	return out
}

// tolerance is Tolerance per channel in normalised units. Half a level of
// slack is added so that a pixel exactly Tolerance away in 8-bit terms is
// inside whatever rounding the caller's float preprocessing did, and one
// level further is clearly outside.
func tolerance() [3]float32 {
	var out [3]float32
	for i := range out {
		out[i] = float32((Tolerance + 0.5) / 255 / imagenetStd[i])
	}
	return out
}

// builder adds small conveniences over onnxgraph.Graph so the model code
// reads as the computation it performs.
type builder struct{ *onnxgraph.Graph }

func (b builder) scalar(v float32) string { return b.Const(onnxgraph.Float32s(nil, v)) }

func (b builder) floats(dims []int64, v ...float32) string {
	return b.Const(onnxgraph.Float32s(dims, v...))
}

// ints is a 1-D int64 constant: axes, indices and shapes.
func (b builder) ints(v ...int64) string { return b.Const(onnxgraph.Vector(v...)) }

func (b builder) op(op string, inputs ...string) string { return b.Op(op, inputs) }

func (b builder) unsqueeze(x string, axes ...int64) string {
	return b.op("Unsqueeze", x, b.ints(axes...))
}

func (b builder) cast(x string, to onnxgraph.DataType) string {
	return b.Op("Cast", []string{x}, onnxgraph.Int("to", int64(to)))
}

// reduce applies a reduction such as ReduceMax over axes, dropping them.
func (b builder) reduce(op, x string, axes ...int64) string {
	return b.Op(op, []string{x}, onnxgraph.Ints("axes", axes...), onnxgraph.Int("keepdims", 0))
}

// colourMasks compares every pixel of an image batch [B,3,H,W] with each of
// colours and returns [B,K,H,W] (K = len(colours)): 1 where all three
// channels are within tolerance of colour k, else 0. Floats rather than
// booleans because every later step (pooling, max, products) wants numbers.
func (b builder) colourMasks(pixels string, colours []RGB) string {
	k := int64(len(colours))
	tol := tolerance()
	var match string
	// One channel at a time against all colours ([B,1,H,W] against
	// [1,K,1,1]), so the largest intermediate is [B,K,H,W], not three
	// times that: full-HD batches stay affordable.
	for c := range 3 {
		refs := make([]float32, k)
		for i, col := range colours {
			refs[i] = normalised(col)[c]
		}
		channel := b.Op("Gather", []string{pixels, b.ints(int64(c))}, onnxgraph.Int("axis", 1))
		diff := b.op("Abs", b.op("Sub", channel, b.floats([]int64{1, k, 1, 1}, refs...)))
		within := b.op("LessOrEqual", diff, b.scalar(tol[c]))
		if match == "" {
			match = within
		} else {
			match = b.op("And", match, within)
		}
	}
	return b.cast(match, onnxgraph.Float32)
}
