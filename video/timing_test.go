package video

import (
	"errors"
	"io"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

// timingClip is a clip made the way cameras, phones, screen recorders and
// editors make them, with what a player must see.
type timingClip struct {
	name     string
	frames   int  // frames ffmpeg decodes
	variable bool // unevenly spaced frames
	audio    bool
	make     func(t *testing.T, path string)
}

// vfrPTS spaces 45 frames at 30 fps with two gaps, like a phone that
// dropped its rate in the dark: setpts expression for ffmpeg.
const vfrPTS = "setpts='(N+if(gte(N,10),15,0)+if(gte(N,30),7,0))/30/TB'"

func timingClips(dir string) []timingClip {
	src := "testsrc2=size=160x96:rate=30,trim=end_frame=45"
	// Noise, unlike a tone, tells any two instants apart: the sync check
	// compares what is heard while a frame shows.
	sine := "anoisesrc=d=3:c=white:r=48000:a=0.5:seed=7"
	ff := func(args ...string) func(*testing.T, string) {
		return func(t *testing.T, path string) { runFFmpeg(t, append(args, path)...) }
	}
	return []timingClip{
		{
			// B-frames: the decoder returns the first frame with a packet
			// time below zero and the last ones with none.
			name: "cfr-bframes.mp4", frames: 45, audio: true,
			make: ff("-f", "lavfi", "-i", src, "-f", "lavfi", "-i", sine, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"),
		},
		{
			name: "vfr.mkv", frames: 45, variable: true, audio: true,
			make: ff("-f", "lavfi", "-i", src, "-f", "lavfi", "-i", sine, "-vf", vfrPTS, "-fps_mode", "passthrough",
				"-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "libvorbis"),
		},
		{
			name: "vfr.mp4", frames: 45, variable: true, audio: true,
			make: ff("-f", "lavfi", "-i", src, "-f", "lavfi", "-i", sine, "-vf", vfrPTS, "-fps_mode", "passthrough",
				"-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"),
		},
		{
			// A screen recording paused for a second.
			name: "gap.webm", frames: 30, variable: true,
			make: ff("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=30,trim=end_frame=60",
				"-vf", "select='not(between(n,20,49))',setpts=PTS-STARTPTS", "-fps_mode", "passthrough",
				"-c:v", "libvpx-vp9", "-deadline", "realtime"),
		},
		{
			// The last sample lies past the end of the edit list: players
			// (and decoders) drop it although the sample table lists it.
			name: "discarded-last.mp4", frames: 44,
			make: func(t *testing.T, path string) {
				runFFmpeg(t, "-f", "lavfi", "-i", src, "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
				testutil.ShortenEditList(t, path, 34*time.Millisecond)
			},
		},
		{
			// A clip cut without re-encoding: the frames before the cut
			// stay in the file, hidden by the edit list.
			name: "cut.mp4", frames: 36, audio: true,
			make: func(t *testing.T, path string) {
				full := filepath.Join(dir, "uncut.mp4")
				runFFmpeg(t, "-f", "lavfi", "-i", src, "-f", "lavfi", "-i", sine, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", full)
				runFFmpeg(t, "-ss", "0.3", "-i", full, "-c", "copy", path)
			},
		},
		{
			// MPEG-4 part 2 with B-frames in AVI: reordered packets carry
			// no presentation time.
			name: "bframes.avi", frames: 45,
			make: ff("-f", "lavfi", "-i", src, "-c:v", "mpeg4", "-bf", "2"),
		},
		{
			// A broadcast capture: timestamps start at 1.4 s, and the
			// video half a second after the audio.
			name: "late-video.ts", frames: 45, audio: true,
			make: ff("-itsoffset", "0.5", "-f", "lavfi", "-i", src, "-f", "lavfi", "-i", "anoisesrc=d=2:r=48000:seed=3",
				"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-bf", "3", "-pix_fmt", "yuv420p", "-c:a", "aac"),
		},
	}
}

// readTimes decodes path with Reader to its end and returns each frame's
// time.
func readTimes(t *testing.T, path string) (Info, []time.Duration) {
	t.Helper()
	info, times, err := readAll(t, path)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("after %d frames: %v", len(times), err)
	}
	return info, times
}

// fromFirst counts times from the first one.
func fromFirst(times []time.Duration) []time.Duration {
	out := make([]time.Duration, len(times))
	for i, v := range times {
		out[i] = v - times[0]
	}
	return out
}

// oneTick is one tick of time base tb, rounded up to the nanosecond.
func oneTick(tb *big.Rat) time.Duration {
	ns := new(big.Rat).Mul(tb, big.NewRat(int64(time.Second), 1))
	f, _ := ns.Float64()
	return time.Duration(f) + 1
}

func sameTimes(t *testing.T, what string, got, want []time.Duration, tolerance time.Duration) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d frames, want %d", what, len(got), len(want))
		return
	}
	bad := 0
	for i := range got {
		if d := got[i] - want[i]; d > tolerance || d < -tolerance {
			if bad < 3 {
				t.Errorf("%s: frame %d at %v, want %v", what, i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d frames off in all", what, bad)
	}
}

// TestReaderTimestamps checks that every frame comes with the time ffmpeg
// itself gives it, whatever the container, the rate and the decoder's
// quirks.
func TestReaderTimestamps(t *testing.T) {
	dir := t.TempDir()
	for _, c := range timingClips(dir) {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			c.make(t, path)
			want := testutil.FrameTimes(t, path)
			if len(want) != c.frames {
				t.Fatalf("test setup: ffmpeg decodes %d frames, want %d", len(want), c.frames)
			}
			info, got := readTimes(t, path)
			sameTimes(t, "Reader", got, want, time.Microsecond)
			if info.FrameCount != c.frames || !info.FrameCountExact {
				t.Errorf("FrameCount %d (exact %v), want %d exactly", info.FrameCount, info.FrameCountExact, c.frames)
			}
			if info.VariableRate != c.variable {
				t.Errorf("VariableRate = %v, want %v (rate %s)", info.VariableRate, c.variable, info.Rate())
			}
		})
	}
}

// TestEncoderKeepsTimestamps runs each clip through Reader and Encoder and
// checks that the output shows every frame when the input does (within
// one tick of the output's clock) and keeps the audio where it was.
func TestEncoderKeepsTimestamps(t *testing.T) {
	dir := t.TempDir()
	for _, c := range timingClips(dir) {
		for _, ext := range []string{".mp4", ".mkv"} {
			t.Run(c.name+" to "+ext, func(t *testing.T) {
				path := filepath.Join(dir, c.name)
				if _, err := checkInput(path); err != nil {
					c.make(t, path)
				}
				in := probe(t, path)
				out := filepath.Join(t.TempDir(), "out"+ext)
				if n := transcode(t, encodeOpts(in, out), 0); n != c.frames {
					t.Fatalf("transcoded %d frames, want %d", n, c.frames)
				}
				// A container may start the output elsewhere (Matroska has no
				// negative times, so the audio's priming samples shift
				// everything; MP4 edit lists round the start to the
				// millisecond): each frame is compared counting from the
				// first, and the start is checked against the sound.
				want := fromFirst(testutil.FrameTimes(t, path))
				got := fromFirst(testutil.FrameTimes(t, out))
				sameTimes(t, "output", got, want, oneTick(testutil.StreamTimeBase(t, out, "video")))
				if c.audio {
					acodec := "copy"
					if !audioCopyable(ext, in.audioCodecs(t)) && ext != ".mkv" {
						acodec = "aac"
					}
					testutil.CheckInStep(t, path, out, acodec)
				}
			})
		}
	}
}

// audioCodecs lists the codecs of the audio streams of the probed file.
func (i Info) audioCodecs(t *testing.T) []string {
	t.Helper()
	var codecs []string
	for _, s := range ffprobeJSON(t, i.Path).Streams {
		if s.CodecType == "audio" {
			codecs = append(codecs, s.CodecName)
		}
	}
	return codecs
}
