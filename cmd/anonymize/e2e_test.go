package main

// End-to-end tests: the real binary, the real ONNX Runtime, OpenCV and
// ffmpeg, on a generated clip of known geometry and on real footage.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/internal/digest"
	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
	"github.com/anonymize-dev/anonymize/pose"
	"github.com/anonymize-dev/anonymize/video"
)

var (
	binOnce  sync.Once
	binPath  string
	binErr   error
	fixtures struct {
		once     sync.Once
		err      error
		detector string
		pose     string
		clip     string
		scene    synthclip.Scene
	}
)

// anonymizeBin builds the command once per test run.
func anonymizeBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := sharedSubdir("bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "anonymize")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// e2eFixtures writes the synthetic models and a 640x360 clip with audio.
func e2eFixtures(t *testing.T) (detector, pose, clip string, scene synthclip.Scene) {
	t.Helper()
	ffmpeg := testutil.Tool(t, "ffmpeg")
	f := &fixtures
	f.once.Do(func() {
		dir, err := sharedSubdir("data")
		if err != nil {
			f.err = err
			return
		}
		if f.detector, f.pose, f.err = synthetic.WriteModels(dir); f.err != nil {
			return
		}
		f.scene = synthclip.DefaultScene(640, 360, 45)
		f.clip = filepath.Join(dir, "scene.mp4")
		f.err = f.scene.Write(context.Background(), f.clip, ffmpeg)
	})
	if f.err != nil {
		t.Fatal(f.err)
	}
	return f.detector, f.pose, f.clip, f.scene
}

type result struct {
	code           int
	stdout, stderr string
}

// testEnv is the environment the binary runs in: this process's, with the
// test's ONNX Runtime and the audit's face detector.
func testEnv(t *testing.T) []string {
	t.Helper()
	return append(os.Environ(), "ANONYMIZE_ORT_LIB="+testutil.ORTLib(t), "ANONYMIZE_AUDIT_MODEL="+testutil.AuditModel(t))
}

// run runs the binary with the test's ONNX Runtime and extra environment.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(anonymizeBin(t), args...)
	cmd.Env = testEnv(t)
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

func modelFlags(detector, pose string) []string {
	return []string{"--detector-model", detector, "--pose-model", pose}
}

func TestVideoEndToEnd(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	out := filepath.Join(t.TempDir(), "out.mp4")
	// --hold 0: each mask where the detections put it, nowhere else, so
	// the output can be checked pixel by pixel against the scene's
	// geometry; TestTrackingMasksMissedPeople checks what tracking adds.
	args := append([]string{"video", "--device", "auto", "--hold", "0"}, modelFlags(detector, pose)...)
	r := run(t, nil, append(args, clip, out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("stderr:\n%s", r.stderr)
	summary := lastLine(r.stderr)
	if !strings.Contains(summary, fmt.Sprintf("%d frames", scene.Frames)) || !strings.Contains(summary, "fps on ") {
		t.Errorf("summary line %q", summary)
	}

	assertSameStreams(t, clip, out, scene.Frames)
	checkMasks(t, scene, clip, out)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// assertSameStreams checks the output keeps the input's size, exact frame
// rate and audio, and has the expected frame count.
func assertSameStreams(t *testing.T, in, out string, frames int) {
	t.Helper()
	ctx := context.Background()
	src, err := video.Probe(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := video.Probe(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Width != src.Width || dst.Height != src.Height {
		t.Errorf("size %dx%d, want %dx%d", dst.Width, dst.Height, src.Width, src.Height)
	}
	if dst.FPS != src.FPS {
		t.Errorf("frame rate %s, want exactly %s", dst.FPS, src.FPS)
	}
	if n := countFrames(t, out); n != frames {
		t.Errorf("%d frames, want %d", n, frames)
	}
	if dst.Codec != "h264" {
		t.Errorf("codec %s, want h264", dst.Codec)
	}
	if dst.HasAudio != src.HasAudio {
		t.Errorf("audio present %v, want %v", dst.HasAudio, src.HasAudio)
	}
	if src.HasAudio {
		va, aa := streamDuration(t, out, "v:0"), streamDuration(t, out, "a:0")
		if math.Abs(va-aa) > 0.1 {
			t.Errorf("audio lasts %.3fs, video %.3fs: out of step", aa, va)
		}
	}
}

// ffprobeValue returns the first value ffprobe prints for the query.
func ffprobeValue(t *testing.T, path string, query ...string) string {
	t.Helper()
	args := append([]string{"-v", "error"}, query...)
	args = append(args, "-of", "default=nw=1:nk=1", path)
	out, err := exec.Command(testutil.Tool(t, "ffprobe"), args...).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(first)
}

// countFrames decodes the video stream and counts its frames: exact for
// every container, where a header's count may be an estimate.
func countFrames(t *testing.T, path string) int {
	t.Helper()
	v := ffprobeValue(t, path, "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames")
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("ffprobe %s frame count %q: %v", path, v, err)
	}
	return n
}

func streamDuration(t *testing.T, path, stream string) float64 {
	t.Helper()
	out := ffprobeValue(t, path, "-select_streams", stream, "-show_entries", "stream=duration")
	d, err := strconv.ParseFloat(out, 64)
	if err != nil {
		t.Fatalf("ffprobe %s stream %s duration %q: %v", path, stream, out, err)
	}
	return d
}

// checkMasks compares every output frame with the input and the scene's
// ground truth: the expected masks are black, the ghost (score 0.5, below
// the threshold) and the rest of each figure are untouched, and pixels far
// from any figure match the input within codec tolerance.
func checkMasks(t *testing.T, scene synthclip.Scene, in, out string) {
	t.Helper()
	inCap, err := gocv.VideoCaptureFile(in)
	if err != nil {
		t.Fatal(err)
	}
	defer inCap.Close()
	outCap, err := gocv.VideoCaptureFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer outCap.Close()
	a, b := gocv.NewMat(), gocv.NewMat()
	defer a.Close()
	defer b.Close()

	masked := map[string]int{}
	for i := 0; i < scene.Frames; i++ {
		if !inCap.Read(&a) || !outCap.Read(&b) {
			t.Fatalf("frame %d: could not read both videos", i)
		}
		pa, _ := a.DataPtrUint8()
		pb, _ := b.DataPtrUint8()
		w, h := a.Cols(), a.Rows()
		at := func(p []uint8, x, y int) [3]uint8 { o := 3 * (y*w + x); return [3]uint8{p[o], p[o+1], p[o+2]} }

		// Where something may legitimately change: each visible figure's
		// box grown by a margin, and its mask.
		var busy []image.Rectangle
		for _, f := range scene.Figures(i) {
			if !f.Visible {
				continue
			}
			busy = append(busy, f.Box.Inset(-12))
			switch {
			case f.Ghost:
				// Below the threshold: must not be masked.
				c := f.TorsoCentre
				if v := at(pb, c.X, c.Y); isBlack(v) {
					t.Errorf("frame %d: the ghost (score 0.5) was masked at %v", i, c)
				}
			case f.HasNose:
				c, r := f.ExpectedDisk()
				busy = append(busy, image.Rect(c.X-int(r)-12, c.Y-int(r)-12, c.X+int(r)+12, c.Y+int(r)+12))
				// Keypoints come back within about a heatmap cell (4 model
				// input pixels), so centre and radius may each be off by
				// that much in frame pixels, and the codec softens the
				// disk's edge by a pixel or two: inside that margin the
				// disk must be black.
				scale := pose.CropTransform(geom.Box{X1: float32(f.Box.Min.X), Y1: float32(f.Box.Min.Y),
					X2: float32(f.Box.Max.X), Y2: float32(f.Box.Max.Y)}, models.PoseInputWidth, models.PoseInputHeight, 1.25).Scale
				inner := r - 6/scale - 2.5
				n, bad := 0, 0
				for y := max(0, c.Y-int(inner)); y <= min(h-1, c.Y+int(inner)); y++ {
					for x := max(0, c.X-int(inner)); x <= min(w-1, c.X+int(inner)); x++ {
						if math.Hypot(float64(x-c.X), float64(y-c.Y)) > inner {
							continue
						}
						n++
						if !isBlack(at(pb, x, y)) {
							bad++
						}
					}
				}
				if n == 0 || bad > 0 {
					t.Errorf("frame %d %s: %d of %d pixels inside the expected disk (centre %v, r %.1f) are not black", i, f.Label, bad, n, c, r)
				} else {
					masked[f.Label]++
				}
				if v := at(pb, f.TorsoCentre.X, f.TorsoCentre.Y); isBlack(v) {
					t.Errorf("frame %d %s: torso at %v is black: the mask covers too much", i, f.Label, f.TorsoCentre)
				}
			default:
				// No keypoints: the head region of the box.
				bw, bh := f.Box.Dx(), f.Box.Dy()
				hh := min(max(bh/4, bw/2), bh)
				head := image.Rect(f.Box.Min.X+3, f.Box.Min.Y+3, f.Box.Max.X-3, f.Box.Min.Y+hh-3)
				bad := 0
				for y := head.Min.Y; y < head.Max.Y; y++ {
					for x := head.Min.X; x < head.Max.X; x++ {
						if !isBlack(at(pb, x, y)) {
							bad++
						}
					}
				}
				if bad > 0 || head.Empty() {
					t.Errorf("frame %d %s: %d pixels of the head region %v are not black", i, f.Label, bad, head)
				} else {
					masked[f.Label]++
				}
			}
		}

		// Far from every figure, the output is the input, re-encoded.
		var sum, n, outliers int
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := image.Pt(x, y)
				near := false
				for _, r := range busy {
					if p.In(r) {
						near = true
						break
					}
				}
				if near {
					continue
				}
				va, vb := at(pa, x, y), at(pb, x, y)
				for c := 0; c < 3; c++ {
					d := int(va[c]) - int(vb[c])
					if d < 0 {
						d = -d
					}
					sum += d
					if d > 24 {
						outliers++
					}
				}
				n += 3
			}
		}
		if mean := float64(sum) / float64(n); mean > 3 || outliers > n/1000 {
			t.Errorf("frame %d: background differs from the input: mean %.2f, %d values off by more than 24", i, mean, outliers)
		}
	}
	for _, label := range []string{synthclip.LabelWalker, synthclip.LabelDiagonal, synthclip.LabelNoNose} {
		if masked[label] == 0 {
			t.Errorf("figure %s was never checked as masked: the scene did not exercise it", label)
		}
	}
	t.Logf("frames with a verified mask, by figure: %v", masked)
}

func isBlack(v [3]uint8) bool { return v[0] <= 24 && v[1] <= 24 && v[2] <= 24 }

func TestVideoFramesLimitCutsAudio(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	out := filepath.Join(t.TempDir(), "first.mp4")
	r := run(t, nil, append(append([]string{"video", "-q", "--frames", "12"}, modelFlags(detector, pose)...), clip, out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	info, err := video.Probe(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	if countFrames(t, out) != 12 || info.FPS.Num != scene.FPSNum || info.FPS.Den != scene.FPSDen || !info.HasAudio {
		t.Errorf("got %+v, want 12 frames at %d/%d with audio", info, scene.FPSNum, scene.FPSDen)
	}
	if a, want := streamDuration(t, out, "a:0"), 12*float64(scene.FPSDen)/float64(scene.FPSNum); math.Abs(a-want) > 0.06 {
		t.Errorf("audio lasts %.3fs, want %.3fs (the 12 frames)", a, want)
	}
	if strings.TrimSpace(r.stderr) != "" && !onlyExpectedWarnings(r.stderr) {
		t.Errorf("--quiet printed more than warnings:\n%s", r.stderr)
	}
}

func onlyExpectedWarnings(s string) bool {
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(l, "anonymize: warning: ") {
			return false
		}
	}
	return true
}

// TestRealFootage runs the real decode and encode paths on Debian's
// opencv-doc clips: vtest.avi (pedestrians, 10 fps, no audio) and
// Megamind.avi (23.976 fps, AC3 audio). The synthetic models do not find
// these people; what is checked is that the video comes out whole.
func TestRealFootage(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	clips := filepath.Join(testutil.RepoRoot(t), "testdata", "clips")
	tests := []struct {
		file   string
		frames int // --frames; 0: all
		want   int
		ext    string
	}{
		{"Megamind.avi", 0, 270, ".mp4"},
		{"vtest.avi", 100, 100, ".mkv"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := filepath.Join(clips, tt.file)
			if _, err := os.Stat(in); err != nil {
				testutil.Missing(t, in, "run `make testdata`")
			}
			out := filepath.Join(t.TempDir(), strings.TrimSuffix(tt.file, ".avi")+tt.ext)
			args := append([]string{"video", "-q", "--device", "cpu", "--frames", strconv.Itoa(tt.frames)}, modelFlags(detector, pose)...)
			r := run(t, nil, append(args, in, out)...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			assertSameStreams(t, in, out, tt.want)
		})
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the output folder: %s", e.Name())
	}
}

func TestDoctor(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	r := run(t, nil, append([]string{"doctor"}, modelFlags(detector, pose)...)...)
	if r.code != 0 {
		t.Fatalf("doctor exit %d with everything installed:\n%s%s", r.code, r.stdout, r.stderr)
	}
	sum, _, err := digest.FileSHA256(detector)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"OpenCV", "read back-ends", "FFMPEG",
		"ONNX Runtime", "1.24.1", "CPUExecutionProvider", "loads", "CUDAExecutionProvider", "TensorrtExecutionProvider",
		"NVML", "ffmpeg version", "libx264", "encodes", "h264_nvenc", "hevc_nvenc",
		detector + " sha256 " + sum,
		"inputs: pixel_values float32[?,3,?,?], pixel_mask int64[?,?,?]",
		"outputs: logits float32[?,100,92], pred_boxes float32[?,100,4]",
		"outputs: heatmaps float32[?,17,64,48]",
		"synthetic demo model",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*ok\s+CPUExecutionProvider\s+loads$`).MatchString(r.stdout) {
		t.Errorf("doctor output lacks the CPU provider loading:\n%s", r.stdout)
	}

	// Without models, doctor says so and exits 1.
	r = run(t, []string{"ANONYMIZE_MODELS=" + t.TempDir()}, "doctor")
	if r.code != exitError || !strings.Contains(r.stdout, "FAIL  detector") {
		t.Errorf("doctor without models: exit %d\n%s", r.code, r.stdout)
	}
}

// TestWithoutFFmpeg: with neither ffmpeg nor ffprobe on PATH the video is
// still anonymized, through OpenCV's writer, with a warning.
func TestWithoutFFmpeg(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	testutil.Tool(t, "ffprobe") // to inspect the result, not for the run
	out := filepath.Join(t.TempDir(), "out.mp4")
	r := run(t, []string{"PATH=" + t.TempDir()}, append(append([]string{"video", "--device", "cpu"}, modelFlags(detector, pose)...), clip, out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: ffmpeg not found") || !strings.Contains(lastLine(r.stderr), "encoded with opencv mp4v") {
		t.Errorf("no fallback warning or wrong encoder in the summary:\n%s", r.stderr)
	}
	if n := countFrames(t, out); n != scene.Frames {
		t.Errorf("%d frames, want %d", n, scene.Frames)
	}
	if c := ffprobeValue(t, out, "-select_streams", "v:0", "-show_entries", "stream=codec_name"); c != "mpeg4" {
		t.Errorf("codec %s, want mpeg4 (mp4v)", c)
	}
}
