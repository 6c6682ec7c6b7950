package pipeline

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/atomicfile"
	"github.com/anonymize-dev/anonymize/internal/digest"
	"github.com/anonymize-dev/anonymize/models"
)

// Preprocess is where the detector's input is resized and normalised
// (--preprocess).
type Preprocess string

// Pre-processing modes.
const (
	PreprocessAuto  Preprocess = "auto"  // fused where the detector runs on a GPU, else cpu
	PreprocessCPU   Preprocess = "cpu"   // resized and normalised in Go (detect.Preparer)
	PreprocessFused Preprocess = "fused" // in the detector model, on its device (detect.Fuse)
)

// Set parses a --preprocess value, as a pflag.Value.
func (p *Preprocess) Set(s string) error {
	return setChoice(p, s, PreprocessAuto, PreprocessCPU, PreprocessFused)
}

func (p Preprocess) String() string { return string(p) }

// Type names the value in the flag's help.
func (*Preprocess) Type() string { return "where" }

// maxFrameSide is the longest frame side TensorRT's profile for a fused
// detector accepts.
const maxFrameSide = 3840

// openDetector opens the detector model at path, with its pre-processing
// fused in front when --preprocess asks for it or, under auto, when the
// device is a GPU. Fused on the CPU, the pre-processing costs about
// 0.2 s a 1080p frame on 2 cores, 34 times the Go path (it is written for
// a GPU), so auto keeps the plain model wherever the detector turns out
// to run on the CPU.
func (e *Engine) openDetector(path string) (*inference.Session, error) {
	mode := e.cfg.Preprocess
	if mode == PreprocessCPU || (mode == PreprocessAuto && e.Device.Kind == inference.DeviceCPU) {
		return e.open(models.RoleDetector, path, models.DETR)
	}
	// Hashed once: the plain and the fused model are both recorded under
	// the model's own sha256.
	sum, _, err := digest.FileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("%s model: %w", models.RoleDetector, err)
	}
	plain := func() (*inference.Session, error) {
		return e.openAs(ModelRef{Role: models.RoleDetector, Path: path, SHA256: sum}, path, models.DETR)
	}
	if mode == PreprocessAuto && e.Device.Kind == inference.DeviceAuto {
		// Whether there is a GPU shows when a model is opened: the plain
		// model first, since that is the one a CPU runs.
		s, err := plain()
		if err != nil || s.Provider == inference.ProviderCPU {
			return s, err
		}
		if err := e.unopen(s); err != nil {
			return nil, err
		}
	}
	fusedPath, err := e.fuseDetector(path, sum)
	if err != nil {
		if mode == PreprocessFused {
			return nil, fmt.Errorf("--preprocess fused: %w", err)
		}
		e.log.Warn("the detector's pre-processing could not be fused into it: it runs on the CPU", "reason", err)
		return plain()
	}
	s, err := e.openAs(ModelRef{Role: models.RoleDetector, Path: path, SHA256: sum, Fused: true}, fusedPath, models.DETRFused)
	if err != nil {
		return nil, err
	}
	if mode == PreprocessAuto && s.Provider == inference.ProviderCPU {
		if err := e.unopen(s); err != nil {
			return nil, err
		}
		e.log.Info("the detector runs on the CPU: its input is prepared there too (--preprocess cpu)")
		return plain()
	}
	return s, nil
}

// unopen closes s, the session opened last, and forgets its model.
func (e *Engine) unopen(s *inference.Session) error {
	e.Models = e.Models[:len(e.Models)-1]
	return s.Close()
}

// fuseDetector returns the path of the detector at path (of sha256 sum)
// with its pre-processing for --detect-size in front, made once and kept
// in the user cache folder under a name that says what it was made from.
func (e *Engine) fuseDetector(path, sum string) (string, error) {
	d := e.cfg.detectConfig(1)
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache folder to keep the fused model in: %w", err)
	}
	dir := filepath.Join(base, "anonymize", "fused")
	out := filepath.Join(dir, fmt.Sprintf("detr-%s-%dx%d-front%d.onnx", sum[:16], d.ShortSide, d.LongSide, detect.FrontVersion))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	mi, err := e.ORT.ReadModelInfo(path)
	if err != nil {
		return "", err
	}
	binding, err := models.DETR.Check(mi.Inputs, mi.Outputs)
	if err != nil {
		return "", fmt.Errorf("model %s does not fit: %w", path, err)
	}
	model, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	fused, err := detect.Fuse(model, detect.PixelMaskOf(binding), d)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(out, fused, 0o644); err != nil {
		return "", err
	}
	e.log.Info("fused the detector's pre-processing into it", "model", path, "fused", out)
	return out, nil
}
