// Package diagnose checks everything a run depends on (OpenCV, ONNX Runtime
// and its execution providers, CUDA, NVML, ffmpeg, the model files) and
// reports it, for `anonymize doctor`.
package diagnose
