package video

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
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
	r, err := Open(context.Background(), path)
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
		if err := r.Read(&m); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if m.Cols() != 96 || m.Rows() != 64 || m.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("frame %d is %dx%d %v", i, m.Cols(), m.Rows(), m.Type())
		}
	}
	// The end is sticky and Close is idempotent.
	for range 2 {
		if err := r.Read(&m); !errors.Is(err, io.EOF) {
			t.Fatalf("Read at end = %v, want io.EOF", err)
		}
	}
	r.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderTruncated(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		clip clipSpec
	}{
		// The index is at the front, so the declared count survives the
		// cut and is exact.
		{clipSpec{name: "faststart.mp4", frames: 90, extra: []string{"-movflags", "+faststart"}}},
		// AVI declares its length in the header.
		{clipSpec{name: "clip.avi", rate: "25", frames: 90}},
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
			n, err := countFrames(t, cut)
			var trunc *TruncatedError
			if !errors.As(err, &trunc) {
				t.Fatalf("after %d frames: %v, want *TruncatedError", n, err)
			}
			if trunc.Frame != n || trunc.Expected != tt.clip.frames || n >= tt.clip.frames || n == 0 {
				t.Errorf("TruncatedError %+v after %d decoded frames, want Frame %d of %d", trunc, n, n, tt.clip.frames)
			}
			want := "stream is corrupt or truncated: decoding stopped at frame " + strconv.Itoa(n) + " of " + strconv.Itoa(tt.clip.frames)
			if err.Error() != want || trunc.Path != cut {
				t.Errorf("error %q for %s, want %q for %s", err, trunc.Path, want, cut)
			}
		})
	}
}

func TestReaderEndTolerance(t *testing.T) {
	// Unit test of the end-of-stream decision on counts that are hard to
	// produce with real files.
	tests := []struct {
		name      string
		declared  int
		exact     bool
		decoded   int
		truncated bool
	}{
		{"exact count reached", 100, true, 100, false},
		{"exact count one short", 100, true, 99, true},
		{"more than declared", 100, true, 101, false},
		{"estimate two short", 100, false, 98, false},
		{"estimate three short", 100, false, 97, true},
		{"long estimate within 1%", 1000, false, 990, false},
		{"long estimate beyond 1%", 1000, false, 989, true},
		{"unknown count", 0, false, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reader{info: Info{Path: "x.mp4", FrameCount: tt.declared, FrameCountExact: tt.exact}, frames: tt.decoded}
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
	if _, err := Open(context.Background(), missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open(missing) = %v, want 'does not exist'", err)
	}
}
