package video

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func TestReaderReadsEveryFrame(t *testing.T) {
	dir := t.TempDir()
	tests := []clipSpec{
		{name: "ntsc.mp4", frames: 61, acodec: "aac"},
		{name: "pal.mkv", rate: "25", frames: 37},
		{name: "mpeg4.avi", rate: "24", frames: 30},
		{name: "stream.ts", rate: "30", frames: 45, extra: []string{"-bf", "0"}},
		{name: "odd.mov", size: "161x99", rate: "50", frames: 20, vcodec: "mpeg4"},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			path := makeClip(t, dir, c)
			n, err := countFrames(t, path)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after %d frames: %v, want io.EOF", n, err)
			}
			if n != c.frames {
				t.Errorf("decoded %d frames, want %d", n, c.frames)
			}
		})
	}
}

func TestReaderFrames(t *testing.T) {
	dir := t.TempDir()
	path := makeClip(t, dir, clipSpec{name: "clip.mp4", size: "96x64", frames: 3})
	r, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if info := r.Info(); info.Width != 96 || info.Height != 64 || info.Path != path {
		t.Fatalf("Info() = %+v", info)
	}
	m := gocv.NewMat()
	defer m.Close()
	for i := range 3 {
		if _, err := r.Read(&m); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if m.Cols() != 96 || m.Rows() != 64 || m.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("frame %d is %dx%d %v", i, m.Cols(), m.Rows(), m.Type())
		}
	}
	// The end is sticky and Close is idempotent.
	for range 2 {
		if _, err := r.Read(&m); !errors.Is(err, io.EOF) {
			t.Fatalf("Read at end = %v, want io.EOF", err)
		}
	}
	r.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderTruncated(t *testing.T) {
	// A file cut short is refused when opened, before any work: its index
	// or header promises frames its packets do not hold.
	dir := t.TempDir()
	tests := []struct {
		clip   clipSpec
		approx bool
	}{
		// The index is at the front, so the declared count survives the
		// cut and is exact.
		{clip: clipSpec{name: "faststart.mp4", frames: 90, extra: []string{"-movflags", "+faststart"}}},
		// AVI declares its length in the header.
		{clip: clipSpec{name: "clip.avi", rate: "25", frames: 90}},
		// Matroska and WebM state the track's duration; the count is
		// estimated from it.
		{clip: clipSpec{name: "clip.mkv", rate: "25", frames: 90}, approx: true},
		{clip: clipSpec{name: "clip.webm", rate: "25", frames: 90, vcodec: "libvpx-vp9", extra: []string{"-deadline", "realtime"}}, approx: true},
	}
	for _, tt := range tests {
		t.Run(tt.clip.name, func(t *testing.T) {
			full := makeClip(t, dir, tt.clip)
			data, err := os.ReadFile(full)
			if err != nil {
				t.Fatal(err)
			}
			cut := filepath.Join(dir, "half-"+tt.clip.name)
			if err := os.WriteFile(cut, data[:len(data)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Open(context.Background(), cut, nil)
			if err == nil {
				r.Close()
			}
			var trunc *TruncatedError
			if !errors.As(err, &trunc) {
				t.Fatalf("Open(cut file) = %v, want *TruncatedError", err)
			}
			if trunc.Frame == 0 || trunc.Frame >= 90*2/3 || trunc.Approx != tt.approx || !trunc.Early || trunc.Path != cut {
				t.Errorf("TruncatedError %+v, want the frames of about half the file", trunc)
			}
			if tt.approx {
				if trunc.Expected < 85 || trunc.Expected > 95 {
					t.Errorf("estimated %d frames, want about 90", trunc.Expected)
				}
			} else if trunc.Expected != 90 {
				t.Errorf("expected %d frames, want 90", trunc.Expected)
			}
			want := fmt.Sprintf("%s: stream is corrupt or truncated: the file ends at frame %d of ", cut, trunc.Frame)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want it to start %q", err, want)
			}
		})
	}
}

func TestReaderStoppedEarly(t *testing.T) {
	// Decoding that ends before the last frame the packets hold (damage
	// the index does not show) fails; frames the decoder drops on the way
	// without stopping are only a warning.
	tl := &timeline{tb: Rational{1, 25}, pts: []int64{0, 1, 2, 3, 4, 5}, frames: 6, packets: 6, end: 6}
	for _, tt := range []struct {
		name      string
		decoded   int
		last      int64
		truncated bool
	}{
		{"all frames", 6, 5, false},
		{"one dropped midway", 5, 5, false},
		{"stopped at the fourth", 4, 3, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := logCapture()
			r := &Reader{src: probeResult{timeline: tl}, info: Info{Path: "x.mkv"}, log: logger, frames: tt.decoded, prev: tt.last}
			err := r.endOfStream()
			var trunc *TruncatedError
			if errors.As(err, &trunc) != tt.truncated {
				t.Fatalf("endOfStream() = %v, want truncated=%v", err, tt.truncated)
			}
			if tt.truncated {
				if got := err.Error(); got != fmt.Sprintf("stream is corrupt or truncated: decoding stopped at frame %d of 6", tt.decoded) {
					t.Errorf("error %q", got)
				}
				return
			}
			if !errors.Is(err, io.EOF) {
				t.Errorf("endOfStream() = %v, want io.EOF", err)
			}
			if warned := strings.Contains(logs.String(), "could not be decoded"); warned != (tt.decoded < 6) {
				t.Errorf("warning about undecodable frames: %v, want %v:\n%s", warned, tt.decoded < 6, logs)
			}
		})
	}
}

func TestReaderEndByCount(t *testing.T) {
	// Without ffprobe there is no packet scan: the end is judged against
	// the count OpenCV reads from the header or estimates.
	tests := []struct {
		name      string
		declared  int
		decoded   int
		truncated bool
	}{
		{"count reached", 100, 100, false},
		{"more than declared", 100, 101, false},
		{"two short", 100, 98, false},
		{"three short", 100, 97, true},
		{"long within 1%", 1000, 990, false},
		{"long beyond 1%", 1000, 989, true},
		{"unknown count", 0, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{info: Info{Path: "x.mp4", FrameCount: tt.declared}, frames: tt.decoded}
			err := r.endOfStream()
			var trunc *TruncatedError
			if got := errors.As(err, &trunc); got != tt.truncated {
				t.Errorf("endOfStream() = %v, want truncated=%v", err, tt.truncated)
			}
			if !tt.truncated && !errors.Is(err, io.EOF) {
				t.Errorf("endOfStream() = %v, want io.EOF", err)
			}
		})
	}
	r := &Reader{info: Info{Path: "x.mp4"}}
	if err := r.endOfStream(); err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "no video frames") {
		t.Errorf("no frames decoded: %v, want a 'no video frames' error", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.mp4")
	if _, err := Open(context.Background(), missing, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open(missing) = %v, want 'does not exist'", err)
	}
}
