package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

// TestProgressOutput runs the command in-process with a fake terminal: a
// bar on a terminal, nothing but the summary elsewhere, nothing at all
// (but warnings) with --quiet.
func TestProgressOutput(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	tests := []struct {
		name      string
		terminal  bool
		quiet     bool
		wantBar   bool
		wantTotal bool
	}{
		{"terminal", true, false, true, true},
		{"not a terminal", false, false, false, true},
		{"terminal, quiet", true, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, errOut := testFactory(t, map[string]string{"ANONYMIZE_ORT_LIB": testutil.ORTLib(t), "ANONYMIZE_AUDIT_MODEL": testutil.AuditModel(t)})
			f.IO.ErrIsTerminal = tt.terminal
			out := filepath.Join(t.TempDir(), "out.mp4")
			args := append([]string{"video", "--device", "cpu"}, modelFlags(detector, pose)...)
			if tt.quiet {
				args = append(args, "--quiet")
			}
			if code := Execute(context.Background(), f, append(args, clip, out)...); code != 0 {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			if _, err := os.Stat(out); err != nil {
				t.Fatal(err)
			}
			s := errOut.String()
			bar := strings.Contains(s, "frames/s)") && strings.Contains(s, "/45,")
			if bar != tt.wantBar {
				t.Errorf("progress bar drawn %v, want %v:\n%q", bar, tt.wantBar, s)
			}
			summary := strings.Contains(s, "people masked")
			if summary != tt.wantTotal {
				t.Errorf("summary printed %v, want %v:\n%s", summary, tt.wantTotal, s)
			}
			if tt.wantTotal && !strings.Contains(s, "45 frames") {
				t.Errorf("summary does not count %d frames:\n%s", scene.Frames, s)
			}
			if tt.quiet {
				for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
					if l != "" && !strings.HasPrefix(l, "anonymize: warning: ") {
						t.Errorf("--quiet printed %q", l)
					}
				}
			}
		})
	}
}

// TestBatchProgressOutput: on a terminal the batch bar shows the files
// done and the current file; the summary table goes to standard output.
func TestBatchProgressOutput(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	writeTree(t, in, map[string]string{"a/one.mp4": "<clip>", "b/two.mp4": "<clip>"})
	f, stdout, errOut := testFactory(t, map[string]string{"ANONYMIZE_ORT_LIB": testutil.ORTLib(t), "ANONYMIZE_AUDIT_MODEL": testutil.AuditModel(t)})
	f.IO.ErrIsTerminal = true
	args := append([]string{"batch", "--device", "cpu", "--jobs", "1"}, modelFlags(detector, pose)...)
	if code := Execute(context.Background(), f, append(args, in, out)...); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	// The rate's unit follows the speed (frames/s, /min or /hr on a
	// loaded machine).
	for _, want := range []string{`files 0/2 · a/one\.mp4`, `\(\d+/16, \d+ frames/(s|min|hr)\)`} {
		if !regexp.MustCompile(want).MatchString(errOut.String()) {
			t.Errorf("progress lacks %s:\n%q", want, errOut.String())
		}
	}
	if !strings.Contains(stdout.String(), "done     2") {
		t.Errorf("summary table missing from standard output:\n%s", stdout)
	}
}
