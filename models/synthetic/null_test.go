package synthetic_test

import (
	"slices"
	"testing"

	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// TestNullModels runs both null models on a batch of two: every image gets
// the same NullPeople person boxes, every crop the same nose and shoulder
// peaks, whatever the pixels.
func TestNullModels(t *testing.T) {
	det, err := synthetic.NullDetectorModel()
	if err != nil {
		t.Fatal(err)
	}
	const b, h, w = 2, 40, 64
	pixels := make([]float32, b*3*h*w)
	for i := range pixels {
		pixels[i] = float32(i%7) - 3
	}
	mask := make([]int64, b*h*w)
	for i := range mask {
		mask[i] = 1
	}
	shapes, out := runModel(t, det, []feed{
		newFeed(t, "pixel_values", []int64{b, 3, h, w}, pixels),
		newFeed(t, "pixel_mask", []int64{b, h, w}, mask),
	}, "logits", "pred_boxes")
	if !slices.Equal(shapes[0], []int64{b, 100, 92}) || !slices.Equal(shapes[1], []int64{b, 100, 4}) {
		t.Fatalf("output shapes %v", shapes)
	}
	for img := range b {
		for q := range 100 {
			row := out[0][(img*100+q)*92 : (img*100+q+1)*92]
			best := slices.Index(row, slices.Max(row))
			want := 91 // no object
			if q < synthetic.NullPeople {
				want = 1 // person
			}
			if best != want {
				t.Fatalf("image %d query %d: class %d, want %d", img, q, best, want)
			}
			if q < synthetic.NullPeople {
				cx := out[1][(img*100+q)*4]
				if wantCX := (float32(q) + 0.5) / synthetic.NullPeople; cx != wantCX {
					t.Errorf("image %d person %d: box centre x %v, want %v", img, q, cx, wantCX)
				}
			}
		}
	}

	pose, err := synthetic.NullPoseModel()
	if err != nil {
		t.Fatal(err)
	}
	crops := make([]float32, b*3*256*192)
	shapes, out = runModel(t, pose, []feed{newFeed(t, "input", []int64{b, 3, 256, 192}, crops)}, "heatmaps")
	if !slices.Equal(shapes[0], []int64{b, 17, 64, 48}) {
		t.Fatalf("heatmaps shape %v", shapes[0])
	}
	for crop := range b {
		for k, want := range map[int][2]int{0: {12, 24}, 5: {24, 32}, 6: {24, 16}} {
			hm := out[0][(crop*17+k)*64*48 : (crop*17+k+1)*64*48]
			i := slices.Index(hm, slices.Max(hm))
			if got := [2]int{i / 48, i % 48}; got != want || hm[i] != 1 {
				t.Errorf("crop %d keypoint %d: peak %v at %v, want 1 at %v", crop, k, hm[i], got, want)
			}
		}
	}
}
