package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

func TestRun(t *testing.T) {
	testutil.Tool(t, "ffmpeg")
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string // empty: success
		wantOut string // file that must exist afterwards
	}{
		{"writes clip into new folder", []string{"-out", filepath.Join(dir, "sub", "clip.mp4"), "-frames", "3", "-audio=false"}, "", filepath.Join(dir, "sub", "clip.mp4")},
		{"missing out", []string{"-frames", "3"}, "usage", ""},
		{"stray argument", []string{"-out", filepath.Join(dir, "x.mp4"), "extra"}, "usage", ""},
		{"odd size", []string{"-out", filepath.Join(dir, "odd.mp4"), "-width", "641"}, "even", ""},
		{"no ffmpeg", []string{"-out", filepath.Join(dir, "y.mp4"), "-ffmpeg", filepath.Join(dir, "no-such-ffmpeg")}, "find ffmpeg", ""},
		{"help", []string{"-h"}, flag.ErrHelp.Error(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("run(%q) = %v; stderr: %s", tt.args, err, stderr.String())
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
			if tt.wantOut != "" {
				if st, err := os.Stat(tt.wantOut); err != nil || st.Size() == 0 {
					t.Errorf("output %s: %v", tt.wantOut, err)
				}
			}
			if errors.Is(err, flag.ErrHelp) && !strings.Contains(stderr.String(), "-out") {
				t.Errorf("help does not list the flags: %s", stderr.String())
			}
		})
	}
}
