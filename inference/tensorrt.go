package inference

import (
	"fmt"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/anonymize-dev/anonymize/models"
)

// ProviderTensorRT is TensorRT's execution provider as ONNX Runtime spells it.
const ProviderTensorRT = "TensorrtExecutionProvider"

// TensorRT holds what the TensorRT provider needs for one model.
type TensorRT struct {
	// CacheDir keeps built engines and timing caches: building an engine
	// for DETR takes minutes, loading a cached one seconds. The cache is
	// keyed by model, shapes and GPU, so one folder serves them all.
	CacheDir string
	// Profile gives each input's smallest, usual and largest shape, so
	// TensorRT builds one engine for the whole range instead of one per
	// new shape, and plans its kernels for the usual one. It is given the
	// model's inputs as bound to its contract; nil leaves shapes to
	// TensorRT.
	Profile func(models.Binding) []ShapeRange
}

// ShapeRange is one input's range of shapes in a TensorRT profile.
type ShapeRange struct {
	Input         string
	Min, Opt, Max []int64
}

// trtOptions are the TensorRT provider's settings; profile is the shape
// ranges of the model's inputs (none: TensorRT's own).
func trtOptions(id int, cacheDir string, profile []ShapeRange) map[string]string {
	o := map[string]string{
		"device_id": fmt.Sprint(id),
		// Half precision roughly doubles the convolutions' speed; DETR's
		// attention may overflow in it, which the non-finite checks on
		// every output turn into an error rather than "nobody here".
		"trt_fp16_enable":         "1",
		"trt_engine_cache_enable": "1",
		"trt_timing_cache_enable": "1",
		"trt_engine_cache_path":   cacheDir,
		"trt_timing_cache_path":   cacheDir,
	}
	if len(profile) > 0 {
		shapes := func(pick func(ShapeRange) []int64) string {
			parts := make([]string, len(profile))
			for i, r := range profile {
				dims := make([]string, len(pick(r)))
				for j, d := range pick(r) {
					dims[j] = fmt.Sprint(d)
				}
				parts[i] = r.Input + ":" + strings.Join(dims, "x")
			}
			return strings.Join(parts, ",")
		}
		o["trt_profile_min_shapes"] = shapes(func(r ShapeRange) []int64 { return r.Min })
		o["trt_profile_opt_shapes"] = shapes(func(r ShapeRange) []int64 { return r.Opt })
		o["trt_profile_max_shapes"] = shapes(func(r ShapeRange) []int64 { return r.Max })
	}
	return o
}

func appendTensorRT(opts *ort.SessionOptions, id int, cacheDir string, profile []ShapeRange) error {
	trt, err := ort.NewTensorRTProviderOptions()
	if err != nil {
		return err
	}
	defer trt.Destroy()
	if err := trt.Update(trtOptions(id, cacheDir, profile)); err != nil {
		return err
	}
	return opts.AppendExecutionProviderTensorRT(trt)
}
