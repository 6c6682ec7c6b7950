package synthclip

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

type probeStream struct {
	CodecType    string `json:"codec_type"`
	CodecName    string `json:"codec_name"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	RFrameRate   string `json:"r_frame_rate"`
	AvgFrameRate string `json:"avg_frame_rate"`
	NbReadFrames string `json:"nb_read_frames"`
	PixFmt       string `json:"pix_fmt"`
	Duration     string `json:"duration"`
}

func probe(t *testing.T, path string) []probeStream {
	t.Helper()
	out, err := exec.Command(testutil.Tool(t, "ffprobe"), "-v", "error", "-count_frames",
		"-show_entries", "stream=codec_type,codec_name,width,height,r_frame_rate,avg_frame_rate,nb_read_frames,pix_fmt,duration",
		"-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var res struct{ Streams []probeStream }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("parse ffprobe output: %v\n%s", err, out)
	}
	return res.Streams
}

// decodeFrames reads every frame of path back the way the program does.
func decodeFrames(t *testing.T, path string) []frameBuf {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	var frames []frameBuf
	for vc.Read(&m) {
		if m.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("decoded frame type %v, want CV_8UC3", m.Type())
		}
		frames = append(frames, frameBuf{m.Cols(), m.Rows(), m.ToBytes()})
	}
	return frames
}

func TestWriteRoundTrip(t *testing.T) {
	ffmpeg := testutil.Tool(t, "ffmpeg")
	tests := []struct {
		name  string
		scene Scene
	}{
		{"360p with audio", DefaultScene(640, 360, 30)},
		{"360p silent", func() Scene { s := DefaultScene(640, 360, 12); s.Audio = false; s.Seed = 3; return s }()},
		{"1080p", DefaultScene(1920, 1080, 6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.scene
			path := filepath.Join(t.TempDir(), "clip.mp4")
			if err := s.Write(context.Background(), path, ffmpeg); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if _, err := os.Stat(path + ".part"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary file left behind: %v", err)
			}
			checkStreams(t, s, probe(t, path))

			frames := decodeFrames(t, path)
			if len(frames) != s.Frames {
				t.Fatalf("decoded %d frames, want %d", len(frames), s.Frames)
			}
			for i, img := range frames {
				if img.w != s.Width || img.h != s.Height {
					t.Fatalf("frame %d is %dx%d, want %dx%d", i, img.w, img.h, s.Width, s.Height)
				}
				checkEncodedFrame(t, s, i, img)
				checkResizedFrame(t, s, i, img)
			}
		})
	}
}

func checkStreams(t *testing.T, s Scene, streams []probeStream) {
	t.Helper()
	var video, audio []probeStream
	for _, st := range streams {
		switch st.CodecType {
		case "video":
			video = append(video, st)
		case "audio":
			audio = append(audio, st)
		}
	}
	if len(video) != 1 {
		t.Fatalf("%d video streams, want 1: %+v", len(video), streams)
	}
	v := video[0]
	rate := strconv.Itoa(s.FPSNum) + "/" + strconv.Itoa(s.FPSDen)
	if v.CodecName != "h264" || v.Width != s.Width || v.Height != s.Height || v.RFrameRate != rate ||
		v.AvgFrameRate != rate || v.NbReadFrames != strconv.Itoa(s.Frames) || v.PixFmt != "yuv420p" {
		t.Errorf("video stream %+v, want h264 yuv420p %dx%d at %s with %d frames", v, s.Width, s.Height, rate, s.Frames)
	}
	if !s.Audio {
		if len(audio) != 0 {
			t.Errorf("silent scene has audio streams: %+v", audio)
		}
		return
	}
	if len(audio) != 1 || audio[0].CodecName != "aac" {
		t.Fatalf("audio streams %+v, want one aac", audio)
	}
	// AAC works in 1024-sample frames (21 ms at 48 kHz), so allow two.
	d, err := strconv.ParseFloat(audio[0].Duration, 64)
	if err != nil || math.Abs(d-s.Duration()) > 0.043 {
		t.Errorf("audio lasts %q s, want the video's %.3f s", audio[0].Duration, s.Duration())
	}
}

// checkEncodedFrame proves the synthetic models will see, in the encoded
// clip, what Figures says: each colour the detector looks for spans its
// figure's Box (give or take the encoder's blur at the edges) and appears
// nowhere else, and the keypoint colours are found at the dots only.
func checkEncodedFrame(t *testing.T, s Scene, frame int, img frameBuf) {
	t.Helper()
	const slack = 2 // px the box may grow or shrink by at a blurred edge
	figs := s.Figures(frame)
	for _, f := range figs {
		got := img.boxOf(func(p synthetic.RGB) bool { return near(p, f.Colour, synthetic.Tolerance) })
		if !f.Visible {
			if !got.Empty() {
				t.Errorf("frame %d: %s is absent but pixels at %v pass for its colour", frame, f.Label, got)
			}
			continue
		}
		if !boxesClose(got, f.Box, slack) {
			t.Errorf("frame %d %s: pixels passing for its colour span %v, Box is %v", frame, f.Label, got, f.Box)
		}
		if p := img.atPt(f.TorsoCentre); !near(p, f.Colour, synthetic.Tolerance) {
			t.Errorf("frame %d %s: torso centre is %v after encoding, want within %d of %v", frame, f.Label, p, synthetic.Tolerance, f.Colour)
		}
	}
	for _, kp := range []struct {
		name string
		c    synthetic.RGB
		at   func(Figure) image.Point
	}{
		{"nose", synthetic.NoseColour, func(f Figure) image.Point { return f.Nose }},
		{"left shoulder", synthetic.LeftShoulderColour, func(f Figure) image.Point { return f.LeftShoulder }},
		{"right shoulder", synthetic.RightShoulderColour, func(f Figure) image.Point { return f.RightShoulder }},
	} {
		var dots []image.Point
		reach := 0
		for _, f := range figs {
			if !f.Visible || !f.HasNose {
				continue
			}
			at := kp.at(f)
			dots = append(dots, at)
			reach = max(reach, f.DotRadius+slack)
			if p := img.atPt(at); !near(p, kp.c, synthetic.Tolerance) {
				t.Errorf("frame %d %s: %s centre %v is %v after encoding, want within %d of %v", frame, f.Label, kp.name, at, p, synthetic.Tolerance, kp.c)
			}
		}
		stray := 0
		var first image.Point
		for y := 0; y < img.h; y++ {
			for x := 0; x < img.w; x++ {
				if !near(img.at(x, y), kp.c, synthetic.Tolerance) || nearAny(image.Pt(x, y), dots, reach) {
					continue
				}
				if stray == 0 {
					first = image.Pt(x, y)
				}
				stray++
			}
		}
		if stray > 0 {
			t.Errorf("frame %d: %d pixels away from every %s dot pass for its colour, first at %v", frame, stray, kp.name, first)
		}
	}
}

func boxesClose(a, b image.Rectangle, slack int) bool {
	abs := func(v int) int { return max(v, -v) }
	return abs(a.Min.X-b.Min.X) <= slack && abs(a.Min.Y-b.Min.Y) <= slack &&
		abs(a.Max.X-b.Max.X) <= slack && abs(a.Max.Y-b.Max.Y) <= slack
}

func nearAny(p image.Point, centres []image.Point, r int) bool {
	for _, c := range centres {
		d := p.Sub(c)
		if d.X*d.X+d.Y*d.Y <= r*r {
			return true
		}
	}
	return false
}

func TestWriteErrors(t *testing.T) {
	ffmpeg := testutil.Tool(t, "ffmpeg")
	background := func() context.Context { return context.Background() }
	cancelled := func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	cancelSoon := func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		time.AfterFunc(200*time.Millisecond, cancel)
		return ctx
	}
	tests := []struct {
		name   string
		ctx    func() context.Context
		scene  Scene
		ffmpeg string
		want   string
	}{
		{"invalid scene", background, DefaultScene(641, 360, 3), ffmpeg, "even"},
		{"no ffmpeg", background, DefaultScene(640, 360, 3), filepath.Join(t.TempDir(), "no-such-ffmpeg"), "start ffmpeg"},
		{"ffmpeg fails", background, DefaultScene(640, 360, 3), "false", "ffmpeg failed"},
		{"cancelled", cancelled, DefaultScene(640, 360, 3), ffmpeg, context.Canceled.Error()},
		// Long enough that the cancellation lands while frames are encoded.
		{"cancelled while encoding", cancelSoon, DefaultScene(640, 360, 5000), ffmpeg, context.Canceled.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "clip.mp4")
			err := tt.scene.Write(tt.ctx(), path, tt.ffmpeg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write() = %v, want an error containing %q", err, tt.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("a failed Write left %v behind", left)
			}
		})
	}
}

// detrShortSide is the short side DETR's preprocessing resizes frames to.
const detrShortSide = 800

// checkResizedFrame repeats the detector's half of checkEncodedFrame on the
// frame resized the way DETR's preprocessing does, which blends
// neighbouring pixels once more.
func checkResizedFrame(t *testing.T, s Scene, frame int, img frameBuf) {
	t.Helper()
	src, err := gocv.NewMatFromBytes(img.h, img.w, gocv.MatTypeCV8UC3, img.b)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	scale := float64(detrShortSide) / float64(min(img.w, img.h))
	gocv.Resize(src, &dst, image.Point{}, scale, scale, gocv.InterpolationLinear)
	resized := frameBuf{dst.Cols(), dst.Rows(), dst.ToBytes()}
	slack := 2 + int(math.Ceil(scale))
	for _, f := range s.Figures(frame) {
		got := resized.boxOf(func(p synthetic.RGB) bool { return near(p, f.Colour, synthetic.Tolerance) })
		if !f.Visible {
			if !got.Empty() {
				t.Errorf("frame %d resized x%.2f: %s is absent but pixels at %v pass for its colour", frame, scale, f.Label, got)
			}
			continue
		}
		want := image.Rect(
			int(float64(f.Box.Min.X)*scale), int(float64(f.Box.Min.Y)*scale),
			int(math.Ceil(float64(f.Box.Max.X)*scale)), int(math.Ceil(float64(f.Box.Max.Y)*scale)))
		if !boxesClose(got, want, slack) {
			t.Errorf("frame %d resized x%.2f %s: pixels passing for its colour span %v, want %v", frame, scale, f.Label, got, want)
		}
	}
}
