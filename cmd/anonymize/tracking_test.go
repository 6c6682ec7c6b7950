package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testutil"
)

// missScene is the demo scene with the detector made to miss people: the
// blue walker is in view from frame 1 but detectable only from frame 6 (a
// person detected a few frames after they come into view), and the teal
// figure, walking briskly, is missed for 1, 2 and then 3 frames in a row.
func missScene() (synthclip.Scene, map[string][]int) {
	scene := synthclip.DefaultScene(640, 360, 45)
	scene.Disguise = map[string][]int{
		synthclip.LabelWalker:   {1, 2, 3, 4, 5},
		synthclip.LabelDiagonal: {10, 15, 16, 20, 21, 22},
	}
	return scene, scene.Disguise
}

// visibleHeads returns, as "frame:label", every head of a person in the
// scene that is not blacked out in the output out: a face the tool
// leaked. A head counts as visible when more than 2% of its inner disk
// (shrunk by 2 pixels, away from the codec's blur at its rim) is not black.
func visibleHeads(t *testing.T, scene synthclip.Scene, out string) []string {
	t.Helper()
	w, h, frames := testutil.DecodeBGR(t, out)
	if w != scene.Width || h != scene.Height || len(frames) != scene.Frames {
		t.Fatalf("output %dx%d with %d frames, want %dx%d with %d", w, h, len(frames), scene.Width, scene.Height, scene.Frames)
	}
	var leaks []string
	for i, px := range frames {
		for _, f := range scene.Figures(i) {
			if !f.Visible || f.Ghost {
				continue
			}
			r := f.HeadRadius - 2
			var all, lit int
			for y := f.Head.Y - r; y <= f.Head.Y+r; y++ {
				for x := f.Head.X - r; x <= f.Head.X+r; x++ {
					if x < 0 || y < 0 || x >= w || y >= h || (x-f.Head.X)*(x-f.Head.X)+(y-f.Head.Y)*(y-f.Head.Y) > r*r {
						continue
					}
					all++
					o := 3 * (y*w + x)
					if !isBlack([3]uint8{px[o], px[o+1], px[o+2]}) {
						lit++
					}
				}
			}
			if all > 0 && lit*50 > all {
				leaks = append(leaks, fmt.Sprintf("%d:%s", i, f.Label))
			}
		}
	}
	return leaks
}

// TestTrackingMasksMissedPeople: with the default settings no head is ever
// visible in the output, although the detector misses people for up to
// three frames and finds one five frames late; with --hold 0, exactly the
// frames the detector missed show a face, which is what tracking protects.
func TestTrackingMasksMissedPeople(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	scene, missed := missScene()
	dir := t.TempDir()
	in := filepath.Join(dir, "misses.mp4")
	if err := scene.Write(context.Background(), in, testutil.Tool(t, "ffmpeg")); err != nil {
		t.Fatal(err)
	}
	var want []string
	for label, frames := range missed {
		for _, i := range frames {
			want = append(want, fmt.Sprintf("%d:%s", i, label))
		}
	}
	slices.Sort(want)

	for _, tt := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"default hold", nil, nil},
		{"hold 0", []string{"--hold", "0"}, want},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.mp4")
			args := append(append([]string{"video", "--device", "cpu"}, tt.flags...), modelFlags(detector, pose)...)
			r := run(t, nil, append(args, in, out)...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			t.Log(lastLine(r.stderr))
			got := visibleHeads(t, scene, out)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("visible heads %v, want %v", got, tt.want)
			}
		})
	}
}
