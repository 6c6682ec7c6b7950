package video

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"gocv.io/x/gocv"
)

func TestEncoderRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := makeClip(t, dir, clipSpec{name: "src.mov", frames: 75, acodec: "aac", extra: []string{
		"-metadata", "title=Holiday", "-metadata", "location=+48.8584+002.2945/",
		"-metadata", "creation_time=2023-05-06T07:08:09Z",
		"-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
	}})
	in := probe(t, src)
	out := filepath.Join(dir, "out.mp4")
	logger, logs := logCapture()
	opts := encodeOpts(in, out)
	opts.Logger = logger
	if n := transcode(t, opts, 0); n != 75 {
		t.Fatalf("transcoded %d frames, want 75", n)
	}

	got := probe(t, out)
	if got.FrameCount != 75 || got.FPS != (Rational{30000, 1001}) || got.Width != 160 || got.Height != 120 ||
		got.Codec != "h264" || got.PixFmt != "yuv420p" || !got.HasAudio || got.AudioCodec != "aac" {
		t.Errorf("output = %+v\nwant 75 frames, 30000/1001, 160x120, h264, yuv420p, aac audio", got)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("unexpected warnings:\n%s", logs)
	}

	raw := ffprobeJSON(t, out)
	tags := raw.Format.Tags
	if tags["title"] != "Holiday" || !strings.HasPrefix(tags["creation_time"], "2023-05-06T07:08:09") {
		t.Errorf("global metadata not carried over: %v", tags)
	}
	for k := range tags {
		if strings.HasPrefix(k, "location") {
			t.Errorf("location metadata %s=%s copied into the output", k, tags[k])
		}
	}
	for _, s := range raw.Streams {
		if s.CodecType == "video" && (s.ColorPrimaries != "bt709" || s.ColorTransfer != "bt709" || s.ColorSpace != "bt709") {
			t.Errorf("colour description %s/%s/%s, want bt709 throughout", s.ColorPrimaries, s.ColorTransfer, s.ColorSpace)
		}
	}
	// Video and audio keep their length, so they stay in sync.
	v, a := streamDuration(t, out, "video"), streamDuration(t, out, "audio")
	if d := v - a; d > 0.05 || d < -0.05 {
		t.Errorf("video lasts %.3fs, audio %.3fs", v, a)
	}
	if left, _ := filepath.Glob(tempGlob(out)); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestEncoderAudio(t *testing.T) {
	dir := t.TempDir()
	aacMP4 := makeClip(t, dir, clipSpec{name: "aac.mp4", frames: 30, acodec: "aac"})
	pcmMKV := makeClip(t, dir, clipSpec{name: "pcm.mkv", frames: 30, acodec: "pcm_s16le"})
	pcmAVI := makeClip(t, dir, clipSpec{name: "pcm.avi", frames: 30, acodec: "pcm_s16le"})
	silent := makeClip(t, dir, clipSpec{name: "silent.mp4", frames: 30})

	tests := []struct {
		name      string
		src       string
		out       string
		mode      AudioMode
		wantCodec string // "" means no audio
		wantWarn  bool
	}{
		{"aac copied", aacMP4, "aac-copy.mp4", AudioCopy, "aac", false},
		{"aac dropped", aacMP4, "aac-drop.mp4", AudioDrop, "", false},
		{"pcm into mp4 becomes aac", pcmMKV, "pcm.mp4", AudioCopy, "aac", true},
		{"pcm from avi into mp4 becomes aac", pcmAVI, "pcm-avi.mp4", AudioCopy, "aac", true},
		{"pcm into mov is copied", pcmMKV, "pcm.mov", AudioCopy, "pcm_s16le", false},
		{"pcm into mkv is copied", pcmMKV, "pcm.mkv", AudioCopy, "pcm_s16le", false},
		{"aac into mkv is copied", aacMP4, "aac.mkv", AudioCopy, "aac", false},
		{"no audio in source", silent, "silent-out.mp4", AudioCopy, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), tt.out)
			logger, logs := logCapture()
			opts := encodeOpts(probe(t, tt.src), out)
			opts.Audio = tt.mode
			opts.Logger = logger
			transcode(t, opts, 0)
			got := probe(t, out)
			if got.HasAudio != (tt.wantCodec != "") || got.AudioCodec != tt.wantCodec {
				t.Errorf("output audio: %v %q, want %q", got.HasAudio, got.AudioCodec, tt.wantCodec)
			}
			if n, err := countFrames(t, out); n != 30 || !errors.Is(err, io.EOF) {
				t.Errorf("output decodes to %d frames (%v), want 30", n, err)
			}
			warnings := strings.Count(logs.String(), "level=WARN")
			if tt.wantWarn && warnings != 1 || !tt.wantWarn && warnings != 0 {
				t.Errorf("%d warnings, want warn=%v:\n%s", warnings, tt.wantWarn, logs)
			}
		})
	}
}

func TestEncoderMaxDurationCutsAudio(t *testing.T) {
	dir := t.TempDir()
	// Four seconds of audio, of which only the first 30 frames are kept.
	src := makeClip(t, dir, clipSpec{name: "long.mp4", frames: 120, acodec: "aac"})
	in := probe(t, src)
	out := filepath.Join(dir, "first30.mp4")
	opts := encodeOpts(in, out)
	opts.MaxDuration = in.FPS.Duration(30)
	if n := transcode(t, opts, 30); n != 30 {
		t.Fatalf("wrote %d frames", n)
	}
	want := opts.MaxDuration.Seconds()
	if a := streamDuration(t, out, "audio"); a < want-0.1 || a > want+0.1 {
		t.Errorf("audio lasts %.3fs, want about %.3fs", a, want)
	}
	if got := probe(t, out).FrameCount; got != 30 {
		t.Errorf("output has %d frames, want 30", got)
	}
}

func TestEncoderPixelFidelity(t *testing.T) {
	dir := t.TempDir()
	src := makeClip(t, dir, clipSpec{name: "src.mp4", size: "320x240", frames: 10})
	in := probe(t, src)

	for _, roi := range []bool{false, true} {
		name := "continuous"
		if roi {
			// Frames that are views into a larger image are not
			// continuous in memory and take the copying path.
			name = "region of a larger Mat"
		}
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.mp4")
			opts := encodeOpts(in, out)
			opts.CRF, opts.Preset = 18, "medium"
			r, err := Open(context.Background(), src, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			enc, err := NewEncoder(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Abort()
			var originals []gocv.Mat
			defer func() {
				for _, m := range originals {
					m.Close()
				}
			}()
			big := gocv.NewMatWithSize(in.Height+16, in.Width+24, gocv.MatTypeCV8UC3)
			defer big.Close()
			view := big.Region(rectAt(12, 8, in.Width, in.Height))
			defer view.Close()
			frame := gocv.NewMat()
			defer frame.Close()
			for {
				pts, err := r.Read(&frame)
				if errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				originals = append(originals, frame.Clone())
				toWrite := frame
				if roi {
					frame.CopyTo(&view)
					if view.IsContinuous() {
						t.Fatal("test setup: region is continuous")
					}
					toWrite = view
				}
				if err := enc.WriteFrame(toWrite, pts); err != nil {
					t.Fatal(err)
				}
			}
			if err := enc.Close(); err != nil {
				t.Fatal(err)
			}

			dec, err := Open(context.Background(), out, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			diff := gocv.NewMat()
			defer diff.Close()
			for i, orig := range originals {
				if _, err := dec.Read(&frame); err != nil {
					t.Fatalf("decoding frame %d of the output: %v", i, err)
				}
				gocv.AbsDiff(orig, frame, &diff)
				s := diff.Sum()
				mean := (s.Val1 + s.Val2 + s.Val3) / float64(3*in.Width*in.Height)
				if mean >= 3 {
					t.Errorf("frame %d: mean absolute difference %.2f, want < 3", i, mean)
				}
			}
			if _, err := dec.Read(&frame); !errors.Is(err, io.EOF) {
				t.Errorf("output has more frames than written: %v", err)
			}
		})
	}
}

func TestEncoderAbort(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	dir := t.TempDir()
	out := filepath.Join(dir, "aborted.mp4")
	before := runtime.NumGoroutine()
	enc, err := NewEncoder(context.Background(), EncoderOptions{Output: out, Width: 64, Height: 48, FPS: Rational{25, 1}, Preset: "ultrafast"})
	if err != nil {
		t.Fatal(err)
	}
	if enc.Backend() != "ffmpeg libx264" {
		t.Fatalf("Backend() = %q", enc.Backend())
	}
	frame := solidFrame(64, 48, 10, 200, 30)
	defer frame.Close()
	for range 10 {
		if err := enc.WriteFrame(frame, tick(enc)); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := filepath.Glob(tempGlob(out)); len(left) != 1 {
		t.Fatalf("while encoding, temporary files %v, want exactly one", left)
	}
	if err := enc.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if err := enc.Close(); !errors.Is(err, ErrAborted) {
		t.Errorf("Close after Abort = %v, want ErrAborted", err)
	}
	if err := enc.WriteFrame(frame, tick(enc)); err == nil {
		t.Error("WriteFrame after Abort succeeded")
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Errorf("files left after Abort: %v", names)
	}
	waitGoroutines(t, before)
}

func TestEncoderCloseTwiceAndAbortAfterClose(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	dir := t.TempDir()
	out := filepath.Join(dir, "done.mkv")
	enc, err := NewEncoder(context.Background(), EncoderOptions{Output: out, Width: 64, Height: 48, FPS: Rational{25, 1}, Preset: "ultrafast"})
	if err != nil {
		t.Fatal(err)
	}
	frame := solidFrame(64, 48, 0, 0, 255)
	defer frame.Close()
	for range 5 {
		if err := enc.WriteFrame(frame, tick(enc)); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := enc.Abort(); err != nil {
		t.Errorf("Abort after Close: %v", err)
	}
	if got := probe(t, out).FrameCount; got != 5 {
		t.Errorf("output has %d frames after Abort-after-Close, want 5", got)
	}
	if names := testutil.DirNames(t, dir); !slices.Equal(names, []string{"done.mkv"}) {
		t.Errorf("folder holds %v, want only done.mkv", names)
	}
}

func TestEncoderAbortUnblocksWrite(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	dir := t.TempDir()
	out := filepath.Join(dir, "stuck.mp4")
	e, err := NewEncoder(context.Background(), EncoderOptions{Output: out, Width: 640, Height: 480, FPS: Rational{25, 1}})
	if err != nil {
		t.Fatal(err)
	}
	enc := e.(*ffmpegEncoder)
	frame := solidFrame(640, 480, 1, 2, 3)
	defer frame.Close()
	// ffmpeg starts with the first frame.
	if err := enc.WriteFrame(frame, tick(enc)); err != nil {
		t.Fatal(err)
	}
	// A stopped ffmpeg stops reading, so writes block once the pipe is full.
	if err := enc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		for {
			if err := enc.WriteFrame(frame, tick(enc)); err != nil {
				result <- err
				return
			}
		}
	}()
	if err := enc.Abort(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		if err == nil {
			t.Error("WriteFrame succeeded after Abort")
		}
	case <-time.After(time.Minute):
		t.Fatal("WriteFrame still blocked a minute after Abort")
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Errorf("files left after Abort: %v", names)
	}
}

func TestEncoderContextCancel(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	dir := t.TempDir()
	out := filepath.Join(dir, "cancelled.mp4")
	ctx, cancel := context.WithCancel(context.Background())
	enc, err := NewEncoder(ctx, EncoderOptions{Output: out, Width: 320, Height: 240, FPS: Rational{25, 1}, Preset: "ultrafast"})
	if err != nil {
		t.Fatal(err)
	}
	frame := solidFrame(320, 240, 50, 50, 50)
	defer frame.Close()
	if err := enc.WriteFrame(frame, tick(enc)); err != nil {
		t.Fatal(err)
	}
	cancel()
	// The killed ffmpeg makes writes fail sooner or later; Close must not
	// publish a file either way.
	var werr error
	for range 1000 {
		if werr = enc.WriteFrame(frame, tick(enc)); werr != nil {
			break
		}
	}
	if werr != nil && !errors.Is(werr, context.Canceled) {
		t.Errorf("WriteFrame after cancel = %v, want context.Canceled", werr)
	}
	if err := enc.Close(); !errors.Is(err, context.Canceled) {
		t.Errorf("Close after cancel = %v, want context.Canceled", err)
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Errorf("files left after cancel: %v", names)
	}
}

func TestEncoderFFmpegFailure(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	// ffmpeg opens the x264 encoder only once the first frame arrives, so
	// the failure shows in Close when every frame fits in the pipe, and as
	// a broken pipe during WriteFrame when frames are larger than the pipe.
	tests := []struct {
		name          string
		width, height int
		frames        int
		failsInWrite  bool
	}{
		{"small frames fail in Close", 32, 24, 1, false},
		{"large frames fail in WriteFrame", 1280, 720, 50, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "bad.mp4")
			enc, err := NewEncoder(context.Background(), EncoderOptions{Output: out, Width: tt.width, Height: tt.height, FPS: Rational{25, 1}, Preset: "no-such-preset"})
			if err != nil {
				t.Fatal(err)
			}
			frame := solidFrame(tt.width, tt.height, 9, 9, 9)
			defer frame.Close()
			var failure error
			for range tt.frames {
				if failure = enc.WriteFrame(frame, tick(enc)); failure != nil {
					break
				}
			}
			if (failure != nil) != tt.failsInWrite {
				t.Errorf("WriteFrame error = %v, want failure in WriteFrame: %v", failure, tt.failsInWrite)
			}
			if failure != nil {
				if again := enc.WriteFrame(frame, tick(enc)); again == nil {
					t.Error("WriteFrame succeeded after a failed one")
				}
			}
			closeErr := enc.Close()
			if closeErr == nil {
				t.Fatal("Close succeeded with an invalid preset")
			}
			if failure == nil {
				failure = closeErr
			}
			if err := enc.Abort(); err != nil {
				t.Errorf("Abort after failed Close: %v", err)
			}
			msg := failure.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "ffmpeg failed (exit status") || !strings.Contains(msg, "no-such-preset") {
				t.Errorf("error %q should report ffmpeg's exit status and its stderr about the preset", msg)
			}
			if strings.Contains(msg, "broken pipe") {
				t.Errorf("error %q reports the broken pipe instead of ffmpeg's reason", msg)
			}
			if names := testutil.DirNames(t, dir); len(names) != 0 {
				t.Errorf("files left after failure: %v", names)
			}
		})
	}
}

func TestEncoderRejectsBadFrames(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	dir := t.TempDir()
	enc, err := NewEncoder(context.Background(), EncoderOptions{Output: filepath.Join(dir, "x.mp4"), Width: 64, Height: 48, FPS: Rational{25, 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Abort()
	wrongSize := solidFrame(48, 64, 0, 0, 0)
	defer wrongSize.Close()
	gray := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC1)
	defer gray.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	for name, m := range map[string]gocv.Mat{"wrong size": wrongSize, "grey": gray, "empty": empty} {
		if err := enc.WriteFrame(m, tick(enc)); err == nil {
			t.Errorf("%s frame accepted", name)
		}
	}
	// Rejected frames do not break the encoder.
	good := solidFrame(64, 48, 0, 0, 0)
	defer good.Close()
	if err := enc.WriteFrame(good, tick(enc)); err != nil {
		t.Errorf("good frame after rejected ones: %v", err)
	}
}

func TestEncoderZeroFrames(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	dir := t.TempDir()
	enc, err := NewEncoder(context.Background(), EncoderOptions{Output: filepath.Join(dir, "x.mp4"), Width: 64, Height: 48, FPS: Rational{25, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err == nil || !strings.Contains(err.Error(), "no frames") {
		t.Errorf("Close without frames = %v, want a 'no frames' error", err)
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Errorf("files left: %v", names)
	}
}

func TestEncoderOpenCVFallback(t *testing.T) {
	dir := t.TempDir()
	src := makeClip(t, dir, clipSpec{name: "src.mp4", frames: 33, acodec: "aac"})
	in := probe(t, src)
	for _, ext := range []string{".mp4", ".avi"} {
		t.Run(ext, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "fallback"+ext)
			logger, logs := logCapture()
			opts := encodeOpts(in, out)
			opts.Logger = logger
			opts.lookPath = func(string) (string, error) { return "", exec.ErrNotFound }
			enc, err := NewEncoder(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if enc.Backend() != "opencv mp4v" {
				t.Errorf("Backend() = %q, want opencv mp4v", enc.Backend())
			}
			enc.Abort()
			if n := transcode(t, opts, 0); n != 33 {
				t.Fatalf("wrote %d frames", n)
			}
			if n, err := countFrames(t, out); n != 33 || !errors.Is(err, io.EOF) {
				t.Errorf("fallback output decodes to %d frames (%v), want 33", n, err)
			}
			// OpenCV stores the rate as a decimal fraction (2997/100), so
			// only closeness can be asked for.
			got := probe(t, out)
			if rel := math.Abs(got.FPS.Float()/in.FPS.Float() - 1); rel > 1e-4 || got.Width != in.Width || got.Height != in.Height || got.HasAudio {
				t.Errorf("fallback output %+v, want %s %dx%d without audio", got, in.FPS, in.Width, in.Height)
			}
			if w := strings.Count(logs.String(), "level=WARN"); w != 2 || !strings.Contains(logs.String(), "audio and subtitles are dropped") {
				t.Errorf("want one warning per encoder about dropped audio, got:\n%s", logs)
			}
			if left, _ := filepath.Glob(tempGlob(out)); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestEncoderOpenCVFallbackAbort(t *testing.T) {
	dir := t.TempDir()
	opts := EncoderOptions{Output: filepath.Join(dir, "x.mp4"), Width: 64, Height: 48, FPS: Rational{25, 1},
		lookPath: func(string) (string, error) { return "", exec.ErrNotFound }}
	enc, err := NewEncoder(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	frame := solidFrame(64, 48, 1, 1, 1)
	defer frame.Close()
	if err := enc.WriteFrame(frame, tick(enc)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); !errors.Is(err, ErrAborted) {
		t.Errorf("Close after Abort = %v, want ErrAborted", err)
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Errorf("files left after Abort: %v", names)
	}
}

func TestNewEncoderErrors(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	dir := t.TempDir()
	base := EncoderOptions{Output: filepath.Join(dir, "out.mp4"), Width: 64, Height: 48, FPS: Rational{25, 1}}
	tests := []struct {
		name   string
		modify func(*EncoderOptions)
		want   string
	}{
		{"missing ffmpeg binary", func(o *EncoderOptions) { o.FFmpegPath = filepath.Join(dir, "no-ffmpeg") }, "not found"},
		{"no output", func(o *EncoderOptions) { o.Output = "" }, "no output"},
		{"zero size", func(o *EncoderOptions) { o.Width = 0 }, "frame size"},
		{"no rate", func(o *EncoderOptions) { o.FPS = Rational{} }, "frame rate"},
		{"crf out of range", func(o *EncoderOptions) { o.CRF = 52 }, "CRF"},
		{"unsupported container", func(o *EncoderOptions) { o.Output = filepath.Join(dir, "out.webm") }, "unsupported extension .webm"},
		{"missing folder", func(o *EncoderOptions) { o.Output = filepath.Join(dir, "nope", "out.mp4") }, "out.mp4"},
		{"missing audio source", func(o *EncoderOptions) { o.AudioSource = filepath.Join(dir, "gone.mp4") }, "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := base
			tt.modify(&opts)
			enc, err := NewEncoder(context.Background(), opts)
			if err == nil {
				enc.Abort()
				t.Fatalf("NewEncoder succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if names := testutil.DirNames(t, dir); len(names) != 0 {
				t.Errorf("files left: %v", names)
			}
		})
	}
}

func TestEncoderUnwritableFolder(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	skipIfWritable(t, ro)
	_, err := NewEncoder(context.Background(), EncoderOptions{Output: filepath.Join(ro, "out.mp4"), Width: 64, Height: 48, FPS: Rational{25, 1}})
	if want := "cannot write to " + ro + ": permission denied"; err == nil || err.Error() != want {
		t.Errorf("NewEncoder() error = %v, want %q", err, want)
	}
}

func TestEncoderOddSize(t *testing.T) {
	dir := t.TempDir()
	src := makeClip(t, dir, clipSpec{name: "odd.mkv", size: "161x99", frames: 12, vcodec: "ffv1"})
	in := probe(t, src)
	out := filepath.Join(dir, "odd.mp4")
	logger, logs := logCapture()
	opts := encodeOpts(in, out)
	opts.Logger = logger
	transcode(t, opts, 0)
	got := probe(t, out)
	if got.Width != 162 || got.Height != 100 || got.FrameCount != 12 {
		t.Errorf("output %dx%d with %d frames, want 162x100 (padded to even) with 12", got.Width, got.Height, got.FrameCount)
	}
	if !strings.Contains(logs.String(), "odd") {
		t.Errorf("no warning about the odd size:\n%s", logs)
	}
}

func TestFFmpegArgs(t *testing.T) {
	src := probeResult{
		Info:        Info{HasAudio: true},
		audioCodecs: []string{"aac"},
		tags:        map[string]string{"title": "T", "location": "+1+2/", "com.apple.quicktime.model": "Phone"},
		color:       colorTags{space: "bt709", primaries: "unknown", transfer: "made-up"},
	}
	opts := EncoderOptions{Output: "dir/out.mp4", Width: 640, Height: 360, FPS: Rational{30000, 1001}, CRF: 20, Preset: "fast",
		AudioSource: "-in.mov", MaxDuration: 1500 * time.Millisecond}
	opts.Logger, _ = logCapture()
	args := strings.Join(ffmpegArgs(opts, "dir/.out.mp4.anonymize-1.mp4", src, true, 0), " ")
	for _, want := range []string{
		"-f matroska -probesize 32 -analyzeduration 1 -i pipe:0",
		"-fps_mode:v passthrough -enc_time_base:v 1/30000",
		"-t 1.500000 -i file:-in.mov",
		"-map 0:v:0 -map 1:a?",
		"-c:v libx264 -preset fast -crf 20 -pix_fmt yuv420p",
		"-c:a copy",
		"-metadata title=T",
		"-colorspace:v bt709",
		"-movflags +faststart",
		"file:dir/.out.mp4.anonymize-1.mp4",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
	for _, unwanted := range []string{"location", "Phone", "made-up", "unknown", "-vf"} {
		if strings.Contains(args, unwanted) {
			t.Errorf("args contain %q:\n%s", unwanted, args)
		}
	}

	opts.Audio = AudioDrop
	if args := strings.Join(ffmpegArgs(opts, "t.mp4", src, true, 0), " "); strings.Contains(args, "in.mov") || strings.Contains(args, "-c:a") {
		t.Errorf("AudioDrop still reads the source's audio:\n%s", args)
	}
}

func TestFFmpegArgsAudio(t *testing.T) {
	tests := []struct {
		name    string
		output  string
		codecs  []string // nil: the source has no audio
		known   bool     // false: ffprobe was not available
		want    string   // audio arguments; "" means none
		warning bool
	}{
		{"aac into mp4", "o.mp4", []string{"aac"}, true, "-c:a copy", false},
		{"opus into mp4", "o.mp4", []string{"opus"}, true, "-c:a copy", false},
		{"pcm into mp4", "o.mp4", []string{"pcm_s16le"}, true, "-c:a aac -b:a 192k", true},
		{"flac into m4v", "o.m4v", []string{"flac"}, true, "-c:a aac -b:a 192k", true},
		{"one stream does not fit", "o.mp4", []string{"aac", "pcm_s16le"}, true, "-c:a aac -b:a 192k", true},
		{"pcm into mov", "o.MOV", []string{"pcm_s24le"}, true, "-c:a copy", false},
		{"opus into avi", "o.avi", []string{"opus"}, true, "-c:a aac -b:a 192k", true},
		{"anything into mkv", "o.mkv", []string{"pcm_f64le", "truehd"}, true, "-c:a copy", false},
		{"unknown into mp4", "o.mp4", nil, false, "-c:a aac -b:a 192k", false},
		{"unknown into mkv", "o.mkv", nil, false, "-c:a copy", false},
		{"no audio", "o.mp4", nil, true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := logCapture()
			opts := EncoderOptions{Output: tt.output, Width: 64, Height: 48, FPS: Rational{25, 1}, CRF: 18, Preset: "fast",
				AudioSource: "in.mkv", Logger: logger}
			src := probeResult{Info: Info{HasAudio: len(tt.codecs) > 0}, audioCodecs: tt.codecs}
			args := strings.Join(ffmpegArgs(opts, "t"+filepath.Ext(tt.output), src, tt.known, 0), " ")
			if tt.want == "" {
				if strings.Contains(args, "in.mkv") || strings.Contains(args, "-c:a") {
					t.Errorf("args read audio from a source without any:\n%s", args)
				}
			} else {
				if !strings.Contains(args, "-i file:in.mkv") {
					t.Errorf("args lack the source input:\n%s", args)
				}
				if !strings.Contains(args, "-map 1:a?") || !strings.Contains(args, tt.want+" ") {
					t.Errorf("args lack -map 1:a? and %q:\n%s", tt.want, args)
				}
			}
			if got := strings.Contains(logs.String(), "level=WARN"); got != tt.warning {
				t.Errorf("warning logged: %v, want %v:\n%s", got, tt.warning, logs)
			}
		})
	}
}

// checkArgs checks that the command line args holds every string of want
// and none of not.
func checkArgs(t *testing.T, args string, want, not []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(args, w) {
			t.Errorf("args lack %q:\n%s", w, args)
		}
	}
	for _, n := range not {
		if strings.Contains(args, n) {
			t.Errorf("args contain %q:\n%s", n, args)
		}
	}
}

func TestEncoderStreams(t *testing.T) {
	dir := t.TempDir()
	srt := filepath.Join(dir, "subs.srt")
	if err := os.WriteFile(srt, []byte("1\n00:00:00,000 --> 00:00:00,800\nHello Alice\n\n2\n00:00:01,000 --> 00:00:01,400\nBye\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "telemetry.bin")
	if err := os.WriteFile(data, []byte(strings.Repeat("GPS 48.8584 2.2945;", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	video := "testsrc2=size=160x96:rate=30,trim=end_frame=30"
	subbed := filepath.Join(dir, "subs.mkv")
	runFFmpeg(t, "-f", "lavfi", "-i", video, "-i", srt, "-map", "0", "-map", "1", "-c:v", "libx264", "-c:s", "srt", subbed)
	timecoded := filepath.Join(dir, "camera.mov")
	runFFmpeg(t, "-f", "lavfi", "-i", video, "-c:v", "libx264", "-timecode", "01:02:03:04", timecoded)
	withData := filepath.Join(dir, "drone.ts")
	runFFmpeg(t, "-f", "lavfi", "-i", video, "-f", "data", "-i", data, "-map", "0", "-map", "1", "-c:v", "libx264", "-c:d", "copy", withData)

	streams := func(path string) (kinds []string, timecode string) {
		for _, s := range ffprobeJSON(t, path).Streams {
			kinds = append(kinds, s.CodecType+":"+s.CodecName)
			if tc := lookupTagValue(s.Tags, "timecode"); tc != "" {
				timecode = tc
			}
		}
		return kinds, timecode
	}
	tests := []struct {
		src, output string
		want        []string // streams of the output
		timecode    string
		warning     string
	}{
		{subbed, "subs.mp4", []string{"video:h264", "subtitle:mov_text"}, "", ""},
		{subbed, "subs.mkv", []string{"video:h264", "subtitle:subrip"}, "", ""},
		{subbed, "subs.avi", []string{"video:h264"}, "", "subtitle streams #1 (subrip) cannot be stored in .avi"},
		{timecoded, "camera.mov", []string{"video:h264", "data:"}, "01:02:03:04", ""},
		{timecoded, "camera.mp4", []string{"video:h264", "data:"}, "01:02:03:04", ""},
		{withData, "drone.mp4", []string{"video:h264"}, "", "data streams #1 (bin_data) are left out"},
	}
	for _, tt := range tests {
		t.Run(tt.output, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), tt.output)
			logger, logs := logCapture()
			opts := encodeOpts(probe(t, tt.src), out)
			opts.Logger = logger
			if n := transcode(t, opts, 0); n != 30 {
				t.Fatalf("transcoded %d frames", n)
			}
			kinds, tc := streams(out)
			for i := range kinds {
				// tmcd tracks have no codec name ffprobe knows.
				kinds[i] = strings.TrimSuffix(kinds[i], "unknown")
			}
			if !slices.Equal(kinds, tt.want) || tc != tt.timecode {
				t.Errorf("output streams %v, timecode %q; want %v, %q", kinds, tc, tt.want, tt.timecode)
			}
			if tt.warning == "" && strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), tt.warning) {
				t.Errorf("want warning %q, got:\n%s", tt.warning, logs)
			}
		})
	}
}

func TestFFmpegArgsTiming(t *testing.T) {
	base := EncoderOptions{Output: "o.mp4", Width: 64, Height: 48, FPS: Rational{30000, 1001}, CRF: 18, Preset: "fast"}
	tests := []struct {
		name  string
		opts  func(*EncoderOptions)
		first time.Duration
		want  []string
		not   []string
	}{
		{"source clock", func(o *EncoderOptions) { o.TimeBase = Rational{1, 15360} }, 0,
			[]string{"-fps_mode:v passthrough -enc_time_base:v 1/15360"}, []string{"-itsoffset"}},
		{"AVI's clock ticks once a frame", func(o *EncoderOptions) { o.TimeBase, o.Output = Rational{1, 90000}, "o.avi" }, 0,
			[]string{"-enc_time_base:v 1001/30000"}, nil},
		{"clock of a time base with a numerator", func(o *EncoderOptions) { o.TimeBase = Rational{125, 2997} }, 0,
			[]string{"-enc_time_base:v 1/2997"}, nil},
		{"no clock given: fine and exact at 25 fps", func(o *EncoderOptions) { o.FPS = Rational{25, 1} }, 0,
			[]string{"-enc_time_base:v 1/12800"}, nil},
		{"video starting after the audio", nil, 523222 * time.Microsecond,
			[]string{"-itsoffset 0.523222 -i pipe:0"}, nil},
		{"odd size", func(o *EncoderOptions) { o.Width, o.Height = 161, 99 }, 0,
			[]string{"-vf pad=162:100:0:0:black"}, []string{"setsar"}},
		{"anamorphic", func(o *EncoderOptions) { o.SAR = Rational{8, 9} }, 0,
			[]string{"-vf setsar=8/9"}, []string{"pad="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := base
			opts.Logger, _ = logCapture()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			args := strings.Join(ffmpegArgs(opts, "t"+filepath.Ext(opts.Output), probeResult{}, true, tt.first), " ")
			checkArgs(t, args, tt.want, tt.not)
		})
	}
}

func TestFFmpegArgsStreams(t *testing.T) {
	srt := Stream{Index: 2, Codec: "subrip", Language: "eng"}
	movText := Stream{Index: 3, Codec: "mov_text"}
	pgs := Stream{Index: 4, Codec: "hdmv_pgs_subtitle"}
	gpmd := Stream{Index: 5, Codec: "bin_data", Tag: "gpmd"}
	tmcd := Stream{Index: 6, Codec: "bin_data", Tag: "tmcd"}
	tests := []struct {
		name      string
		output    string
		mode      SubtitleMode
		src       probeResult
		want      []string
		not       []string
		warnings  []string // each in some warning
		nWarnings int      // how many warning lines
	}{
		{name: "text subtitles into mp4", output: "o.mp4", src: probeResult{Info: Info{Subtitles: []Stream{srt, movText}}},
			want: []string{"-map 1:2 -map 1:3", "-c:s:0 mov_text -c:s:1 mov_text", "-i file:in.mkv"}, nWarnings: 0},
		{name: "everything into mkv", output: "o.mkv", src: probeResult{Info: Info{Subtitles: []Stream{srt, movText, pgs}}},
			want: []string{"-map 1:2 -map 1:3 -map 1:4", "-c:s:0 copy -c:s:1 srt -c:s:2 copy"}, nWarnings: 0},
		{name: "bitmap subtitles do not fit mp4", output: "o.mp4", src: probeResult{Info: Info{Subtitles: []Stream{pgs, srt}}},
			want: []string{"-map 1:2", "-c:s:0 mov_text"}, not: []string{"1:4"},
			warnings: []string{"subtitle streams #4 (hdmv_pgs_subtitle) cannot be stored in .mp4", "write .mkv to keep them"}, nWarnings: 1},
		{name: "no subtitles in avi", output: "o.avi", src: probeResult{Info: Info{Subtitles: []Stream{srt}}},
			not: []string{"-map 1:2", "-c:s"}, warnings: []string{"subtitle streams #2 (subrip) cannot be stored in .avi"}, nWarnings: 1},
		{name: "subtitles dropped on request", output: "o.mkv", mode: SubtitlesDrop, src: probeResult{Info: Info{Subtitles: []Stream{srt}}},
			not: []string{"-map 1:2", "-c:s", "in.mkv"}, nWarnings: 0},
		{name: "data streams are left out, timecode kept", output: "o.mp4",
			src:      probeResult{Info: Info{Data: []Stream{gpmd, tmcd}}, timecode: "01:02:03:04"},
			want:     []string{"-timecode 01:02:03:04 -write_tmcd 1"},
			not:      []string{"1:5", "1:6", "-map 1:d"},
			warnings: []string{"data streams #5 (bin_data gpmd) are left out", "location"}, nWarnings: 1},
		{name: "cover art and attachments", output: "o.mkv", src: probeResult{Info: Info{CoverArt: true}, attachments: 2},
			warnings: []string{"cover picture", "2 attachments"}, nWarnings: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := logCapture()
			opts := EncoderOptions{Output: tt.output, Width: 64, Height: 48, FPS: Rational{25, 1}, CRF: 18, Preset: "fast",
				Audio: AudioDrop, Subtitles: tt.mode, AudioSource: "in.mkv", Logger: logger}
			args := strings.Join(ffmpegArgs(opts, "t"+filepath.Ext(tt.output), tt.src, true, 0), " ")
			checkArgs(t, args, tt.want, tt.not)
			for _, w := range tt.warnings {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("no warning with %q:\n%s", w, logs)
				}
			}
			if got := strings.Count(logs.String(), "level=WARN"); got != tt.nWarnings {
				t.Errorf("%d warnings:\n%s", got, logs)
			}
		})
	}
}

func TestParseAudioMode(t *testing.T) {
	for in, want := range map[string]AudioMode{"copy": AudioCopy, "drop": AudioDrop, " Drop ": AudioDrop} {
		if got, err := ParseAudioMode(in); err != nil || got != want {
			t.Errorf("ParseAudioMode(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got, _ := ParseAudioMode(want.String()); got != want {
			t.Errorf("ParseAudioMode(%v.String()) = %v", want, got)
		}
	}
	if _, err := ParseAudioMode("aac"); err == nil {
		t.Error("ParseAudioMode(aac) succeeded")
	}
}

// rectAt returns the w×h rectangle with top-left corner (x, y).
func rectAt(x, y, w, h int) image.Rectangle { return image.Rect(x, y, x+w, y+h) }

// skipIfWritable skips the test when dir is writable despite its mode, as
// it is for root.
func skipIfWritable(t *testing.T, dir string) {
	t.Helper()
	f, err := os.CreateTemp(dir, "probe-*")
	if err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("folder with mode 0555 is writable here (running as root?)")
	}
}

// waitGoroutines fails the test when the number of goroutines does not
// drop back to n: some goroutine outlived the encoder.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTranscodeArgs: the benchmark's reference encodes with exactly the
// settings of a run's encoder.
func TestTranscodeArgs(t *testing.T) {
	for _, codec := range []Codec{CodecX264, CodecH264NVENC} {
		opts := EncoderOptions{Output: "out.mkv", Width: 640, Height: 360, FPS: Rational{25, 1}, CRF: 21, Preset: "faster", Codec: codec, Threads: 3}
		opts.Logger, _ = logCapture()
		enc := strings.Join(ffmpegArgs(opts, "t.mkv", probeResult{}, true, 0), " ")
		ref := strings.Join(TranscodeArgs("-in.mp4", "-ref.mp4", codec, "faster", 21, 3), " ")
		settings := strings.Join(encoderArgs(codec, "faster", 21, 3), " ")
		if !strings.Contains(enc, settings) || !strings.Contains(ref, settings) {
			t.Errorf("%s: encoder settings differ:\n run: %s\n ref: %s", codec, enc, ref)
		}
		for _, want := range []string{"-i file:-in.mp4", "-map 0:v:0 -map 0:a?", "-c:a copy file:-ref.mp4"} {
			if !strings.Contains(ref, want) {
				t.Errorf("reference %q lacks %q", ref, want)
			}
		}
	}
}

func TestEncoderArgs(t *testing.T) {
	tests := []struct {
		codec   Codec
		preset  string
		threads int
		want    string
	}{
		{CodecX264, "veryfast", 0, "-c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p"},
		{CodecX264, "slow", 4, "-c:v libx264 -preset slow -crf 18 -pix_fmt yuv420p -threads 4"},
		{CodecH264NVENC, "veryfast", 4, "-c:v h264_nvenc -preset p2 -tune hq -rc vbr -cq 18 -b:v 0 -pix_fmt yuv420p"},
		{CodecHEVCNVENC, "veryslow", 0, "-c:v hevc_nvenc -preset p7 -tune hq -rc vbr -cq 18 -b:v 0 -pix_fmt yuv420p"},
	}
	for _, tt := range tests {
		if got := strings.Join(encoderArgs(tt.codec, Preset(tt.preset), 18, tt.threads), " "); got != tt.want {
			t.Errorf("%s %s %d:\n got %s\nwant %s", tt.codec, tt.preset, tt.threads, got, tt.want)
		}
	}
	opts := EncoderOptions{Output: "out.mp4", Width: 640, Height: 360, FPS: Rational{25, 1}, CRF: 18, Preset: "fast", Codec: CodecHEVCNVENC}
	opts.Logger, _ = logCapture()
	if args := strings.Join(ffmpegArgs(opts, "t.mp4", probeResult{}, true, 0), " "); !strings.Contains(args, "-tag:v hvc1") {
		t.Errorf("HEVC in MP4 without the hvc1 tag: %s", args)
	}
}

// fakeFFmpeg writes a script that stands in for ffmpeg's test encode:
// it prints msg and exits with code.
func fakeFFmpeg(t *testing.T, msg string, code int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ffmpeg")
	script := fmt.Sprintf("#!/bin/sh\necho %q >&2\nexit %d\n", msg, code)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveCodec(t *testing.T) {
	ctx := context.Background()
	noGPU := fakeFFmpeg(t, "[h264_nvenc @ 0x55cd52d22900] Cannot load libcuda.so.1\nError initializing output stream 0:0", 1)
	got, why := ResolveCodec(ctx, noGPU, CodecAuto)
	if got != CodecX264 || why == nil || why.Error() != "Cannot load libcuda.so.1" {
		t.Errorf("auto without a GPU: %s (%v), want libx264 with NVENC's reason", got, why)
	}
	gpu := fakeFFmpeg(t, "", 0)
	if got, why := ResolveCodec(ctx, gpu, CodecAuto); got != CodecH264NVENC || why != nil {
		t.Errorf("auto where NVENC works: %s (%v), want h264_nvenc", got, why)
	}
	for _, c := range []Codec{CodecX264, CodecHEVCNVENC} {
		if got, why := ResolveCodec(ctx, noGPU, c); got != c || why != nil {
			t.Errorf("%s asked for: got %s (%v)", c, got, why)
		}
	}
	if got, _ := ResolveCodec(ctx, noGPU, ""); got != CodecX264 {
		t.Errorf("no codec: %s, want libx264", got)
	}
	// This machine's real ffmpeg: libx264 always works.
	if err := ProbeCodec(ctx, testutil.Tool(t, "ffmpeg"), CodecX264); err != nil {
		t.Errorf("libx264 test encode: %v", err)
	}
	if _, err := ParseCodec("av1_nvenc"); err == nil || !strings.Contains(err.Error(), "use one of auto, libx264") {
		t.Errorf("ParseCodec(av1_nvenc) = %v", err)
	}
}
