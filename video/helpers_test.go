package video

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"gocv.io/x/gocv"
)

// clipSpec describes a synthetic test clip made with ffmpeg's lavfi
// sources.
type clipSpec struct {
	name   string // file name; the extension picks the container
	size   string // WxH; default 160x120
	rate   string // default 30000/1001
	frames int    // default 60
	vcodec string // default libx264 (mpeg4 for .avi)
	acodec string // "" writes no audio
	// audioFrames, when > frames, makes the audio as long as that many
	// video frames (a source longer than what the test processes).
	audioFrames int
	extra       []string // further output options
}

// makeClip writes the clip described by c into dir and returns its path.
func makeClip(t *testing.T, dir string, c clipSpec) string {
	t.Helper()
	if c.size == "" {
		c.size = "160x120"
	}
	if c.rate == "" {
		c.rate = "30000/1001"
	}
	if c.frames == 0 {
		c.frames = 60
	}
	if c.vcodec == "" {
		c.vcodec = "libx264"
		if strings.HasSuffix(c.name, ".avi") {
			c.vcodec = "mpeg4"
		}
	}
	rate, err := ParseRational(c.rate)
	if err != nil {
		t.Fatal(err)
	}
	var w, h int
	if _, err := fmt.Sscanf(c.size, "%dx%d", &w, &h); err != nil {
		t.Fatalf("clip size %q: %v", c.size, err)
	}
	// testsrc2 only draws even sizes; odd ones are scaled. trim ends the
	// video after exactly c.frames frames (-frames:v would also stop the
	// audio early).
	src := fmt.Sprintf("testsrc2=size=%dx%d:rate=%s", w+w%2, h+h%2, c.rate)
	if w%2 != 0 || h%2 != 0 {
		src += fmt.Sprintf(",scale=%d:%d", w, h)
	}
	src += fmt.Sprintf(",trim=end_frame=%d", c.frames)
	path := filepath.Join(dir, c.name)
	args := []string{"-f", "lavfi", "-i", src}
	if c.acodec != "" {
		n := max(c.frames, c.audioFrames)
		secs := strconv.FormatFloat(rate.Duration(n).Seconds(), 'f', 6, 64)
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+secs)
	}
	args = append(args, "-c:v", c.vcodec)
	if c.vcodec == "libx264" {
		args = append(args, "-pix_fmt", "yuv420p")
	}
	if c.acodec != "" {
		args = append(args, "-c:a", c.acodec)
	}
	args = append(args, c.extra...)
	runFFmpeg(t, append(args, path)...)
	return path
}

// runFFmpeg runs ffmpeg with args, failing the test on error.
func runFFmpeg(t *testing.T, args ...string) {
	t.Helper()
	ffmpeg := testutil.Tool(t, "ffmpeg")
	cmd := exec.Command(ffmpeg, append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ffprobeJSON returns ffprobe's full report on path.
func ffprobeJSON(t *testing.T, path string) ffprobeOutput {
	t.Helper()
	out, err := runFFprobe(context.Background(), testutil.Tool(t, "ffprobe"), path)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// streamDuration returns the duration of the first stream of codecType, in
// seconds.
func streamDuration(t *testing.T, path, codecType string) float64 {
	t.Helper()
	for _, s := range ffprobeJSON(t, path).Streams {
		if s.CodecType == codecType {
			d, err := strconv.ParseFloat(s.Duration, 64)
			if err != nil {
				t.Fatalf("%s stream of %s has no duration: %q", codecType, path, s.Duration)
			}
			return d
		}
	}
	t.Fatalf("%s has no %s stream", path, codecType)
	return 0
}

// probe is Probe failing the test on error; it insists on ffprobe so that
// results do not depend on which prober ran.
func probe(t *testing.T, path string) Info {
	t.Helper()
	r, err := probeWith(context.Background(), path, testutil.Tool(t, "ffprobe"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Info
}

// countFrames decodes path to the end and returns the number of frames and
// the error that ended the stream.
func countFrames(t *testing.T, path string) (int, error) {
	t.Helper()
	_, times, err := readAll(t, path)
	return len(times), err
}

// readAll decodes path with Reader until Read fails, returning the
// frames' times and the error that ended the stream.
func readAll(t *testing.T, path string) (Info, []time.Duration, error) {
	t.Helper()
	r, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := gocv.NewMat()
	defer m.Close()
	var times []time.Duration
	for {
		pts, err := r.Read(&m)
		if err != nil {
			if len(times) != r.Frames() {
				t.Errorf("Frames() = %d, counted %d", r.Frames(), len(times))
			}
			return r.Info(), times, err
		}
		times = append(times, pts)
	}
}

// encodeOpts returns EncoderOptions that reproduce in's video at out.
func encodeOpts(in Info, out string) EncoderOptions {
	return EncoderOptions{
		Output:      out,
		Width:       in.Width,
		Height:      in.Height,
		FPS:         in.FPS,
		TimeBase:    in.TimeBase,
		SAR:         in.SAR,
		Preset:      "ultrafast",
		AudioSource: in.Path,
	}
}

// transcode copies up to limit frames (all when limit is 0) of the video
// at opts.AudioSource through an Encoder built from opts and returns the
// number of frames written.
func transcode(t *testing.T, opts EncoderOptions, limit int) int {
	t.Helper()
	r, err := Open(context.Background(), opts.AudioSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	enc, err := NewEncoder(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	m := gocv.NewMat()
	defer m.Close()
	n := 0
	for limit == 0 || n < limit {
		pts, err := r.Read(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			enc.Abort()
			t.Fatal(err)
		}
		if err := enc.WriteFrame(m, pts); err != nil {
			enc.Abort()
			t.Fatal(err)
		}
		n++
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

var testClock struct {
	sync.Mutex
	n map[Encoder]int
}

// tick returns the time of the next frame written to enc, at 25 fps: for
// tests that write made-up frames.
func tick(enc Encoder) time.Duration {
	testClock.Lock()
	defer testClock.Unlock()
	if testClock.n == nil {
		testClock.n = map[Encoder]int{}
	}
	n := testClock.n[enc]
	testClock.n[enc]++
	return time.Duration(n) * 40 * time.Millisecond
}

// logCapture returns a logger that records everything into a buffer.
func logCapture() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// solidFrame returns a w×h BGR frame filled with one colour.
func solidFrame(w, h int, b, g, r float64) gocv.Mat {
	return gocv.NewMatWithSizeFromScalar(gocv.NewScalar(b, g, r, 0), h, w, gocv.MatTypeCV8UC3)
}
