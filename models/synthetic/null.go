package synthetic

import (
	"fmt"

	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// File names WriteNullModels uses.
const (
	NullDetectorFile = "detr_null.onnx"
	NullPoseFile     = "transpose_null.onnx"
)

// NullMetadataKey marks the null models (besides MetadataKey, as they are
// synthetic too): a program should not call them demo models.
const NullMetadataKey = "anonymize.null"

// Fixed answers of the null models: NullPeople people side by side, each
// with its nose and shoulders where the pose decoder finds them.
const (
	NullPeople                        = 3
	nullNoseRow, nullNoseCol          = 12, 24
	nullShoulderRow                   = 24
	nullLeftCol, nullRightCol         = 32, 16
	nullPersonW, nullPersonH  float32 = 0.12, 0.6
)

// NullDetectorModel returns a DETR stand-in that costs next to nothing: it
// reads one pixel of each image (so that its outputs depend on the input
// and ONNX Runtime cannot fold the graph away) and answers NullPeople
// fixed person boxes. With it, a run measures the pipeline's own work
// (decoding, pre-processing, masking, encoding) rather than a network's.
func NullDetectorModel() ([]byte, error) {
	g, batch, pixels, pixelMask := detrGraph("detr_null", 0)
	b := builder{g}

	// zero is [B,1,1]: 0 times the first pixel and its mask bit.
	pixel := b.Op("Slice", []string{pixels, b.ints(0, 0, 0), b.ints(1, 1, 1), b.ints(1, 2, 3)}) // [B,1,1,1]
	bit := b.Op("Slice", []string{pixelMask, b.ints(0, 0), b.ints(1, 1), b.ints(1, 2)})         // [B,1,1]
	sum := b.op("Add", b.op("Reshape", pixel, b.ints(-1, 1, 1)), b.cast(bit, onnxgraph.Float32))
	zero := b.op("Mul", sum, b.scalar(0))

	logits := make([]float32, Queries*Classes)
	boxes := make([]float32, Queries*4)
	for q := range Queries {
		row := logits[q*Classes : (q+1)*Classes]
		box := boxes[q*4 : (q+1)*4]
		if q < NullPeople {
			row[personClass] = PersonLogit
			copy(box, []float32{(float32(q) + 0.5) / NullPeople, 0.5, nullPersonW, nullPersonH})
			continue
		}
		row[noObjectClass] = PersonLogit
		copy(box, emptyBox[:])
	}
	g.Node("Add", []string{zero, b.floats([]int64{1, Queries, Classes}, logits...)}, []string{detrLogits})
	g.Node("Add", []string{zero, b.floats([]int64{1, Queries, 4}, boxes...)}, []string{detrPredBoxes})
	detrOutputs(g, batch)
	g.Metadata(MetadataKey, "true")
	g.Metadata(NullMetadataKey, "true")
	g.Metadata("description", fmt.Sprintf("Synthetic null stand-in for DETR, for benchmarks: reads one pixel and always "+
		"answers the same %d people.", NullPeople))
	return g.Marshal(opset)
}

// NullPoseModel returns a TransPose stand-in that costs next to nothing:
// one pixel of each crop read, and the same heatmaps (a peak each for the
// nose and the shoulders) for every crop.
func NullPoseModel() ([]byte, error) {
	g := onnxgraph.New("transpose_null")
	b := builder{g}
	batch := onnxgraph.Param("batch")
	in := g.Input(poseInput, onnxgraph.Float32, batch, onnxgraph.Fixed(3), onnxgraph.Fixed(poseHeight), onnxgraph.Fixed(poseWidth))
	pixel := b.Op("Slice", []string{in, b.ints(0, 0, 0), b.ints(1, 1, 1), b.ints(1, 2, 3)}) // [B,1,1,1]
	zero := b.op("Mul", pixel, b.scalar(0))

	const h, w = poseHeight / poseStride, poseWidth / poseStride
	maps := make([]float32, poseKeypoints*h*w)
	for _, p := range []struct{ k, r, c int }{
		{kptNose, nullNoseRow, nullNoseCol},
		{kptLeftShoulder, nullShoulderRow, nullLeftCol},
		{kptRightShoulder, nullShoulderRow, nullRightCol},
	} {
		maps[(p.k*h+p.r)*w+p.c] = 1
	}
	g.Node("Add", []string{zero, b.floats([]int64{1, poseKeypoints, h, w}, maps...)}, []string{poseHeatmaps})
	g.Output(poseHeatmaps, onnxgraph.Float32, batch, onnxgraph.Fixed(poseKeypoints), onnxgraph.Fixed(h), onnxgraph.Fixed(w))
	g.Metadata(MetadataKey, "true")
	g.Metadata(NullMetadataKey, "true")
	g.Metadata("description", "Synthetic null stand-in for TransPose, for benchmarks: reads one pixel and always "+
		"answers the same nose and shoulders.")
	return g.Marshal(opset)
}

// WriteNullModels writes the null detector and pose models into dir,
// creating it if needed, and returns their paths.
func WriteNullModels(dir string) (detectorPath, posePath string, err error) {
	return writePair(dir, "null", NullDetectorFile, NullDetectorModel, NullPoseFile, NullPoseModel)
}
