package main

// Broken models must stop the run with one line naming the model (and the
// frame, when a frame showed it), and leave no output: never pass as
// "nobody in this video".

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/internal/testmodels"
	"github.com/anonymize-dev/anonymize/internal/testutil"
)

func TestBrokenModelsFailClosed(t *testing.T) {
	detector, pose, clip, _ := e2eFixtures(t)
	tests := []struct {
		kind  string
		role  string // which model is swapped for the broken one
		extra []string
		// want are regular expressions the error line must match; MODEL
		// stands for the broken model's path.
		want []string
	}{
		// Wrong on a frame: the check at load passes, the first frame with
		// a bright nose stops the run.
		{kind: testmodels.NaNLogits, role: "detector",
			want: []string{`: frame \d+: detector model MODEL: returned NaN in logits`, `cannot be taken to mean that nobody is there`}},
		{kind: testmodels.InfLogits, role: "detector",
			want: []string{`: frame \d+: detector model MODEL: returned an infinite value in logits`}},
		{kind: testmodels.NaNBoxes, role: "detector",
			want: []string{`: frame \d+: detector model MODEL: returned NaN in pred_boxes`}},
		{kind: testmodels.NaNHeatmaps, role: "pose",
			want: []string{`: frame \d+: pose model MODEL: returned NaN in heatmaps`}},
		// Wrong at load.
		{kind: testmodels.ReversedMask, role: "detector",
			want: []string{`detector model MODEL fails its check on a plain grey picture: returned NaN in logits`, `pixel_mask of reversed polarity`}},
		{kind: testmodels.FixedSize, role: "detector",
			want: []string{`"pixel_values" fixes dimension 2 at 750, which anonymize sets for each video`}},
		{kind: testmodels.Classes91, role: "detector",
			want: []string{`has 91 classes, not the 92 of the COCO label set`, `--person-class`}},
		{kind: testmodels.Classes91, role: "detector", extra: []string{"--person-class", "95"},
			want: []string{`--person-class 95 is not a class of a model with 91 classes`}},
		{kind: testmodels.ZeroQueries, role: "detector",
			want: []string{`"logits" dimension 1 is 0`}},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", i, tt.kind), func(t *testing.T) {
			broken := testmodels.WriteBroken(t, tt.kind)
			det, pos := detector, pose
			if tt.role == "detector" {
				det = broken
			} else {
				pos = broken
			}
			dir := t.TempDir()
			args := append([]string{"video", "-q", "--device", "cpu"}, modelFlags(det, pos)...)
			args = append(append(args, tt.extra...), clip, filepath.Join(dir, "out.mp4"))
			r := run(t, nil, args...)
			t.Log(lastLine(r.stderr))
			assertOneLineError(t, r, exitError)
			for _, w := range tt.want {
				re := regexp.MustCompile(regexp.QuoteMeta("MODEL"))
				pattern := re.ReplaceAllString(w, regexp.QuoteMeta(broken))
				if !regexp.MustCompile(pattern).MatchString(r.stderr) {
					t.Errorf("stderr does not match %q:\n%s", pattern, r.stderr)
				}
			}
			assertEmptyDir(t, dir)
		})
	}
}

// TestPersonClassForOtherLabelSets: a detector with another class head
// runs once its person class is named.
func TestPersonClassForOtherLabelSets(t *testing.T) {
	_, pose, clip, scene := e2eFixtures(t)
	det := testmodels.WriteBroken(t, testmodels.Classes91)
	out := filepath.Join(t.TempDir(), "out.mp4")
	r := run(t, nil, append(append([]string{"video", "-q", "--device", "cpu", "--person-class", "1"}, modelFlags(det, pose)...), clip, out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if n := countFrames(t, out); n != scene.Frames {
		t.Errorf("%d frames, want %d", n, scene.Frames)
	}
}

// TestPoseFixedBatch: a pose model exported with a fixed batch of one is
// fed one person at a time, with a warning, and masks exactly as the
// model with a free batch does.
func TestPoseFixedBatch(t *testing.T) {
	detector, pose, clip, _ := e2eFixtures(t)
	dir := t.TempDir()
	free, fixed := filepath.Join(dir, "free.mp4"), filepath.Join(dir, "fixed.mp4")
	r := run(t, nil, append(append([]string{"video", "--device", "cpu"}, modelFlags(detector, pose)...), clip, free)...)
	if r.code != 0 {
		t.Fatalf("free batch: exit %d\n%s", r.code, r.stderr)
	}
	want := peopleMasked(t, r.stderr)
	one := testmodels.WritePoseFixedBatch(t, 1)
	r = run(t, nil, append(append([]string{"video", "--device", "cpu"}, modelFlags(detector, one)...), clip, fixed)...)
	if r.code != 0 {
		t.Fatalf("fixed batch: exit %d\n%s", r.code, r.stderr)
	}
	if !regexp.MustCompile(`fixed batch of 1: crops go through it 1 at a time instead of --pose-batch 16`).MatchString(r.stderr) {
		t.Errorf("no warning about the fixed batch:\n%s", r.stderr)
	}
	if got := peopleMasked(t, r.stderr); got != want {
		t.Errorf("%d people masked, %d with a free batch", got, want)
	}
	_, _, a := testutil.DecodeBGR(t, free)
	_, _, b := testutil.DecodeBGR(t, fixed)
	for i := range a {
		if d := testutil.MeanAbsDiff(a[i], b[i]); d != 0 {
			t.Errorf("frame %d differs by %.3f from the free-batch output", i, d)
		}
	}
}

// TestDoctorRunsTheModels: doctor runs the models on a test picture, so a
// DETR whose pixel_mask is reversed, which fits every contract, fails
// there instead of at the first video.
func TestDoctorRunsTheModels(t *testing.T) {
	_, pose, _, _ := e2eFixtures(t)
	broken := testmodels.WriteBroken(t, testmodels.ReversedMask)
	r := run(t, nil, append([]string{"doctor"}, modelFlags(broken, pose)...)...)
	if r.code != exitError {
		t.Errorf("doctor exit %d, want %d", r.code, exitError)
	}
	for _, want := range []string{"FAIL", "fails its check on a plain grey picture", "pixel_mask of reversed polarity", "answers finite numbers on a test picture"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, r.stdout)
		}
	}
}
