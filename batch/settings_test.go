package batch

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/video"
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
		{"device", func(c *pipeline.Config, _ []pipeline.ModelRef) {
			c.Device = inference.Device{Kind: inference.DeviceCUDA, ID: 1}
		}, false},
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
		{"audio", func(c *pipeline.Config, _ []pipeline.ModelRef) { c.Audio = video.AudioDrop }, true},
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

// TestSettingsClassified: each pipeline.Config field is hashed or says why
// not, and the hash follows that: a change to a hashed field moves it, a
// change to another does not.
func TestSettingsClassified(t *testing.T) {
	models := newFakeProc().models
	base := SettingsHash(pipeline.DefaultConfig(), models)
	typ := reflect.TypeFor[pipeline.Config]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		hashed := slices.Contains(hashedFields, name)
		why, unhashed := unhashedFields[name]
		switch {
		case hashed && unhashed:
			t.Errorf("%s is both hashed and not (%s)", name, why)
			continue
		case !hashed && !unhashed:
			t.Errorf("pipeline.Config.%s is new to the settings hash: add it to hashedSettings and hashedFields if it can change an output, "+
				"else to unhashedFields with the reason", name)
			continue
		}
		cfg := pipeline.DefaultConfig()
		if !perturb(reflect.ValueOf(&cfg).Elem().Field(i)) {
			t.Errorf("%s: the test cannot change a %s; teach perturb", name, typ.Field(i).Type)
			continue
		}
		if moved := SettingsHash(cfg, models) != base; moved != hashed {
			t.Errorf("changing %s moved the hash: %v, want %v", name, moved, hashed)
		}
	}
	for _, name := range append(slices.Clone(hashedFields), slices.Collect(maps.Keys(unhashedFields))...) {
		if _, ok := typ.FieldByName(name); !ok {
			t.Errorf("%s is classified but pipeline.Config has no such field", name)
		}
	}
}

// perturb changes v to another value of its type.
func perturb(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Float64:
		v.SetFloat(v.Float() + 0.125)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Struct:
		if d, ok := v.Addr().Interface().(*inference.Device); ok {
			d.Kind, d.ID = inference.DeviceCUDA, 3
			return true
		}
		return false
	default:
		return false
	}
	return true
}
