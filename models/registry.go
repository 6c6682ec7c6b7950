package models

import (
	"fmt"
	"slices"
	"strings"
)

// Role is the job a model does in the pipeline. The program needs exactly
// one model per role.
type Role string

const (
	RoleDetector Role = "detector"
	RolePose     Role = "pose"
)

// Model is one entry of the registry: a network the program knows how to
// run, the file name it looks for in the model folder and how a user gets
// that file.
type Model struct {
	Name        string   // what `anonymize models pull NAME` takes
	Role        Role     // which slot of the pipeline it fills
	File        string   // file name inside the model folder
	Description string   // one line, for `models list`
	Upstream    string   // where the weights come from
	Export      string   // export script, relative to the repository root
	Flag        string   // the run flag that points at a file directly
	Contract    Contract // tensors the exported file must declare
	// Hub is the model's public ONNX file, which `models pull` fetches when
	// no models server is configured; nil when none is published.
	Hub *HubFile
	// VariantOf names the model this one can replace (a smaller or faster
	// export of the same network), run with Flag; empty for the models the
	// program looks for by default.
	VariantOf string
}

// Registry lists the known models, detector first. The export scripts in
// models/export/registry.py repeat the names and files; a test keeps the
// two in step.
var Registry = []Model{
	{
		Name:        "detr-resnet-50",
		Role:        RoleDetector,
		File:        "detr-resnet-50.onnx",
		Description: "person detector: DETR with a ResNet-50 backbone, trained on COCO 2017",
		Upstream:    "Hugging Face facebook/detr-resnet-50",
		Export:      "models/export/export_detr.py",
		Flag:        "--detector-model",
		Contract:    DETR,
		Hub:         &HubFile{Repo: xenovaDETR, Path: "onnx/model.onnx", Revision: xenovaDETRRevision, License: "Apache-2.0"},
	},
	{
		Name:        "transpose-h-a4",
		Role:        RolePose,
		File:        "transpose-h-a4-256x192.onnx",
		Description: "pose estimator: TransPose-H-A4, 256x192 input, 17 COCO keypoints",
		Upstream:    "yangsenius/TransPose at commit 5ba5bf3ae01d, weights of its Hub release tp_h_48_256x192_enc4_d96_h192_mh1.pth",
		Export:      "models/export/export_transpose.py",
		Flag:        "--pose-model",
		Contract:    TransPose,
	},
}

// The transformers.js export of facebook/detr-resnet-50: the same network
// and weights as Hugging Face's, with DETR's contract (its pixel_mask is
// declared 64x64, which the detector honours).
const xenovaDETR = "Xenova/detr-resnet-50"

// xenovaDETRRevision is the commit of xenovaDETR that pulls fetch. It is
// empty because no machine this version was built on could reach the Hub
// to read one; until it is filled in, each model folder pins, at its first
// pull, the commit main then points at (HubFile.Revision). Fill it in with
// the commit shown in the repository's history, and the sha256s in
// models/README.md.
const xenovaDETRRevision = ""

// Variants are other exports of a registry model that fit its contract:
// pulled by name, run with the model's flag. The fp16 export of
// xenovaDETR (onnx/model_fp16.onnx) is not one: its pixel_values and
// outputs are float16, which the detector does not feed or read.
var Variants = []Model{
	{
		Name:        "detr-resnet-50-int8",
		Role:        RoleDetector,
		File:        "detr-resnet-50-int8.onnx",
		Description: "person detector: detr-resnet-50 with 8-bit weights (dynamic quantisation), a quarter of the size; check its recall on your footage with `anonymize audit` before relying on it",
		Upstream:    "Hugging Face " + xenovaDETR + " onnx/model_quantized.onnx",
		Flag:        "--detector-model",
		Contract:    DETR,
		Hub:         &HubFile{Repo: xenovaDETR, Path: "onnx/model_quantized.onnx", Revision: xenovaDETRRevision, License: "Apache-2.0"},
		VariantOf:   "detr-resnet-50",
	},
}

// HowToObtain says, in one line, the ways to get the model's file.
func (m Model) HowToObtain() string {
	var ways []string
	if m.Hub != nil {
		ways = append(ways, fmt.Sprintf("run `anonymize models pull %s` (from the Hugging Face Hub, %s)", m.Name, m.Hub.Repo))
	} else {
		ways = append(ways, fmt.Sprintf("run `anonymize models pull %s` with a models server (see models/README.md)", m.Name))
	}
	if m.Export != "" {
		ways = append(ways, fmt.Sprintf("export it from %s with %s", m.Upstream, m.Export))
	}
	return strings.Join(ways, ", or ")
}

// Lookup finds a registry model or variant by name.
func Lookup(name string) (Model, error) {
	for _, m := range slices.Concat(Registry, Variants) {
		if m.Name == name {
			return m, nil
		}
	}
	return Model{}, fmt.Errorf("unknown model %q: known models are %s", name, strings.Join(Names(), ", "))
}

// ForRole returns the registry model that fills role.
func ForRole(role Role) (Model, error) {
	for _, m := range Registry {
		if m.Role == role {
			return m, nil
		}
	}
	return Model{}, fmt.Errorf("no model for role %q", role)
}

// Names lists the registry's model names in registry order, then the
// variants'.
func Names() []string {
	var names []string
	for _, m := range slices.Concat(Registry, Variants) {
		names = append(names, m.Name)
	}
	return names
}
