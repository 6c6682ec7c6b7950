package models

import (
	"fmt"
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

// HowToObtain says, in one line, the ways to get the model's file.
func (m Model) HowToObtain() string {
	return fmt.Sprintf("run `anonymize models pull %s` (needs a models server, see models/README.md), "+
		"or export it from %s with %s", m.Name, m.Upstream, m.Export)
}

// Lookup finds a registry model by name.
func Lookup(name string) (Model, error) {
	for _, m := range Registry {
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

// Names lists the registry's model names in registry order.
func Names() []string {
	names := make([]string, len(Registry))
	for i, m := range Registry {
		names[i] = m.Name
	}
	return names
}
