package inference

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

func TestParseDevice(t *testing.T) {
	tests := []struct {
		in      string
		want    Device
		wantErr string
	}{
		{"", Device{Kind: DeviceAuto}, ""},
		{"auto", Device{Kind: DeviceAuto}, ""},
		{"CPU", Device{Kind: DeviceCPU}, ""},
		{"cuda", Device{Kind: DeviceCUDA}, ""},
		{"cuda:3", Device{Kind: DeviceCUDA, ID: 3}, ""},
		{"cuda:x", Device{}, "must be a number"},
		{"cuda:-1", Device{}, "must be a number"},
		{"tensorrt", Device{Kind: DeviceTensorRT}, ""},
		{"TRT", Device{Kind: DeviceTensorRT}, ""},
		{"tensorrt:2", Device{Kind: DeviceTensorRT, ID: 2}, ""},
		{"tensorrt:", Device{}, "as in tensorrt:0"},
		{"tpu", Device{}, "use auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N"},
	}
	for _, tt := range tests {
		got, err := ParseDevice(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDevice(%q) error = %v, want it to mention %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDevice(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestLibraryCandidates(t *testing.T) {
	exists := map[string]bool{
		"/opt/x/lib/libonnxruntime.so.1": true,
		"/opt/x/libonnxruntime.so":       true,
		"/custom/libonnxruntime.so":      true,
	}
	stat := func(p string) error {
		if exists[p] {
			return nil
		}
		return fs.ErrNotExist
	}

	tests := []struct {
		name    string
		search  LibrarySearch
		want    []string
		wantErr string
	}{
		{"flag wins", LibrarySearch{Flag: "/custom/libonnxruntime.so", Env: "/nope", Executable: "/opt/x/anonymize", Stat: stat},
			[]string{"/custom/libonnxruntime.so"}, ""},
		{"missing flag is an error, not a fallback", LibrarySearch{Flag: "/nope.so", Executable: "/opt/x/anonymize", Stat: stat},
			nil, "--ort-lib /nope.so: no such file"},
		{"env next", LibrarySearch{Env: "/custom/libonnxruntime.so", Executable: "/opt/x/anonymize", Stat: stat},
			[]string{"/custom/libonnxruntime.so"}, ""},
		{"missing env is an error", LibrarySearch{Env: "/nope.so", Stat: stat},
			nil, LibraryEnv + "=/nope.so: no such file"},
		{"beside the binary, then the system", LibrarySearch{Env: "", Executable: "/opt/x/anonymize", Stat: stat},
			[]string{"/opt/x/lib/libonnxruntime.so.1", "/opt/x/libonnxruntime.so", "libonnxruntime.so.1", "libonnxruntime.so"}, ""},
		{"system only", LibrarySearch{Stat: stat},
			[]string{"libonnxruntime.so.1", "libonnxruntime.so"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.search.Candidates()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "make setup") {
					t.Errorf("error %q does not say how to install the library", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, c := range got {
				paths = append(paths, c.Path)
			}
			if strings.Join(paths, " ") != strings.Join(tt.want, " ") {
				t.Errorf("candidates %v, want %v", paths, tt.want)
			}
		})
	}
}

func TestPackImageNet(t *testing.T) {
	// 2x2 BGR image in a 4-byte-padded stride (8 bytes per row).
	bgr := []uint8{
		0, 0, 255, 255, 255, 255, 9, 9,
		255, 0, 0, 0, 255, 0, 9, 9,
	}
	dst := make([]float32, 12)
	if err := PackImageNet(dst, bgr, 2, 2, 8); err != nil {
		t.Fatal(err)
	}
	norm := func(c int, v float32) float32 { return (v/255 - ImageNetMean[c]) / ImageNetStd[c] }
	want := []float32{
		norm(0, 255), norm(0, 255), norm(0, 0), norm(0, 0), // R plane: red, white, blue, green
		norm(1, 0), norm(1, 255), norm(1, 0), norm(1, 255), // G
		norm(2, 0), norm(2, 255), norm(2, 255), norm(2, 0), // B
	}
	for i := range want {
		if d := dst[i] - want[i]; d > 1e-6 || d < -1e-6 {
			t.Errorf("dst[%d] = %v, want %v", i, dst[i], want[i])
		}
	}
	if err := PackImageNet(make([]float32, 11), bgr, 2, 2, 8); err == nil {
		t.Error("short tensor: want an error")
	}
}

// runtimeForTest loads the real ONNX Runtime once for this test binary.
func runtimeForTest(t *testing.T, log *slog.Logger) *Runtime {
	t.Helper()
	lib := testutil.ORTLib(t)
	rt, err := Load(LibrarySearch{Flag: lib}, log)
	if err != nil {
		t.Fatal(err)
	}
	if log != nil {
		rt.log = log
	}
	return rt
}

func writeSynthetic(t *testing.T) (det, pose string) {
	t.Helper()
	det, pose, err := synthetic.WriteModels(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return det, pose
}

func TestOpenSession(t *testing.T) {
	var logs bytes.Buffer
	rt := runtimeForTest(t, slog.New(slog.NewTextHandler(&logs, nil)))
	det, pose := writeSynthetic(t)

	t.Run("cpu", func(t *testing.T) {
		s, err := rt.OpenSession(SessionOptions{Role: "detector", Path: det, Contract: models.DETR, Device: Device{Kind: DeviceCPU}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Provider != ProviderCPU {
			t.Errorf("provider %s, want %s", s.Provider, ProviderCPU)
		}
		if got := strings.Join(s.InputNames(), ","); got != "pixel_values,pixel_mask" {
			t.Errorf("inputs %s", got)
		}
		if s.Meta["anonymize.synthetic"] != "true" {
			t.Errorf("metadata %v lacks the synthetic mark", s.Meta)
		}
	})

	t.Run("auto falls back to the CPU with one warning", func(t *testing.T) {
		if rt.ProbeProvider(Device{Kind: DeviceCUDA}, mustProbe(t)) == nil {
			t.Skip("CUDA works here; the fallback cannot be exercised")
		}
		for i := 0; i < 2; i++ {
			s, err := rt.OpenSession(SessionOptions{Role: "pose", Path: pose, Contract: models.TransPose, Device: Device{Kind: DeviceAuto}})
			if err != nil {
				t.Fatal(err)
			}
			if s.Provider != ProviderCPU {
				t.Errorf("provider %s, want the CPU fallback", s.Provider)
			}
			s.Close()
		}
		if n := strings.Count(logs.String(), "CUDA unavailable"); n != 1 {
			t.Errorf("%d CUDA warnings, want exactly 1; logs:\n%s", n, logs.String())
		}
	})

	t.Run("explicit cuda fails clearly without CUDA", func(t *testing.T) {
		if rt.ProbeProvider(Device{Kind: DeviceCUDA}, mustProbe(t)) == nil {
			t.Skip("CUDA works here")
		}
		_, err := rt.OpenSession(SessionOptions{Role: "detector", Path: det, Contract: models.DETR, Device: Device{Kind: DeviceCUDA, ID: 0}})
		if err == nil || !strings.Contains(err.Error(), "cannot run the detector on CUDA device 0") || !strings.Contains(err.Error(), "--device cpu") {
			t.Errorf("error = %v", err)
		}
	})

	t.Run("wrong model for the role", func(t *testing.T) {
		_, err := rt.OpenSession(SessionOptions{Role: "detector", Path: pose, Contract: models.DETR, Device: Device{Kind: DeviceCPU}})
		if err == nil {
			t.Fatal("the pose model opened as a detector")
		}
		for _, want := range []string{"expected pixel_values float32[?,3,?,?]", "found input float32[?,3,256,192]"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	})

	t.Run("corrupt and missing files", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.onnx")
		os.WriteFile(bad, []byte("this is not protobuf"), 0o644)
		_, err := rt.OpenSession(SessionOptions{Role: "detector", Path: bad, Contract: models.DETR, Device: Device{Kind: DeviceCPU}})
		if err == nil || !strings.Contains(err.Error(), "is not a valid ONNX file") {
			t.Errorf("corrupt model: error = %v", err)
		}
		_, err = rt.OpenSession(SessionOptions{Role: "detector", Path: bad + ".missing", Contract: models.DETR, Device: Device{Kind: DeviceCPU}})
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing model: error = %v", err)
		}
	})
}

func mustProbe(t *testing.T) []byte {
	t.Helper()
	det, err := synthetic.PoseModel()
	if err != nil {
		t.Fatal(err)
	}
	return det
}

func TestTensorRTOptions(t *testing.T) {
	got := trtOptions(1, "/cache", []ShapeRange{
		{Input: "pixel_values", Min: []int64{1, 3, 32, 32}, Opt: []int64{1, 3, 800, 1333}, Max: []int64{1, 3, 1333, 1333}},
		{Input: "pixel_mask", Min: []int64{1, 32, 32}, Opt: []int64{1, 800, 1333}, Max: []int64{1, 1333, 1333}},
	})
	want := map[string]string{
		"device_id": "1", "trt_fp16_enable": "1",
		"trt_engine_cache_enable": "1", "trt_engine_cache_path": "/cache",
		"trt_timing_cache_enable": "1", "trt_timing_cache_path": "/cache",
		"trt_profile_min_shapes": "pixel_values:1x3x32x32,pixel_mask:1x32x32",
		"trt_profile_opt_shapes": "pixel_values:1x3x800x1333,pixel_mask:1x800x1333",
		"trt_profile_max_shapes": "pixel_values:1x3x1333x1333,pixel_mask:1x1333x1333",
	}
	if !maps.Equal(got, want) {
		t.Errorf("options\n got %v\nwant %v", got, want)
	}
	if _, ok := trtOptions(0, "/c", nil)["trt_profile_min_shapes"]; ok {
		t.Error("a profile without shapes")
	}
}
