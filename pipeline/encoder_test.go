package pipeline

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		encoder string
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
