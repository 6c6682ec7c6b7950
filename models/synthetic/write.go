package synthetic

import (
	"fmt"
	"os"
	"path/filepath"
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
	if err := writeFile(detectorPath, detector); err != nil {
		return "", "", err
	}
	if err := writeFile(posePath, poser); err != nil {
		return "", "", err
	}
	return detectorPath, posePath, nil
}

// writeFile replaces path through a temporary file and a rename, so an
// interrupted run never leaves a truncated model that would fail to load
// later with a far less obvious error.
func writeFile(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.part")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
