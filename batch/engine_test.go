package batch

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models/synthetic"
	"github.com/anonymize-dev/anonymize/pipeline"
)

// TestRunWithEngine runs a small batch on the real pipeline.Engine with
// the synthetic models, two videos at once, to check that Run and the
// engine agree on the contract the fake imitates: TempDir, overwrite,
// output folders, concurrent ProcessVideo.
func TestRunWithEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("loads ONNX Runtime and encodes videos")
	}
	ffmpeg := testutil.Tool(t, "ffmpeg")
	testutil.Tool(t, "ffprobe")
	lib := testutil.ORTLib(t)
	detector, poser, err := synthetic.WriteModels(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in, out := testDirs(t, map[string]string{"broken/not-a-video.mp4": "this is text"})
	clip := filepath.Join(in, "a.mp4")
	if err := synthclip.DefaultScene(synthclip.MinWidth, synthclip.MinHeight, 6).Write(context.Background(), clip, ffmpeg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, in, map[string]string{"sub/b.mkv": string(data)})

	cfg := pipeline.DefaultConfig()
	cfg.Device, cfg.DetectorModel, cfg.PoseModel = inference.Device{Kind: inference.DeviceCPU}, detector, poser
	engine, err := pipeline.NewEngine(cfg, pipeline.Env{Library: inference.LibrarySearch{Flag: lib}, AuditModel: testutil.AuditModel(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()

	opts := testOptions(in, out)
	opts.Config, opts.Jobs = cfg, 2
	sum := runOK(t, opts, engine, Hooks{})
	want := map[string]string{"a.mp4": "done/new", "broken/not-a-video.mp4": "failed/new", "sub/b.mkv": "done/new"}
	if got := statuses(sum.Files); !maps.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	validateReport(t, sum.ReportPath)
	r := readReport(t, sum.ReportPath)
	checkTotals(t, r)
	if r.ExecutionProvider != "CPUExecutionProvider" || len(r.Models) != 2 || r.SettingsHash != SettingsHash(cfg, engine.Models) {
		t.Errorf("report header from the engine: provider %q, models %v, hash %s", r.ExecutionProvider, r.Models, r.SettingsHash)
	}
	for _, f := range r.Files {
		if f.Status == StatusDone && (f.Frames != 6 || f.Video == nil || f.Video.FPS != "30000/1001") {
			t.Errorf("%s: %d frames, video %+v", f.Input, f.Frames, f.Video)
		}
	}
	if got := outputTree(t, out); len(got) != 2 || got["a.mp4"] == "" || got["sub/b.mkv"] == "" {
		t.Errorf("output tree has %d files, want a.mp4 and sub/b.mkv", len(got))
	}
	if left := testutil.DirNames(t, filepath.Join(out, ".anonymize", "tmp")); len(left) != 0 {
		t.Errorf("tmp folder holds %v", left)
	}

	again := runOK(t, opts, engine, Hooks{})
	if again.Skipped != 2 || again.Failed != 1 || again.Done != 0 {
		t.Errorf("re-run: %d skipped, %d failed, %d done; want 2, 1, 0", again.Skipped, again.Failed, again.Done)
	}
}
