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
