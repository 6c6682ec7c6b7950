package pipeline

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/digest"
	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// TestPreprocessFused runs a clip of the synthetic scene with the
// detector's pre-processing in Go and fused into the model (on the CPU
// here, where auto would not choose it): the same people in every frame,
// boxes within 2 pixels, the same masks. The fused model is made once,
// kept in the cache folder and reused, and auto on the CPU keeps the Go
// path.
func TestPreprocessFused(t *testing.T) {
	if testing.Short() {
		t.Skip("loads ONNX Runtime and encodes videos")
	}
	ffmpeg := testutil.Tool(t, "ffmpeg")
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	dir := t.TempDir()
	detector, poser, err := synthetic.WriteModels(dir)
	if err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join(dir, "scene.mp4")
	if err := synthclip.DefaultScene(960, 540, 24).Write(context.Background(), clip, ffmpeg); err != nil {
		t.Fatal(err)
	}

	run := func(device string, preprocess Preprocess, batch, frames int) (*Engine, []FrameResult, Stats) {
		t.Helper()
		cfg := DefaultConfig()
		if err := cfg.Device.Set(device); err != nil {
			t.Fatal(err)
		}
		cfg.DetectorModel, cfg.PoseModel = detector, poser
		cfg.Audit, cfg.Preprocess, cfg.Batch, cfg.Frames = AuditOff, preprocess, batch, frames
		e, err := NewEngine(cfg, Env{Library: inference.LibrarySearch{Flag: testutil.ORTLib(t)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		var results []FrameResult
		res, err := e.ProcessVideo(context.Background(), Job{Input: clip, Output: filepath.Join(t.TempDir(), "out.mp4")},
			Hooks{Frame: func(r FrameResult) { results = append(results, r) }})
		if err != nil {
			t.Fatal(err)
		}
		return e, results, res.Stats
	}

	cpuEngine, want, wantStats := run("cpu", PreprocessAuto, 0, 0)
	if cpuEngine.Preprocess() != PreprocessCPU {
		t.Errorf("auto on the CPU prepares the input %s, want cpu", cpuEngine.Preprocess())
	}
	// --device auto finds the CPU only when it opens the detector: it
	// keeps the plain model and makes no fused one.
	if e, _, _ := run("auto", PreprocessAuto, 0, 1); e.Providers() == "CPUExecutionProvider" {
		if made, _ := filepath.Glob(filepath.Join(cache, "anonymize", "fused", "*")); e.Preprocess() != PreprocessCPU || len(made) != 0 {
			t.Errorf("--device auto on the CPU: pre-processing %s, fused models made %v; want cpu and none", e.Preprocess(), made)
		}
	}
	fusedEngine, got, gotStats := run("cpu", PreprocessFused, 2, 0)
	if fusedEngine.Preprocess() != PreprocessFused || fusedEngine.DetectBatch() != 2 {
		t.Fatalf("--preprocess fused --batch 2: pre-processing %s, batch %d", fusedEngine.Preprocess(), fusedEngine.DetectBatch())
	}
	var ref ModelRef
	for _, m := range fusedEngine.Models {
		if m.Role == models.RoleDetector {
			ref = m
		}
	}
	if sum, _, _ := digest.FileSHA256(detector); !ref.Fused || ref.Path != detector || ref.SHA256 != sum {
		t.Errorf("detector recorded as %+v: want the model's own path and sha256, marked fused", ref)
	}

	if wantStats.FramesWithPeople == 0 || gotStats.People != wantStats.People || gotStats.Masks != wantStats.Masks {
		t.Errorf("fused: %d people, masks %+v; Go path: %d people, masks %+v (want some, and the same)",
			gotStats.People, gotStats.Masks, wantStats.People, wantStats.Masks)
	}
	for i := range min(len(got), len(want)) {
		if len(got[i].People) != len(want[i].People) {
			t.Errorf("frame %d: %d people fused, %d with the Go path", i, len(got[i].People), len(want[i].People))
			continue
		}
		for k, p := range got[i].People {
			g, w := p.Detection.Box, want[i].People[k].Detection.Box
			if math.Abs(float64(g.X1-w.X1)) > 2 || math.Abs(float64(g.Y1-w.Y1)) > 2 ||
				math.Abs(float64(g.X2-w.X2)) > 2 || math.Abs(float64(g.Y2-w.Y2)) > 2 {
				t.Errorf("frame %d person %d: box %+v fused, %+v with the Go path", i, k, g, w)
			}
		}
	}

	// Made once: a second engine loads the same file without remaking it.
	made, err := filepath.Glob(filepath.Join(cache, "anonymize", "fused", "detr-*.onnx"))
	if err != nil || len(made) != 1 {
		t.Fatalf("fused models in the cache: %v (%v), want one", made, err)
	}
	before, _ := os.Stat(made[0])
	run("cpu", PreprocessFused, 1, 1)
	if after, _ := os.Stat(made[0]); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the fused model was made again")
	}
}
