package video

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

func TestProbe(t *testing.T) {
	dir := t.TempDir()
	ffprobe := testutil.Tool(t, "ffprobe")
	withAudio := makeClip(t, dir, clipSpec{name: "audio.mp4", acodec: "aac", frames: 45})
	silent := makeClip(t, dir, clipSpec{name: "silent.mkv", rate: "25", frames: 50, size: "128x96"})

	tests := []struct {
		name string
		path string
		want Info
	}{
		{
			name: "mp4 with audio",
			path: withAudio,
			want: Info{Path: withAudio, Width: 160, Height: 120, CodedWidth: 160, CodedHeight: 120, FPS: Rational{30000, 1001}, PeakFPS: 30000.0 / 1001,
				TimeBase: Rational{1, 30000}, FrameCount: 45, FrameCountExact: true,
				Codec: "h264", PixFmt: "yuv420p", HasAudio: true, AudioCodec: "aac", Prober: "ffprobe"},
		},
		{
			// Matroska declares no frame count: the packets are counted.
			name: "mkv without audio",
			path: silent,
			want: Info{Path: silent, Width: 128, Height: 96, CodedWidth: 128, CodedHeight: 96, FPS: Rational{25, 1}, PeakFPS: 25,
				TimeBase: Rational{1, 1000}, FrameCount: 50, FrameCountExact: true,
				Codec: "h264", PixFmt: "yuv420p", Prober: "ffprobe"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := probeWith(context.Background(), tt.path, ffprobe, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := res.Info
			if !strings.Contains(got.Container, strings.TrimPrefix(filepath.Ext(tt.path), ".")) &&
				!(strings.HasSuffix(tt.path, ".mkv") && strings.Contains(got.Container, "matroska")) {
				t.Errorf("Container = %q, does not match %s", got.Container, tt.path)
			}
			wantDur := tt.want.FPS.Duration(tt.want.FrameCount)
			if d := got.Duration - wantDur; d < -wantDur/20 || d > wantDur/20 {
				t.Errorf("Duration = %v, want about %v", got.Duration, wantDur)
			}
			got.Container, got.Duration = "", 0
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Probe() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestProbeEditList(t *testing.T) {
	// Cutting without re-encoding leaves frames before the cut in the file
	// (nb_frames counts them) but hides them with an edit list; the frame
	// count must follow what decoders return or the clip reads as
	// truncated.
	dir := t.TempDir()
	src := makeClip(t, dir, clipSpec{name: "src.mp4", frames: 90, extra: []string{"-g", "90"}})
	cut := filepath.Join(dir, "cut.mp4")
	runFFmpeg(t, "-ss", "1.5", "-i", src, "-c", "copy", cut)

	info := probe(t, cut)
	n, err := countFrames(t, cut)
	if err == nil || n == 0 {
		t.Fatalf("decoded %d frames, end error %v", n, err)
	}
	var trunc *TruncatedError
	if errors.As(err, &trunc) {
		t.Fatalf("cut clip reported as truncated: %v (probe %+v)", err, info)
	}
	if info.FrameCount < n-2 || info.FrameCount > n+2 {
		t.Errorf("FrameCount = %d, decoded %d", info.FrameCount, n)
	}
}

func TestProbeOpenCVFallback(t *testing.T) {
	dir := t.TempDir()
	path := makeClip(t, dir, clipSpec{name: "clip.mp4", frames: 40, acodec: "aac"})
	res, err := probeWith(context.Background(), path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := res.Info
	if got.Prober != "opencv" || got.Width != 160 || got.Height != 120 || got.FPS != (Rational{30000, 1001}) || got.FrameCount != 40 {
		t.Errorf("OpenCV probe = %+v, want opencv, 160x120, 30000/1001, 40 frames", got)
	}
	if got.FrameCountExact {
		t.Error("OpenCV frame count must not be treated as exact")
	}

	text := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(text, []byte("not a video\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := probeWith(context.Background(), text, "", nil); err == nil || !strings.Contains(err.Error(), "is not a video file") {
		t.Errorf("OpenCV probe of a text file: %v, want 'is not a video file'", err)
	}
}

func TestProbeErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := write("text.mp4", []byte("hello, I am not a video\n"))
	empty := write("empty.mp4", nil)
	missing := filepath.Join(dir, "missing.mp4")
	folder := filepath.Join(dir, "folder.mp4")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	audioOnly := filepath.Join(dir, "audio.m4a")
	runFFmpeg(t, "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", audioOnly)
	noFrames := filepath.Join(dir, "noframes.avi")
	runFFmpeg(t, "-f", "lavfi", "-i", "testsrc2", "-frames:v", "0", "-c:v", "mpeg4", noFrames)

	tests := []struct {
		name   string
		path   string
		want   string
		wantIs error
	}{
		{"text file named .mp4", text, text + " is not a video file (ffprobe: ", nil},
		{"empty file", empty, empty + " is not a video file (it is empty)", nil},
		{"missing", missing, "input " + missing + " does not exist", fs.ErrNotExist},
		{"directory", folder, "input " + folder + " is a directory", nil},
		{"audio only", audioOnly, audioOnly + " is not a video file (it has no video stream)", nil},
		{"no frames", noFrames, noFrames + " has no video frames", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Probe(context.Background(), tt.path)
			if err == nil {
				t.Fatalf("Probe() = %+v, want error", info)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q, want prefix %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}

func TestProbeUnreadable(t *testing.T) {
	dir := t.TempDir()
	path := makeClip(t, dir, clipSpec{name: "clip.mp4", frames: 5})
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(path); err == nil {
		f.Close()
		t.Skip("running with privileges that ignore file permissions")
	}
	_, err := Probe(context.Background(), path)
	if want := "cannot read " + path + ": permission denied"; err == nil || err.Error() != want {
		t.Errorf("Probe() error = %v, want %q", err, want)
	}
}
