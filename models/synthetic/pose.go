package synthetic

import (
	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// The TransPose contract (checked against models.TransPose by the tests):
// a 256x192 crop in, 17 COCO keypoint heatmaps at a quarter of the size out.
const (
	poseInput     = "input"
	poseHeatmaps  = "heatmaps"
	poseHeight    = 256
	poseWidth     = 192
	poseStride    = 4
	poseKeypoints = 17

	// COCO keypoint channels the synthetic pose model fills.
	kptNose          = 0
	kptLeftShoulder  = 5
	kptRightShoulder = 6
)

// BlurKernel is the 3x3 binomial kernel (row-major, summing to 1) that
// smooths the synthetic heatmaps.
var BlurKernel = [9]float32{
	1.0 / 16, 2.0 / 16, 1.0 / 16,
	2.0 / 16, 4.0 / 16, 2.0 / 16,
	1.0 / 16, 2.0 / 16, 1.0 / 16,
}

// PoseModel returns the synthetic pose estimator: an ONNX model with
// TransPose's input and output in which heatmap channel 0 (nose) follows
// the NoseColour pixels of the input, channels 5 and 6 (left and right
// shoulder) LeftShoulderColour and RightShoulderColour, and all other
// channels are zero. The bytes are the same on every call.
//
// Heatmap cell (r, c) is the share of the colour in the 4x4 input window
// centred on input pixel (4c, 4r) (rows 4r-2..4r+1, columns 4c-2..4c+1),
// blurred by a 3x3 binomial kernel. Centring the windows reproduces the
// convention TransPose was trained with (a joint at input x peaks at cell
// round(x/4), decoded back as 4*cell), so the synthetic model, like the
// real one, has no systematic offset; the blur gives a mark a single
// rounded peak, as a trained heatmap has, instead of a plateau whose first
// cell argmax would pick. A mark covering a whole 3x3-cell neighbourhood
// still reads 1.
func PoseModel() ([]byte, error) { return poseModel(onnxgraph.Param("batch")) }

// PoseModelFixedBatch is PoseModel exported with its batch fixed at n, as
// some exporters leave it: for tests of how the program copes.
func PoseModelFixedBatch(n int) ([]byte, error) { return poseModel(onnxgraph.Fixed(int64(n))) }

func poseModel(batch onnxgraph.Dim) ([]byte, error) {
	g := onnxgraph.New("transpose_synthetic")
	b := builder{g}
	in := g.Input(poseInput, onnxgraph.Float32, batch, onnxgraph.Fixed(3), onnxgraph.Fixed(poseHeight), onnxgraph.Fixed(poseWidth))

	masks := b.colourMasks(in, []RGB{NoseColour, LeftShoulderColour, RightShoulderColour}) // [B,3,256,192]
	// Padding 2 before and 1 after shifts each window back by half a cell;
	// padded pixels are not counted (count_include_pad=0).
	half := int64(poseStride / 2)
	cells := b.Op("AveragePool", []string{masks},
		onnxgraph.Ints("kernel_shape", poseStride, poseStride),
		onnxgraph.Ints("strides", poseStride, poseStride),
		onnxgraph.Ints("pads", half, half, half-1, half-1)) // [B,3,64,48]

	// One 3x3 convolution both blurs and routes the three maps to their
	// COCO channels; the other channels get zero weights.
	route := make([]float32, poseKeypoints*3*9)
	for i, kpt := range []int{kptNose, kptLeftShoulder, kptRightShoulder} {
		copy(route[(kpt*3+i)*9:], BlurKernel[:])
	}
	weights := b.floats([]int64{poseKeypoints, 3, 3, 3}, route...)
	g.Node("Conv", []string{cells, weights}, []string{poseHeatmaps},
		onnxgraph.Ints("kernel_shape", 3, 3), onnxgraph.Ints("pads", 1, 1, 1, 1))

	g.Output(poseHeatmaps, onnxgraph.Float32, batch, onnxgraph.Fixed(poseKeypoints),
		onnxgraph.Fixed(poseHeight/poseStride), onnxgraph.Fixed(poseWidth/poseStride))
	g.Metadata(MetadataKey, "true")
	g.Metadata("description",
		"Synthetic stand-in for TransPose keypoints, not a trained network: the nose, left shoulder and "+
			"right shoulder heatmaps are the blurred share of nose (red), left shoulder (green) and right "+
			"shoulder (yellow) pixels around each cell; all other keypoint heatmaps are zero.")
	return g.Marshal(opset)
}
