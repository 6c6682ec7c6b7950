package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/anonymize-dev/anonymize/audit"
	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/digest"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
	"github.com/anonymize-dev/anonymize/pose"
	"github.com/anonymize-dev/anonymize/video"
)

// Env is what the engine needs besides its Config: where the runtime and
// the models are, resolved by the command layer from its flags, the
// environment variables and the working folder (no library reads the
// process's environment).
type Env struct {
	Log     *slog.Logger
	Library inference.LibrarySearch // where ONNX Runtime is loaded from
	Models  models.Folder           // the model folder
	// AuditModel is the audit's face detector file; "" looks for it in
	// the model folder.
	AuditModel string
	// GPUMemory, when set, samples the GPU memory this process uses (see
	// StageConfig.GPUMemory).
	GPUMemory func() (bytes int64, ok bool)
}

// ModelRef describes one loaded model, for summaries and audit reports.
type ModelRef struct {
	Role      models.Role
	Path      string
	SHA256    string
	Provider  string
	Synthetic bool
	// Null marks a synthetic model that answers the same whatever the
	// picture (synthetic.NullDetectorModel): for benchmarks only.
	Null bool
	// Fused marks a detector run with its pre-processing fused in front
	// (--preprocess); Path and SHA256 are still the model's own.
	Fused bool
}

// Engine holds what is loaded once per run and reused for every frame and
// every video: the ONNX Runtime sessions and the model wrappers.
type Engine struct {
	cfg      Config
	env      Env
	log      *slog.Logger
	ORT      *inference.Runtime // the loaded ONNX Runtime
	Device   inference.Device
	Models   []ModelRef
	detSess  *inference.Session
	poseSess *inference.Session
	// detBatch is the frames per detector run (--batch, resolved).
	detBatch int
	// poseFixedBatch is the batch the pose model fixes, 0 when free.
	poseFixedBatch int
	// auditSess is the leak audit's face detector; nil when --audit off.
	auditSess *inference.Session
	// codec is the video encoder --encoder resolved to on this machine.
	codec video.Codec
}

// ResolveModels returns the detector and pose model paths the config
// selects, or an error telling the user how to get them.
func ResolveModels(cfg Config, env Env) (detector, poser string, err error) {
	if detector, err = models.DetectorPath(cfg.DetectorModel, env.Models.Dir, env.Models.Source); err != nil {
		return "", "", err
	}
	if poser, err = models.PosePath(cfg.PoseModel, env.Models.Dir, env.Models.Source); err != nil {
		return "", "", err
	}
	return detector, poser, nil
}

// NewEngine loads ONNX Runtime and both models.
func NewEngine(cfg Config, env Env) (_ *Engine, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dev := cfg.Device
	detPath, posePath, err := ResolveModels(cfg, env)
	if err != nil {
		return nil, err
	}
	// Before the models, which take seconds to load.
	codec, err := resolveEncoder(cfg, log)
	if err != nil {
		return nil, err
	}
	rt, err := inference.Load(env.Library, log)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, env: env, log: log, ORT: rt, Device: dev, codec: codec}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.detSess, err = e.openDetector(detPath); err != nil {
		return nil, err
	}
	e.detBatch = cfg.detectBatch(e.detSess.Provider)
	if e.poseSess, err = e.open(models.RolePose, posePath, models.TransPose); err != nil {
		return nil, err
	}
	if err := e.checkModels(); err != nil {
		return nil, err
	}
	if cfg.Audit != AuditOff {
		path, err := audit.FindModel(env.AuditModel, env.Models.Dir, env.Models.Source)
		if err != nil {
			return nil, fmt.Errorf("--audit %s: %w (or pass --audit off)", cfg.Audit, err)
		}
		if e.auditSess, err = e.ORT.OpenSession(inference.SessionOptions{Role: "face detector", Path: path, Contract: audit.BlazeFace, Device: dev}); err != nil {
			return nil, err
		}
	}
	for _, m := range e.Models {
		if m.Null {
			log.Info("null model, for benchmarks: it answers the same people whatever the picture", "model", m.Path)
			continue
		}
		if m.Synthetic {
			log.Warn("demo model: it only understands the synthetic test scene and will not find real people; "+
				"see models/README.md for the real models", "model", m.Path)
		}
	}
	return e, nil
}

// resolveEncoder decides the video encoder once per run: auto becomes H.264
// on NVENC where a test encode works and libx264 elsewhere (H100 and H200
// have no NVENC); an NVENC asked for by name must work, or the run stops
// before any video rather than at its first frame.
func resolveEncoder(cfg Config, log *slog.Logger) (video.Codec, error) {
	codec := cfg.Encoder
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return video.CodecX264, nil // the encoder falls back to OpenCV, and says so
	}
	ctx := context.Background()
	if codec == video.CodecH264NVENC || codec == video.CodecHEVCNVENC {
		if err := video.ProbeCodec(ctx, ffmpeg, codec); err != nil {
			return "", fmt.Errorf("--encoder %s: this machine's ffmpeg cannot encode with it (%v): use --encoder libx264, or auto", codec, err)
		}
		return codec, nil
	}
	codec, why := video.ResolveCodec(ctx, ffmpeg, codec)
	if why != nil {
		log.Debug("NVENC is not usable here: encoding with libx264", "reason", why)
	}
	return codec, nil
}

// checkModels refuses models that would fail or, worse, quietly find
// nobody: settings they cannot serve, and outputs that are not numbers on
// a plain picture. Both run once, at load.
func (e *Engine) checkModels() error {
	if err := detect.CheckModel(e.detSess.Binding, e.detectConfig()); err != nil {
		return fmt.Errorf("%s model %s: %w", e.detSess.Role, e.detSess.Path, err)
	}
	if b := pose.FixedBatch(e.poseSess.Binding); b > 0 {
		e.poseFixedBatch = b
		if b < e.cfg.PoseBatch {
			e.log.Warn(fmt.Sprintf("the pose model was exported with a fixed batch of %d: crops go through it %d at a time instead of --pose-batch %d "+
				"(export it with a dynamic batch to choose)", b, b, e.cfg.PoseBatch), "model", e.poseSess.Path)
		}
	}
	ctx := context.Background()
	if err := detect.SelfTest(ctx, e.detSess, e.detectConfig()); err != nil {
		return err
	}
	return pose.SelfTest(ctx, e.poseSess, e.poseConfig())
}

// detectConfig is the detector's configuration for the loaded model.
func (e *Engine) detectConfig() detect.Config { return e.cfg.detectConfig(e.detBatch) }

// DetectBatch is how many frames go through the detector in one run.
func (e *Engine) DetectBatch() int { return e.detBatch }

// Preprocess says where the detector's input is prepared: PreprocessFused
// (in the model, on its device) or PreprocessCPU.
func (e *Engine) Preprocess() Preprocess {
	for _, m := range e.Models {
		if m.Role == models.RoleDetector && m.Fused {
			return PreprocessFused
		}
	}
	return PreprocessCPU
}

// poseConfig is the pose estimator's configuration for the loaded model.
func (e *Engine) poseConfig() pose.Config {
	c := e.cfg.poseConfig()
	c.FixedBatch = e.poseFixedBatch
	c.PadBatches = e.poseSess.Provider != inference.ProviderCPU
	return c
}

func (e *Engine) open(role models.Role, path string, contract models.Contract) (*inference.Session, error) {
	sum, _, err := digest.FileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("%s model: %w", role, err)
	}
	return e.openAs(ModelRef{Role: role, Path: path, SHA256: sum}, path, contract)
}

// openAs opens the model file at path, derived from the model ref
// describes (or that model itself), and records ref as loaded.
func (e *Engine) openAs(ref ModelRef, path string, contract models.Contract) (*inference.Session, error) {
	role := ref.Role
	opts := inference.SessionOptions{Role: string(role), Path: path, Contract: contract, Device: e.Device}
	if e.Device.Kind == inference.DeviceTensorRT {
		dir, err := e.trtCache()
		if err != nil {
			return nil, err
		}
		opts.TensorRT = inference.TensorRT{CacheDir: dir, Profile: e.trtProfile(role)}
	}
	s, err := e.ORT.OpenSession(opts)
	if err != nil {
		return nil, err
	}
	ref.Provider = s.Provider
	ref.Synthetic = s.Meta[synthetic.MetadataKey] == "true"
	ref.Null = s.Meta[synthetic.NullMetadataKey] == "true"
	e.Models = append(e.Models, ref)
	return s, nil
}

// trtCache is the TensorRT engine cache folder, created if needed.
func (e *Engine) trtCache() (string, error) {
	dir := e.cfg.TRTCache
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("--device tensorrt: no user cache folder for TensorRT's engines (%v): pass --trt-cache", err)
		}
		dir = filepath.Join(base, "anonymize", "tensorrt")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("--trt-cache: %w", err)
	}
	return dir, nil
}

// trtProfile gives TensorRT the range of input shapes each model sees, so
// it builds one engine for all of them. DETR gets --batch frames at a time
// (a last, partial batch is padded), resized so its short side is
// --detect-size and its long side at most 1333/800 of that, in either
// orientation; TransPose gets 1 to --pose-batch crops (padded to powers of
// two).
func (e *Engine) trtProfile(role models.Role) func(models.Binding) []inference.ShapeRange {
	// Asked for before the session exists: the batch a GPU gets.
	d := e.cfg.detectConfig(e.cfg.detectBatch(inference.ProviderTensorRT))
	n := int64(d.Batch)
	return func(b models.Binding) []inference.ShapeRange {
		var out []inference.ShapeRange
		for _, in := range b.Inputs {
			switch {
			case role == models.RoleDetector && in.Name == models.DETRPixelValues:
				out = append(out, inference.ShapeRange{Input: in.Name,
					Min: []int64{n, 3, 32, 32}, Opt: []int64{n, 3, int64(d.ShortSide), int64(d.LongSide)},
					Max: []int64{n, 3, int64(d.LongSide), int64(d.LongSide)}})
			case role == models.RoleDetector && in.Name == models.DETRFrames:
				// Frames as decoded, up to 4K in either orientation.
				out = append(out, inference.ShapeRange{Input: in.Name,
					Min: []int64{n, 32, 32, 3}, Opt: []int64{n, 1080, 1920, 3}, Max: []int64{n, maxFrameSide, maxFrameSide, 3}})
			case role == models.RoleDetector && in.Name == models.DETRPixelMask:
				out = append(out, inference.ShapeRange{Input: in.Name,
					Min: []int64{n, 32, 32}, Opt: []int64{n, int64(d.ShortSide), int64(d.LongSide)},
					Max: []int64{n, int64(d.LongSide), int64(d.LongSide)}})
			case role == models.RolePose:
				lo, opt, hi := int64(1), min(int64(e.cfg.PoseBatch), 8), int64(e.cfg.PoseBatch)
				if len(in.Dims) > 0 && in.Dims[0] > 0 {
					lo, opt, hi = in.Dims[0], in.Dims[0], in.Dims[0] // exported with a fixed batch
				}
				out = append(out, inference.ShapeRange{Input: in.Name,
					Min: []int64{lo, 3, models.PoseInputHeight, models.PoseInputWidth},
					Opt: []int64{opt, 3, models.PoseInputHeight, models.PoseInputWidth},
					Max: []int64{hi, 3, models.PoseInputHeight, models.PoseInputWidth}})
			}
		}
		return out
	}
}

// Codec is the video encoder the run writes with (--encoder, resolved).
func (e *Engine) Codec() video.Codec { return e.codec }

// Providers summarises where the models run, e.g. "CUDAExecutionProvider"
// or "detector CUDAExecutionProvider, pose CPUExecutionProvider".
func (e *Engine) Providers() string {
	if len(e.Models) == 2 && e.Models[0].Provider == e.Models[1].Provider {
		return e.Models[0].Provider
	}
	s := ""
	for i, m := range e.Models {
		if i > 0 {
			s += ", "
		}
		s += string(m.Role) + " " + m.Provider
	}
	return s
}

// UsesGPU reports whether a model runs on the GPU (CUDA or TensorRT).
func (e *Engine) UsesGPU() bool {
	for _, m := range e.Models {
		if m.Provider != inference.ProviderCPU {
			return true
		}
	}
	return false
}

// Placement says what the engine runs on (device, execution providers)
// and with which models, for reports and settings hashes. (Not to be
// confused with inference.Runtime, the loaded ONNX Runtime library.)
type Placement struct {
	Device    string
	Providers string
	Models    []ModelRef
}

// Placement says what the engine runs on.
func (e *Engine) Placement() Placement {
	return Placement{Device: e.Device.String(), Providers: e.Providers(), Models: e.Models}
}

// RunConfig describes what a run ran on, for an experiment tracker's
// config: the device, each model's file, sha256 and execution provider.
func (e *Engine) RunConfig() map[string]any {
	cfg := map[string]any{
		"device.resolved":     e.Device.String(),
		"execution_provider":  e.Providers(),
		"onnxruntime":         e.ORT.Version,
		"detector.batch":      e.detBatch,
		"detector.preprocess": e.Preprocess(),
	}
	for _, m := range e.Models {
		prefix := "model." + string(m.Role) + "."
		cfg[prefix+"path"] = m.Path
		cfg[prefix+"sha256"] = m.SHA256
		cfg[prefix+"provider"] = m.Provider
		cfg[prefix+"synthetic"] = m.Synthetic
	}
	return cfg
}

// Close releases the sessions.
func (e *Engine) Close() error {
	return errors.Join(e.detSess.Close(), e.poseSess.Close(), e.auditSess.Close())
}
