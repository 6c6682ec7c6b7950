package models

import (
	"fmt"
	"slices"
	"strings"
)

// Dynamic marks a dimension the contract does not fix (a batch, or an image
// side that follows the input).
const Dynamic int64 = -1

// DType is an ONNX tensor element type, spelled as ONNX Runtime prints it.
type DType string

const (
	Float32 DType = "float32"
	Int64   DType = "int64"
	Uint8   DType = "uint8"
)

// TensorSpec is one input or output of a contract.
type TensorSpec struct {
	Name string
	// AnyName accepts whatever name the model gives the tensor; used for
	// single-input models whose exporters name things freely.
	AnyName  bool
	DType    DType
	Dims     []int64 // Dynamic where the contract accepts any size
	Optional bool    // inputs only: used when the model declares it
	// Free lists the dimensions the program sets itself at run time (the
	// sides of an image resized per video): a model that fixes them at
	// export cannot be fed.
	Free []int
}

func (s TensorSpec) String() string {
	name := s.Name
	if s.AnyName {
		name = "<any name>"
	}
	return fmt.Sprintf("%s %s%s", name, s.DType, dimsString(s.Dims))
}

// TensorInfo is what a model file declares for one of its tensors.
type TensorInfo struct {
	Name  string
	DType DType
	Dims  []int64 // negative where the model leaves the size symbolic
}

func (t TensorInfo) String() string {
	return fmt.Sprintf("%s %s%s", t.Name, t.DType, dimsString(t.Dims))
}

func dimsString(dims []int64) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		if d < 0 {
			parts[i] = "?"
		} else {
			parts[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Contract is the tensor interface a model must declare to be usable.
type Contract struct {
	Model   string // human name, for messages
	Inputs  []TensorSpec
	Outputs []TensorSpec
}

// Binding is the outcome of matching a model against its contract: the
// tensor names to feed and fetch, in contract order, and the declared
// infos the caller may need (e.g. fixed sizes).
type Binding struct {
	Inputs  []TensorInfo // only the inputs the model declares (optional ones may be absent)
	Outputs []TensorInfo
}

// Input returns the bound input that matches spec name, if any.
func (b Binding) Input(name string) (TensorInfo, bool) {
	for _, t := range b.Inputs {
		if t.Name == name {
			return t, true
		}
	}
	return TensorInfo{}, false
}

// Check matches what a model file declares against the contract. The error
// names the model, what was expected and what was found, so a user holding a
// wrongly exported file knows what to fix.
func (c Contract) Check(inputs, outputs []TensorInfo) (Binding, error) {
	var b Binding
	in, err := match(c.Inputs, inputs, true)
	if err != nil {
		return b, fmt.Errorf("%s: inputs do not match: %w (expected %s, found %s)",
			c.Model, err, specList(c.Inputs), infoList(inputs))
	}
	out, err := match(c.Outputs, outputs, false)
	if err != nil {
		return b, fmt.Errorf("%s: outputs do not match: %w (expected %s, found %s)",
			c.Model, err, specList(c.Outputs), infoList(outputs))
	}
	b.Inputs, b.Outputs = in, out
	return b, nil
}

func match(specs []TensorSpec, found []TensorInfo, inputs bool) ([]TensorInfo, error) {
	used := make([]bool, len(found))
	var bound []TensorInfo
	for _, s := range specs {
		idx := -1
		for i, f := range found {
			if used[i] {
				continue
			}
			if s.AnyName || f.Name == s.Name {
				idx = i
				break
			}
		}
		if idx < 0 {
			if s.Optional {
				continue
			}
			return nil, fmt.Errorf("no tensor %q", s.Name)
		}
		f := found[idx]
		used[idx] = true
		if f.DType != s.DType {
			return nil, fmt.Errorf("%q has type %s, want %s", f.Name, f.DType, s.DType)
		}
		if len(f.Dims) != len(s.Dims) {
			return nil, fmt.Errorf("%q has %d dimensions %s, want %d %s",
				f.Name, len(f.Dims), dimsString(f.Dims), len(s.Dims), dimsString(s.Dims))
		}
		for i, want := range s.Dims {
			got := f.Dims[i]
			switch {
			case got == 0:
				// A size of zero (DETR with no queries) would make every
				// frame look empty.
				return nil, fmt.Errorf("%q dimension %d is 0", f.Name, i)
			case want != Dynamic && got >= 0 && got != want:
				return nil, fmt.Errorf("%q dimension %d is %d, want %d", f.Name, i, got, want)
			case got > 0 && slices.Contains(s.Free, i):
				return nil, fmt.Errorf("%q fixes dimension %d at %d, which anonymize sets for each video; export the model with that axis dynamic",
					f.Name, i, got)
			}
		}
		bound = append(bound, f)
	}
	// An input the contract does not know would have to be fed with something
	// we cannot invent; extra outputs are harmless and simply not fetched.
	if inputs {
		for i, f := range found {
			if !used[i] {
				return nil, fmt.Errorf("unexpected input %q", f.Name)
			}
		}
	}
	return bound, nil
}

func specList(specs []TensorSpec) string {
	parts := make([]string, len(specs))
	for i, s := range specs {
		parts[i] = s.String()
		if s.Optional {
			parts[i] += " (optional)"
		}
	}
	return strings.Join(parts, ", ")
}

func infoList(infos []TensorInfo) string {
	if len(infos) == 0 {
		return "none"
	}
	parts := make([]string, len(infos))
	for i, t := range infos {
		parts[i] = t.String()
	}
	return strings.Join(parts, ", ")
}

// COCO keypoint order used by TransPose (and every COCO-trained pose model).
const (
	KptNose = iota
	KptLeftEye
	KptRightEye
	KptLeftEar
	KptRightEar
	KptLeftShoulder
	KptRightShoulder
	KptLeftElbow
	KptRightElbow
	KptLeftWrist
	KptRightWrist
	KptLeftHip
	KptRightHip
	KptLeftKnee
	KptRightKnee
	KptLeftAnkle
	KptRightAnkle
	NumKeypoints
)

// KeypointNames are the COCO names, in model channel order.
var KeypointNames = [NumKeypoints]string{
	"nose", "left_eye", "right_eye", "left_ear", "right_ear",
	"left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
	"left_wrist", "right_wrist", "left_hip", "right_hip",
	"left_knee", "right_knee", "left_ankle", "right_ankle",
}

// COCOPersonClass is the index of "person" in DETR's COCO label space
// (facebook/detr-resnet-50 uses the original 91-id COCO numbering, 0 = N/A).
const COCOPersonClass = 1

// COCOClasses is the width of DETR's class head for that label space: the
// 91 COCO ids and "no object". A head of another width has another label
// set, whose class 1 need not be person.
const COCOClasses = 92

// DETR input and output names, as HF's exporter writes them.
const (
	DETRPixelValues = "pixel_values"
	DETRPixelMask   = "pixel_mask"
	DETRLogits      = "logits"
	DETRPredBoxes   = "pred_boxes"
	// DETRFrames is the input of a DETR with its pre-processing fused in
	// front (detect.Fuse): decoded 8-bit BGR frames.
	DETRFrames = "frames"
)

// DETR is the contract of facebook/detr-resnet-50 exported to ONNX: dynamic
// batch and image size, Q queries, C+1 classes (the last is "no object").
// The image sides must stay free: each video is resized to keep its
// aspect ratio. pixel_mask's sides may be fixed: Hugging Face's exporter
// declares it 64x64, and DETR scales it to its feature map anyway (see
// detect.PixelMask). Package detect checks the rest against its settings
// (the batch, the class count).
var DETR = Contract{
	Model: "person detector (DETR)",
	Inputs: []TensorSpec{
		{Name: DETRPixelValues, DType: Float32, Dims: []int64{Dynamic, 3, Dynamic, Dynamic}, Free: []int{2, 3}},
		{Name: DETRPixelMask, DType: Int64, Dims: []int64{Dynamic, Dynamic, Dynamic}, Optional: true},
	},
	Outputs: []TensorSpec{
		{Name: DETRLogits, DType: Float32, Dims: []int64{Dynamic, Dynamic, Dynamic}},
		{Name: DETRPredBoxes, DType: Float32, Dims: []int64{Dynamic, Dynamic, 4}},
	},
}

// DETRFused is the contract of a DETR model with its pre-processing fused
// in front (detect.Fuse): frames of any size in, DETR's outputs out.
var DETRFused = Contract{
	Model:   "person detector (DETR, pre-processing fused in)",
	Inputs:  []TensorSpec{{Name: DETRFrames, DType: Uint8, Dims: []int64{Dynamic, Dynamic, Dynamic, 3}, Free: []int{1, 2}}},
	Outputs: DETR.Outputs,
}

// Pose input size of TransPose tph_a4_256x192 and the 4x smaller heatmaps.
const (
	PoseInputHeight   = 256
	PoseInputWidth    = 192
	PoseHeatmapHeight = 64
	PoseHeatmapWidth  = 48
)

// TransPose is the contract of TransPose-H-A4 (256x192) exported to ONNX.
// Exporters name its single input and output freely, so only types and
// shapes are checked.
var TransPose = Contract{
	Model: "pose estimator (TransPose)",
	Inputs: []TensorSpec{
		{Name: "input", AnyName: true, DType: Float32, Dims: []int64{Dynamic, 3, PoseInputHeight, PoseInputWidth}},
	},
	Outputs: []TensorSpec{
		{Name: "heatmaps", AnyName: true, DType: Float32, Dims: []int64{Dynamic, NumKeypoints, PoseHeatmapHeight, PoseHeatmapWidth}},
	},
}
