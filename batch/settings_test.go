package batch

import (
	"testing"

	"github.com/anonymize-dev/anonymize/pipeline"
)

func TestSettingsHash(t *testing.T) {
	models := newFakeProc().models
	base := SettingsHash(pipeline.DefaultConfig(), models)
	if len(base) != 64 {
		t.Fatalf("hash %q is not hex sha256", base)
	}
	tests := []struct {
		name    string
		change  func(c *pipeline.Config, m []pipeline.ModelRef)
		changes bool
	}{
		{"same settings", func(*pipeline.Config, []pipeline.ModelRef) {}, false},
		{"pose batch", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.PoseBatch *= 2 }, false},
		{"queue size", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.QueueSize++ }, false},
		{"device", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Device = "cuda:1" }, false},
		{"model path and provider", func(_ *pipeline.Config, m []pipeline.ModelRef) {
			m[0].Path, m[0].Provider = "elsewhere/detr.onnx", "CUDAExecutionProvider"
		}, false},
		{"model order", func(_ *pipeline.Config, m []pipeline.ModelRef) { m[0], m[1] = m[1], m[0] }, false},
		{"detector sha256", func(_ *pipeline.Config, m []pipeline.ModelRef) { m[0].SHA256 = m[1].SHA256 }, true},
		// The pre-processing on the GPU resizes a little differently.
		{"pre-processing fused", func(_ *pipeline.Config, m []pipeline.ModelRef) { m[0].Fused = true }, true},
		// --preprocess auto may resolve either way; what it resolved to counts.
		{"pre-processing flag", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Preprocess = "fused" }, false},
		{"detector batch", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Batch = 4 }, false},
		{"threshold", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Threshold += 0.01 }, true},
		{"detect size", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.DetectSize += 32 }, true},
		{"kpt threshold", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.KptThreshold += 0.01 }, true},
		{"mask scale", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.MaskScale += 0.1 }, true},
		{"crf", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.CRF++ }, true},
		{"preset", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Preset = "slow" }, true},
		{"encoder", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Encoder = "libx264" }, true},
		// Threads change how fast x264 runs and its bitstream a little, not
		// the quality or the masks: outputs stay.
		{"encoder threads", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.EncoderThreads = 3 }, false},
		{"audio", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Audio = "drop" }, true},
		{"frames", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Frames = 10 }, true},
		{"draw", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Draw = true }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := pipeline.DefaultConfig()
			m := append([]pipeline.ModelRef(nil), models...)
			tt.change(&cfg, m)
			if got := SettingsHash(cfg, m); (got != base) != tt.changes {
				t.Errorf("hash changed: %v, want %v", got != base, tt.changes)
			}
		})
	}
}
