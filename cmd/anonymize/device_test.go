package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTensorRTFallsBack: --device tensorrt with a CPU-only ONNX Runtime
// (the tests' library has no provider libraries) falls back to CUDA, then
// to the CPU, with one warning each, and still writes the video; the engine
// cache folder is made for TensorRT.
func TestTensorRTFallsBack(t *testing.T) {
	detector, pose, clip, _ := e2eFixtures(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "trt")
	out := filepath.Join(dir, "out.mp4")
	args := append([]string{"video", "--device", "tensorrt", "--trt-cache", cache, "--frames", "5", "--audit", "off"},
		modelFlags(detector, pose)...)
	r := run(t, nil, append(args, clip, out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"warning: TensorRT unavailable, trying CUDA alone", "warning: CUDA unavailable, running on the CPU"} {
		if n := strings.Count(r.stderr, want); n != 1 {
			t.Errorf("%q %d times, want once:\n%s", want, n, r.stderr)
		}
	}
	if !strings.Contains(lastLine(r.stderr), "on CPUExecutionProvider") {
		t.Errorf("summary: %s", lastLine(r.stderr))
	}
	if st, err := os.Stat(cache); err != nil || !st.IsDir() {
		t.Errorf("engine cache folder: %v", err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("no output: %v", err)
	}
}
