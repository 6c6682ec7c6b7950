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

// PoseModel returns the synthetic pose estimator: an ONNX model with
// TransPose's input and output in which heatmap channel 0 (nose) is the
// fraction of NoseColour pixels in each 4x4 cell of the input, channels 5 and
// 6 (left and right shoulder) the same for LeftShoulderColour and
// RightShoulderColour, and all other channels are zero. The bytes are the
// same on every call.
//
// The heatmaps are not blurred: a cell fully covered by the colour reads 1,
// like the peak of a trained heatmap, where a blur would lower the peak of
// small marks and make any confidence threshold harder to reason about.
func PoseModel() ([]byte, error) {
	g := onnxgraph.New("transpose_synthetic")
	b := builder{g}
	batch := onnxgraph.Param("batch")
	in := g.Input(poseInput, onnxgraph.Float32, batch, onnxgraph.Fixed(3), onnxgraph.Fixed(poseHeight), onnxgraph.Fixed(poseWidth))

	masks := b.colourMasks(in, []RGB{NoseColour, LeftShoulderColour, RightShoulderColour}) // [B,3,256,192]
	cells := b.Op("AveragePool", []string{masks},
		onnxgraph.Ints("kernel_shape", poseStride, poseStride),
		onnxgraph.Ints("strides", poseStride, poseStride)) // [B,3,64,48]

	// A 1x1 convolution routes the three maps to their COCO channels; its
	// weights are 0/1, so values pass through exactly and the rest stay 0.
	route := make([]float32, poseKeypoints*3)
	for i, kpt := range []int{kptNose, kptLeftShoulder, kptRightShoulder} {
		route[kpt*3+i] = 1
	}
	weights := b.floats([]int64{poseKeypoints, 3, 1, 1}, route...)
	g.Node("Conv", []string{cells, weights}, []string{poseHeatmaps}, onnxgraph.Ints("kernel_shape", 1, 1))

	g.Output(poseHeatmaps, onnxgraph.Float32, batch, onnxgraph.Fixed(poseKeypoints),
		onnxgraph.Fixed(poseHeight/poseStride), onnxgraph.Fixed(poseWidth/poseStride))
	g.Metadata(MetadataKey, "true")
	g.Metadata("description",
		"Synthetic stand-in for TransPose keypoints, not a trained network: the nose, left shoulder and "+
			"right shoulder heatmaps are the share of nose (red), left shoulder (green) and right shoulder "+
			"(yellow) pixels in each 4x4 cell; all other keypoint heatmaps are zero.")
	return g.Marshal(opset)
}
