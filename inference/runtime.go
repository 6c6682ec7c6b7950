package inference

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/models"
)

// Provider names as ONNX Runtime spells them.
const (
	ProviderCPU  = "CPUExecutionProvider"
	ProviderCUDA = "CUDAExecutionProvider"
)

// Runtime is the loaded ONNX Runtime library. ONNX Runtime keeps one
// environment per process, so there is at most one Runtime.
type Runtime struct {
	Library string // the path or name it was loaded from
	Source  string // how it was found
	Version string
	log     *slog.Logger

	mu         sync.Mutex
	cudaFailed error // first CUDA failure under --device auto, reported once
	trtFailed  error // first TensorRT failure, reported once
}

var (
	loadMu  sync.Mutex
	loaded  *Runtime
	loadErr error
)

// Load finds and initialises ONNX Runtime. Later calls return the same
// Runtime (or the same error): the C library cannot be swapped in-process.
func Load(search LibrarySearch, log *slog.Logger) (*Runtime, error) {
	loadMu.Lock()
	defer loadMu.Unlock()
	if loaded != nil || loadErr != nil {
		return loaded, loadErr
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cands, err := search.Candidates()
	if err != nil {
		loadErr = fmt.Errorf("load ONNX Runtime: %w", err)
		return nil, loadErr
	}
	var errs []string
	for _, c := range cands {
		ort.SetSharedLibraryPath(c.Path)
		err := ort.InitializeEnvironment(ort.WithLogLevelError())
		if err == nil {
			loaded = &Runtime{Library: c.Path, Source: c.Source, Version: ort.GetVersion(), log: log}
			return loaded, nil
		}
		msg := err.Error()
		switch {
		case strings.Contains(msg, "Error setting ORT API base"):
			// The library loaded but does not serve the C API version the
			// Go binding was built for: an old ONNX Runtime.
			msg = fmt.Sprintf("%s is too old: ONNX Runtime 1.24 or newer is required", c.Path)
		case strings.Contains(msg, "Error loading ONNX shared library"):
			if c.System {
				continue // expected when it is not installed system-wide
			}
			// dlerror's text is lost when the goroutine changes threads
			// between the two cgo calls, so say what it usually means.
			why := strings.TrimSpace(msg[strings.LastIndex(msg, "\":")+2:])
			if why == "" {
				why = "the dynamic loader refused it (another architecture, or a library it needs is missing: check with ldd)"
			}
			msg = fmt.Sprintf("cannot load %s: %s", c.Path, why)
		}
		errs = append(errs, msg)
	}
	if len(errs) > 0 {
		loadErr = fmt.Errorf("load ONNX Runtime: %s; %s", strings.Join(errs, "; "), InstallHint)
	} else {
		loadErr = fmt.Errorf("%w (no --ort-lib or $%s given, none in lib/ next to the binary, none on the system library path); %s",
			ErrLibraryNotFound, LibraryEnv, InstallHint)
	}
	return nil, loadErr
}

// SessionOptions are the per-model knobs.
type SessionOptions struct {
	Role     string // "detector" or "pose", for messages
	Path     string
	Contract models.Contract
	Device   Device
	// TensorRT configures the TensorRT provider under --device tensorrt.
	TensorRT TensorRT
}

// Session is one opened model.
type Session struct {
	Role     string
	Path     string
	Provider string // the execution provider the session was opened with
	Binding  models.Binding
	Meta     map[string]string
	session  *ort.DynamicAdvancedSession
}

// InputNames returns the bound input names in contract order.
func (s *Session) InputNames() []string { return names(s.Binding.Inputs) }

// OutputNames returns the bound output names in contract order.
func (s *Session) OutputNames() []string { return names(s.Binding.Outputs) }

// Run runs the model; nil outputs are allocated by ONNX Runtime and must be
// destroyed by the caller.
func (s *Session) Run(inputs, outputs []ort.Value) error {
	if err := s.session.Run(inputs, outputs); err != nil {
		return fmt.Errorf("%s model %s: %w", s.Role, s.Path, err)
	}
	return nil
}

// Close releases the session.
func (s *Session) Close() error {
	if s == nil || s.session == nil {
		return nil
	}
	err := s.session.Destroy()
	s.session = nil
	return err
}

func names(infos []models.TensorInfo) []string {
	out := make([]string, len(infos))
	for i, t := range infos {
		out[i] = t.Name
	}
	return out
}

// ModelInfo is what a model file declares.
type ModelInfo struct {
	Inputs, Outputs []models.TensorInfo
	Meta            map[string]string
}

// Synthetic reports whether the file is one of our demo models.
func (m ModelInfo) Synthetic() bool { return m.Meta["anonymize.synthetic"] == "true" }

// ReadModelInfo reads a model's declared inputs, outputs and metadata
// without keeping a session open.
func (r *Runtime) ReadModelInfo(path string) (ModelInfo, error) {
	mi, err := readTensors(path)
	if err != nil {
		return mi, err
	}
	if md, err := ort.GetModelMetadata(path); err == nil {
		mi.Meta = metadataMap(md)
	}
	return mi, nil
}

// readTensors reads a model's declared inputs and outputs. ONNX Runtime
// loads the model into a throwaway session for it, so callers that open a
// session anyway read the metadata from that session instead.
func readTensors(path string) (ModelInfo, error) {
	mi := ModelInfo{Meta: map[string]string{}}
	st, err := os.Stat(path)
	if err != nil {
		return mi, fmt.Errorf("model %s: %w", path, err)
	}
	if st.IsDir() {
		return mi, fmt.Errorf("model %s is a folder, not an .onnx file", path)
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return mi, fmt.Errorf("model %s is not a valid ONNX file (%v): re-export or re-download it", path, firstLine(err))
	}
	mi.Inputs, mi.Outputs = convertInfos(ins), convertInfos(outs)
	return mi, nil
}

// metadataMap copies a model's custom metadata and releases md.
func metadataMap(md *ort.ModelMetadata) map[string]string {
	defer md.Destroy()
	meta := map[string]string{}
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return meta
	}
	for _, k := range keys {
		if v, ok, err := md.LookupCustomMetadataMap(k); err == nil && ok {
			meta[k] = v
		}
	}
	return meta
}

func convertInfos(in []ort.InputOutputInfo) []models.TensorInfo {
	out := make([]models.TensorInfo, len(in))
	for i, t := range in {
		out[i] = models.TensorInfo{Name: t.Name, DType: dtype(t), Dims: append([]int64(nil), t.Dimensions...)}
	}
	return out
}

func dtype(t ort.InputOutputInfo) models.DType {
	if t.OrtValueType != ort.ONNXTypeTensor {
		return models.DType(strings.ToLower(t.OrtValueType.String()))
	}
	switch t.DataType {
	case ort.TensorElementDataTypeFloat:
		return models.Float32
	case ort.TensorElementDataTypeInt64:
		return models.Int64
	}
	return models.DType(strings.TrimPrefix(strings.ToLower(t.DataType.String()), "onnx_tensor_element_data_type_"))
}

// OpenSession checks the model against its contract and opens it on the
// requested device. Under --device auto a CUDA failure falls back to the
// CPU with one warning per run; under --device cuda it is an error.
func (r *Runtime) OpenSession(o SessionOptions) (*Session, error) {
	mi, err := readTensors(o.Path)
	if err != nil {
		return nil, err
	}
	binding, err := o.Contract.Check(mi.Inputs, mi.Outputs)
	if err != nil {
		return nil, fmt.Errorf("model %s does not fit: %w", o.Path, err)
	}
	s := &Session{Role: o.Role, Path: o.Path, Binding: binding, Meta: map[string]string{}}

	if o.Device.Kind == DeviceTensorRT {
		var profile []ShapeRange
		if o.TensorRT.Profile != nil {
			profile = o.TensorRT.Profile(binding)
		}
		sess, err := r.open(o.Path, s, o.Device, o.TensorRT.CacheDir, profile)
		if err == nil {
			s.opened(sess, ProviderTensorRT)
			r.log.Info("model loaded", "model", o.Role, "provider", ProviderTensorRT, "device", o.Device.ID, "engine_cache", o.TensorRT.CacheDir)
			return s, nil
		}
		r.noteTRTFailure(err)
	}
	if o.Device.Kind != DeviceCPU {
		sess, err := r.open(o.Path, s, Device{Kind: DeviceCUDA, ID: o.Device.ID}, "", nil)
		if err == nil {
			s.opened(sess, ProviderCUDA)
			r.log.Info("model loaded", "model", o.Role, "provider", ProviderCUDA, "device", o.Device.ID)
			return s, nil
		}
		if o.Device.Kind == DeviceCUDA {
			return nil, fmt.Errorf("cannot run the %s on CUDA device %d: %v; "+
				"CUDA needs an NVIDIA driver, the CUDA and cuDNN libraries on the library path and "+
				"ONNX Runtime's libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so "+
				"(same version) beside libonnxruntime.so; or use --device cpu",
				o.Role, o.Device.ID, firstLine(err))
		}
		r.noteCUDAFailure(err)
	}
	sess, err := r.open(o.Path, s, Device{Kind: DeviceCPU}, "", nil)
	if err != nil {
		return nil, fmt.Errorf("open %s model %s: %v", o.Role, o.Path, firstLine(err))
	}
	s.opened(sess, ProviderCPU)
	r.log.Info("model loaded", "model", o.Role, "provider", ProviderCPU)
	return s, nil
}

// opened records the session and reads the model's metadata from it.
func (s *Session) opened(sess *ort.DynamicAdvancedSession, provider string) {
	s.session, s.Provider = sess, provider
	if md, err := sess.GetModelMetadata(); err == nil {
		s.Meta = metadataMap(md)
	}
}

func (r *Runtime) noteCUDAFailure(err error) {
	r.warnOnce(&r.cudaFailed, err, "CUDA unavailable, running on the CPU")
}

func (r *Runtime) noteTRTFailure(err error) {
	r.warnOnce(&r.trtFailed, err, "TensorRT unavailable, trying CUDA alone")
}

// warnOnce records the first failure of a provider in *first and warns
// about it; later ones (the next model, the next video) are quiet.
func (r *Runtime) warnOnce(first *error, err error, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if *first != nil {
		return
	}
	*first = err
	r.log.Warn(msg, "reason", firstLine(err))
}

// open opens a session on dev: the CPU, CUDA, or TensorRT with CUDA behind
// it for the operators TensorRT does not take.
func (r *Runtime) open(path string, s *Session, dev Device, trtCache string, profile []ShapeRange) (*ort.DynamicAdvancedSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	// ONNX Runtime's worker threads spin between operators by default,
	// burning cores that decoding and x264 need; in a pipeline they should
	// sleep.
	if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return nil, err
	}
	if dev.Kind == DeviceTensorRT {
		if err := appendTensorRT(opts, dev.ID, trtCache, profile); err != nil {
			return nil, err
		}
	}
	if dev.Kind != DeviceCPU {
		if err := appendCUDA(opts, dev.ID); err != nil {
			return nil, err
		}
	}
	return ort.NewDynamicAdvancedSession(path, s.InputNames(), s.OutputNames(), opts)
}

// cudaOptions are the CUDA provider's settings, each chosen rather than
// left to a default that may change between ONNX Runtime releases.
func cudaOptions(id int) map[string]string {
	return map[string]string{
		"device_id": fmt.Sprint(id),
		// The fastest convolution algorithms, found by timing them all
		// once per input shape. Shapes are few: a video's frames share
		// one detector input size, and pose batches are padded to powers
		// of two (pose.Config.PadBatches). HEURISTIC would skip the
		// search but can pick algorithms several times slower.
		"cudnn_conv_algo_search": "EXHAUSTIVE",
		// Copies on the compute stream: ONNX Runtime warns that separate
		// streams can race for some models, and the inputs here are
		// needed by the very next kernel anyway.
		"do_copy_in_default_stream": "1",
		// Grow the memory arena by what is asked, not to the next power
		// of two: DETR's activations at 1333x750 would otherwise reserve
		// up to twice their size, and batch jobs share a GPU.
		"arena_extend_strategy": "kSameAsRequested",
	}
}

func appendCUDA(opts *ort.SessionOptions, id int) error {
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cuda.Destroy()
	if err := cuda.Update(cudaOptions(id)); err != nil {
		return err
	}
	return opts.AppendExecutionProviderCUDA(cuda)
}

// ProbeProvider reports whether an execution provider can open a model,
// using a one-node model built in memory, for `anonymize doctor`.
func (r *Runtime) ProbeProvider(dev Device, model []byte) error {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer opts.Destroy()
	if dev.Kind == DeviceTensorRT {
		// Engines of the probe model are not worth keeping.
		dir, err := os.MkdirTemp("", "anonymize-trt-probe-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := appendTensorRT(opts, dev.ID, dir, nil); err != nil {
			return errors.New(firstLine(err))
		}
	}
	if dev.Kind != DeviceCPU {
		if err := appendCUDA(opts, dev.ID); err != nil {
			return errors.New(firstLine(err))
		}
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, nil, nil, opts)
	if err != nil {
		return errors.New(firstLine(err))
	}
	return sess.Destroy()
}

// firstLine shortens an ONNX Runtime error to what a user can act on:
// its first line, without the source location and status-code preamble
// ("/onnxruntime_src/...cc:1957 ... [ONNXRuntimeError] : 1 : FAIL : ").
func firstLine(err error) string {
	msg := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, "[ONNXRuntimeError]"); i >= 0 {
		rest := msg[i:]
		// Skip "[ONNXRuntimeError] : <code> : <NAME> : ".
		for n := 0; n < 3; n++ {
			j := strings.Index(rest, " : ")
			if j < 0 {
				break
			}
			rest = rest[j+3:]
		}
		prefix := strings.TrimSpace(msg[:i])
		if k := strings.LastIndex(prefix, ": "); k >= 0 && !strings.HasPrefix(prefix, "/") {
			// Keep a wrapper's own words ("Error creating C session: ").
			return strings.TrimSpace(prefix[:k+1] + " " + rest)
		}
		return strings.TrimSpace(rest)
	}
	return msg
}

// CheckFinite fails when data, the output tensor name of a model, holds a
// value that is not a finite number. The pipeline never reads NaN or
// infinity as "nothing found": the error stops the run.
func CheckFinite(name string, data []float32) error {
	for i, v := range data {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			what := "NaN"
			if math.IsInf(f, 0) {
				what = "an infinite value"
			}
			return fmt.Errorf("returned %s in %s (value %d of %d): the model is broken or was exported wrongly, "+
				"and its answer cannot be taken to mean that nobody is there", what, name, i, len(data))
		}
	}
	return nil
}

// OutputError is an error about what a model returned, naming the model.
type OutputError struct {
	Role, Path string
	Err        error
}

func (e *OutputError) Error() string { return fmt.Sprintf("%s model %s: %v", e.Role, e.Path, e.Err) }
func (e *OutputError) Unwrap() error { return e.Err }

// OutputErr wraps err, about what s returned, as an OutputError.
func (s *Session) OutputErr(err error) error {
	if err == nil {
		return nil
	}
	return &OutputError{Role: s.Role, Path: s.Path, Err: err}
}

// SelfTestError explains a model's failure on the plain picture it is
// tried on when it is loaded; hint, if any, says what usually causes it.
func SelfTestError(err error, hint string) error {
	var oe *OutputError
	if !errors.As(err, &oe) {
		return fmt.Errorf("fails its check on a plain grey picture: %w", err)
	}
	msg := fmt.Sprintf("%s model %s fails its check on a plain grey picture: %v", oe.Role, oe.Path, oe.Err)
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return errors.New(msg)
}
