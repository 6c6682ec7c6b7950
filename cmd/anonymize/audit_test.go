package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

// photoClip animates a photograph into a 2-second 1280x720 clip that pans
// and zooms in (25 fps), as footage of a still scene would; mask, when
// set, first blacks out that box of the photograph ("x:y:w:h").
func photoClip(t *testing.T, dir, photo, mask string) string {
	t.Helper()
	out := filepath.Join(dir, fmt.Sprintf("%s-%t.mp4", filepath.Base(photo), mask != ""))
	vf := ""
	if mask != "" {
		vf = "drawbox=" + mask + ":color=black:t=fill,"
	}
	vf += "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2," +
		"zoompan=z='min(1+0.01*on,1.5)':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=50:s=1280x720:fps=25"
	mustRun(t, testutil.Tool(t, "ffmpeg"), "-v", "error", "-y", "-i", testutil.Photo(t, photo), "-vf", vf,
		"-frames:v", "50", "-c:v", "libx264", "-pix_fmt", "yuv420p", out)
	return out
}

type auditJSON struct {
	Files []struct {
		Path            string  `json:"path"`
		Frames          int     `json:"frames"`
		Audited         int     `json:"frames_audited"`
		FramesWithLeaks int     `json:"frames_with_leaks"`
		LeakRate        float64 `json:"leak_rate"`
		Leaks           []struct {
			Frame int     `json:"frame"`
			Score float64 `json:"score"`
		} `json:"leaks"`
	} `json:"files"`
}

// TestAuditCommand audits clips made of the opencv-doc photographs: the
// faces are found in (nearly) every frame; blacked out, and in a clip of a
// notebook, nothing is; the exit status says which. (messi5.jpg is not
// used blacked out: its crowd holds real faces, which the zoom makes large
// enough to find.)
func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	flags := []string{"audit", "--json", "--device", "cpu", "--audit-model", testutil.AuditModel(t)}
	tests := []struct {
		photo, mask string
		leaks       bool
	}{
		{photo: "messi5.jpg", leaks: true},
		{photo: "basketball1.png", leaks: true},
		{photo: "basketball1.png", mask: "58:88:58:58"},
		{photo: "ela_original.jpg"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s masked=%t", tt.photo, tt.mask != ""), func(t *testing.T) {
			clip := photoClip(t, dir, tt.photo, tt.mask)
			r := run(t, nil, append(flags, clip)...)
			want := 0
			if tt.leaks {
				want = exitLeak
			}
			if r.code != want {
				t.Fatalf("exit %d, want %d\n%s", r.code, want, r.stderr)
			}
			var got auditJSON
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got.Files) != 1 {
				t.Fatalf("JSON: %v\n%s", err, r.stdout)
			}
			f := got.Files[0]
			t.Logf("%s: %d of %d frames with a face found (%.0f%%)", clip, f.FramesWithLeaks, f.Audited, 100*f.LeakRate)
			if f.Frames != 50 || f.Audited != 50 {
				t.Errorf("%d frames read, %d audited; want 50 each", f.Frames, f.Audited)
			}
			if tt.leaks && f.LeakRate < 0.9 {
				t.Errorf("the face was found in %.0f%% of the frames, want at least 90%%", 100*f.LeakRate)
			}
			if !tt.leaks && f.FramesWithLeaks != 0 {
				t.Errorf("%d frames with a face where there is none: %+v", f.FramesWithLeaks, f.Leaks)
			}
		})
	}
}

// TestAuditDemoOutput: the anonymized demo scene has no face left, and the
// table says so.
func TestAuditDemoOutput(t *testing.T) {
	detector, pose, clip, scene := e2eFixtures(t)
	out := filepath.Join(t.TempDir(), "out.mp4")
	if r := run(t, nil, append(append([]string{"video", "-q", "--device", "cpu"}, modelFlags(detector, pose)...), clip, out)...); r.code != 0 {
		t.Fatalf("video: exit %d\n%s", r.code, r.stderr)
	}
	r := run(t, nil, "audit", "--device", "cpu", "--every", "5", "--audit-model", testutil.AuditModel(t), out)
	if r.code != 0 {
		t.Fatalf("audit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := fmt.Sprintf("%s  %d      %d        0            0.0%%       -", out, scene.Frames, (scene.Frames+4)/5)
	if lines := nonEmptyLines(r.stdout); len(lines) != 2 || lines[1] != want {
		t.Errorf("table:\n%s\nwant the row %q", r.stdout, want)
	}
	// Evidence is written only when asked for, and only for leaks.
	ev := filepath.Join(t.TempDir(), "evidence")
	run(t, nil, "audit", "--device", "cpu", "--every", "5", "--evidence", ev, "--audit-model", testutil.AuditModel(t), out)
	if _, err := os.Stat(ev); !os.IsNotExist(err) {
		t.Errorf("evidence folder written for a clean video: %v", err)
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestAuditCatchesWhatTheModelsMiss runs the synthetic models, which do not
// see real people, on a clip of a real face: the face stays in the output,
// and the audit says so, in the video's summary and in a batch's report;
// with --audit-fail the batch fails the file and removes its output.
func TestAuditCatchesWhatTheModelsMiss(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	dir := t.TempDir()
	clip := photoClip(t, dir, "basketball1.png", "")

	t.Run("video", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out.mp4")
		r := run(t, nil, append(append([]string{"video", "--device", "cpu", "--audit", "full"}, modelFlags(detector, pose)...), clip, out)...)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "anonymize: warning: the audit found a face in 50 of the 50 frames it searched") {
			t.Errorf("no warning about the leaks:\n%s", r.stderr)
		}
		if s := lastLine(r.stderr); !strings.Contains(s, "audit: 50 frames with a face of 50 searched (first at 0s, frame 0)") {
			t.Errorf("summary %q does not report the leaks", s)
		}
	})

	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch audit-fail=%t", fail), func(t *testing.T) {
			in, out := filepath.Join(t.TempDir(), "in"), filepath.Join(t.TempDir(), "out")
			writeTree(t, in, map[string]string{"scene.mp4": "<clip>"})
			copyFile(t, clip, filepath.Join(in, "face.mp4"))
			args := append([]string{"batch", "-q", "--device", "cpu"}, modelFlags(detector, pose)...)
			if fail {
				args = append(args, "--audit-fail")
			}
			r := run(t, nil, append(args, in, out)...)
			wantCode := 0
			if fail {
				wantCode = 3
			}
			if r.code != wantCode {
				t.Fatalf("exit %d, want %d\n%s", r.code, wantCode, r.stderr)
			}
			rep := readReport(t, filepath.Join(out, "anonymize-report.json"))
			if rep.SchemaVersion != 2 || rep.Totals.Audit == nil || rep.Totals.Audit.FilesWithLeaks != 1 {
				t.Fatalf("report version %d, audit totals %+v: want version 2 and one file with leaks", rep.SchemaVersion, rep.Totals.Audit)
			}
			for _, f := range rep.Files {
				if f.Audit == nil || f.Audit.FramesAudited == 0 {
					t.Errorf("%s was not audited: %+v", f.Input, f.Audit)
					continue
				}
				leaks := f.Audit.FramesWithLeaks > 0
				if leaks != (f.Input == "face.mp4") {
					t.Errorf("%s: %d frames with leaks", f.Input, f.Audit.FramesWithLeaks)
				}
				if f.Input != "face.mp4" {
					continue
				}
				if len(f.Audit.FirstLeaks) == 0 || f.Audit.FirstLeaks[0].Score < 0.75 {
					t.Errorf("face.mp4: first leaks %+v", f.Audit.FirstLeaks)
				}
				_, err := os.Stat(filepath.Join(out, "face.mp4"))
				switch {
				case fail && (f.Status != "failed" || !strings.Contains(f.Error, "the output was removed (--audit-fail)")):
					t.Errorf("face.mp4 is %s (%s), want failed by the audit", f.Status, f.Error)
				case fail && !os.IsNotExist(err):
					t.Errorf("face.mp4's output is still in the tree: %v", err)
				case !fail && (f.Status != "done" || err != nil):
					t.Errorf("face.mp4 is %s, output %v; want done and in place", f.Status, err)
				}
			}
		})
	}
}
