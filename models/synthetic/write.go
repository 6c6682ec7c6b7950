package synthetic

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
)

// File names WriteModels uses.
const (
	DetectorFile = "detr_synthetic.onnx"
	PoseFile     = "transpose_synthetic.onnx"
)

// WriteModels writes the synthetic detector and pose models into dir,
// creating it if needed, and returns their paths.
func WriteModels(dir string) (detectorPath, posePath string, err error) {
	return writePair(dir, "synthetic", DetectorFile, DetectorModel, PoseFile, PoseModel)
}

// writePair builds a detector and a pose model and writes them into dir
// under the given file names.
func writePair(dir, kind, detFile string, det func() ([]byte, error), poseFile string, pose func() ([]byte, error)) (detectorPath, posePath string, err error) {
	detector, err := det()
	if err != nil {
		return "", "", fmt.Errorf("build %s detector: %w", kind, err)
	}
	poser, err := pose()
	if err != nil {
		return "", "", fmt.Errorf("build %s pose model: %w", kind, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("create model folder: %w", err)
	}
	detectorPath = filepath.Join(dir, detFile)
	posePath = filepath.Join(dir, poseFile)
	if err := atomicfile.WriteFile(detectorPath, detector, 0o644); err != nil {
		return "", "", err
	}
	if err := atomicfile.WriteFile(posePath, poser, 0o644); err != nil {
		return "", "", err
	}
	return detectorPath, posePath, nil
}
