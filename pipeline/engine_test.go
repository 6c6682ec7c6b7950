package pipeline

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/video"
)

// TestResolveEncoder: auto settles for libx264 where NVENC fails; NVENC
// asked for by name must work, or the run stops before any video with
// ffmpeg's reason and what to do.
func TestResolveEncoder(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\necho '[h264_nvenc @ 0x1] No capable devices found' >&2\necho '[hevc_nvenc @ 0x1] No capable devices found' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "ffmpeg"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		encoder video.Codec
		want    video.Codec
		wantErr string
	}{
		{encoder: "auto", want: video.CodecX264},
		{encoder: "libx264", want: video.CodecX264},
		{encoder: "h264_nvenc", wantErr: "--encoder h264_nvenc: this machine's ffmpeg cannot encode with it (No capable devices found): use --encoder libx264"},
		{encoder: "hevc_nvenc", wantErr: "--encoder hevc_nvenc: this machine's ffmpeg cannot encode with it (No capable devices found)"},
	} {
		cfg := DefaultConfig()
		cfg.Encoder = tt.encoder
		got, err := resolveEncoder(cfg, log)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.encoder, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %s (%v), want %s", tt.encoder, got, err, tt.want)
		}
	}
}

// TestTensorRTProfile: DETR's profile spans both orientations of a frame
// resized to --detect-size, at exactly --batch frames (a GPU's default
// unless set); TransPose's spans 1 to --pose-batch crops, or exactly the
// batch a model fixes.
func TestTensorRTProfile(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PoseBatch = 12
	e := &Engine{cfg: cfg}
	detInputs := models.Binding{Inputs: []models.TensorInfo{
		{Name: models.DETRPixelValues, Dims: []int64{-1, 3, -1, -1}}, {Name: models.DETRPixelMask, Dims: []int64{-1, -1, -1}}}}
	det := e.trtProfile(models.RoleDetector)(detInputs)
	if fmt.Sprint(det) != "[{pixel_values [4 3 32 32] [4 3 800 1333] [4 3 1333 1333]} {pixel_mask [4 32 32] [4 800 1333] [4 1333 1333]}]" {
		t.Errorf("detector profile %v", det)
	}
	e.cfg.Batch = 2
	if det := e.trtProfile(models.RoleDetector)(detInputs); fmt.Sprint(det[0]) != "{pixel_values [2 3 32 32] [2 3 800 1333] [2 3 1333 1333]}" {
		t.Errorf("detector profile with --batch 2: %v", det)
	}
	fused := e.trtProfile(models.RoleDetector)(models.Binding{Inputs: []models.TensorInfo{{Name: models.DETRFrames, Dims: []int64{-1, -1, -1, 3}}}})
	if fmt.Sprint(fused) != "[{frames [2 32 32 3] [2 1080 1920 3] [2 3840 3840 3]}]" {
		t.Errorf("fused detector profile %v", fused)
	}
	pose := e.trtProfile(models.RolePose)(models.Binding{Inputs: []models.TensorInfo{{Name: "x", Dims: []int64{-1, 3, 256, 192}}}})
	if fmt.Sprint(pose) != "[{x [1 3 256 192] [8 3 256 192] [12 3 256 192]}]" {
		t.Errorf("pose profile %v", pose)
	}
	fixed := e.trtProfile(models.RolePose)(models.Binding{Inputs: []models.TensorInfo{{Name: "x", Dims: []int64{4, 3, 256, 192}}}})
	if fmt.Sprint(fixed) != "[{x [4 3 256 192] [4 3 256 192] [4 3 256 192]}]" {
		t.Errorf("fixed-batch pose profile %v", fixed)
	}
}
