package mask

import (
	"image"
	"math"
	"testing"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/models"
)

// person is a 100x300 standing figure whose box starts at (100, 100).
var personBox = geom.Box{X1: 100, Y1: 100, X2: 200, Y2: 400}

func poseWith(kps map[int]geom.Keypoint) *geom.Pose {
	var p geom.Pose
	for k, v := range kps {
		p[k] = v
	}
	return &p
}

func TestPlan(t *testing.T) {
	cfg := DefaultConfig()
	floor := int(math.Ceil(0.08 * 300)) // 24
	tests := []struct {
		name string
		pose *geom.Pose
		cfg  Config
		want geom.Region
	}{
		{
			name: "nose and both shoulders: the larger distance",
			pose: poseWith(map[int]geom.Keypoint{
				models.KptNose:          {X: 150, Y: 130, Conf: 0.9},
				models.KptLeftShoulder:  {X: 180, Y: 170, Conf: 0.8}, // 50 away
				models.KptRightShoulder: {X: 126, Y: 162, Conf: 0.8}, // 40 away
			}),
			cfg:  cfg,
			want: geom.Region{Kind: geom.MaskNose, Center: image.Pt(150, 130), Radius: 50},
		},
		{
			name: "mask scale multiplies the radius",
			pose: poseWith(map[int]geom.Keypoint{
				models.KptNose:         {X: 150, Y: 130, Conf: 0.9},
				models.KptLeftShoulder: {X: 180, Y: 170, Conf: 0.8},
			}),
			cfg:  Config{KptThreshold: 0.3, Scale: 1.5, FloorFraction: 0.08},
			want: geom.Region{Kind: geom.MaskNose, Center: image.Pt(150, 130), Radius: 75},
		},
		{
			name: "unconfident shoulder is ignored",
			pose: poseWith(map[int]geom.Keypoint{
				models.KptNose:          {X: 150, Y: 130, Conf: 0.9},
				models.KptLeftShoulder:  {X: 150, Y: 230, Conf: 0.1}, // 100 away but not trusted
				models.KptRightShoulder: {X: 126, Y: 162, Conf: 0.8}, // 40 away
			}),
			cfg:  cfg,
			want: geom.Region{Kind: geom.MaskNose, Center: image.Pt(150, 130), Radius: 40},
		},
		{
			name: "shoulders too close: raised to the floor",
			pose: poseWith(map[int]geom.Keypoint{
				models.KptNose:         {X: 150, Y: 130, Conf: 0.9},
				models.KptLeftShoulder: {X: 153, Y: 134, Conf: 0.9}, // 5 away
			}),
			cfg:  cfg,
			want: geom.Region{Kind: geom.MaskNose, Center: image.Pt(150, 130), Radius: floor, Floored: true},
		},
		{
			name: "no shoulders: twice the face keypoint spread",
			pose: poseWith(map[int]geom.Keypoint{
				models.KptNose:    {X: 150, Y: 130, Conf: 0.9},
				models.KptLeftEar: {X: 170, Y: 125, Conf: 0.9}, // 20.6 away -> 41.2
			}),
			cfg:  cfg,
			want: geom.Region{Kind: geom.MaskNose, Center: image.Pt(150, 130), Radius: 42},
		},
		{
			name: "nose unconfident: centred on eyes and ears",
			pose: poseWith(map[int]geom.Keypoint{
				models.KptNose:          {X: 10, Y: 10, Conf: 0.1},
				models.KptLeftEye:       {X: 160, Y: 120, Conf: 0.7},
				models.KptRightEye:      {X: 140, Y: 120, Conf: 0.7},
				models.KptLeftEar:       {X: 170, Y: 124, Conf: 0.6},
				models.KptRightEar:      {X: 130, Y: 124, Conf: 0.6},
				models.KptLeftShoulder:  {X: 190, Y: 182, Conf: 0.9}, // from (150,122): 72.1
				models.KptRightShoulder: {X: 110, Y: 170, Conf: 0.9},
			}),
			cfg:  cfg,
			want: geom.Region{Kind: geom.MaskFaceKeypoints, Center: image.Pt(150, 122), Radius: 73},
		},
		{
			name: "one ear only: floor is 1.5x",
			pose: poseWith(map[int]geom.Keypoint{
				models.KptLeftEar: {X: 170, Y: 124, Conf: 0.6},
			}),
			cfg:  cfg,
			want: geom.Region{Kind: geom.MaskFaceKeypoints, Center: image.Pt(170, 124), Radius: 36, Floored: true},
		},
		{
			name: "nothing confident: head region of the box",
			pose: poseWith(map[int]geom.Keypoint{
				models.KptNose:         {X: 150, Y: 130, Conf: 0.2},
				models.KptLeftShoulder: {X: 180, Y: 170, Conf: 0.9},
			}),
			cfg:  cfg,
			want: geom.Region{Kind: geom.MaskHeadBox, Rect: image.Rect(100, 100, 200, 175)},
		},
		{
			name: "no pose at all: head region of the box",
			pose: nil,
			cfg:  cfg,
			want: geom.Region{Kind: geom.MaskHeadBox, Rect: image.Rect(100, 100, 200, 175)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan(personBox, tt.pose, tt.cfg)
			if got != tt.want {
				t.Errorf("Plan = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHeadBoxShapes(t *testing.T) {
	tests := []struct {
		box  geom.Box
		want image.Rectangle
	}{
		{geom.Box{X1: 0, Y1: 0, X2: 100, Y2: 300}, image.Rect(0, 0, 100, 75)},  // standing: quarter height
		{geom.Box{X1: 0, Y1: 0, X2: 200, Y2: 220}, image.Rect(0, 0, 200, 100)}, // upper body: half width
		{geom.Box{X1: 0, Y1: 0, X2: 400, Y2: 100}, image.Rect(0, 0, 400, 100)}, // lying: capped at the box
		{geom.Box{X1: 5.5, Y1: 7.2, X2: 6, Y2: 7.9}, image.Rect(5, 7, 6, 8)},   // sub-pixel: still one pixel
	}
	for _, tt := range tests {
		if got := headBox(tt.box); got.Rect != tt.want || got.Kind != geom.MaskHeadBox {
			t.Errorf("headBox(%+v) = %+v, want %v", tt.box, got, tt.want)
		}
	}
}

func TestCounts(t *testing.T) {
	var c Counts
	for _, r := range []geom.Region{
		{Kind: geom.MaskNose}, {Kind: geom.MaskNose, Floored: true}, {Kind: geom.MaskFaceKeypoints, Floored: true},
		{Kind: geom.MaskHeadBox}, {Kind: geom.MaskHeadBox},
	} {
		c.Add(r)
	}
	want := Counts{Nose: 2, FaceKeypoints: 1, HeadBox: 2, RadiusFloor: 2}
	if c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
	if c.Fallbacks() != 5 {
		t.Errorf("fallbacks %d, want 5", c.Fallbacks())
	}
}

func TestApplyBlacksOutExactlyTheRegions(t *testing.T) {
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(200, 200, 200, 0), 100, 120, gocv.MatTypeCV8UC3)
	defer frame.Close()
	disk := geom.Region{Kind: geom.MaskNose, Center: image.Pt(30, 40), Radius: 10}
	rect := geom.Region{Kind: geom.MaskHeadBox, Rect: image.Rect(80, 10, 100, 30)}
	Apply(&frame, []geom.Region{disk, rect})
	for y := 0; y < 100; y++ {
		for x := 0; x < 120; x++ {
			v := frame.GetVecbAt(y, x)
			dx, dy := float64(x-30), float64(y-40)
			inDisk := dx*dx+dy*dy <= 9*9
			outDisk := dx*dx+dy*dy > 11*11
			inRect := image.Pt(x, y).In(rect.Rect)
			black := v[0] == 0 && v[1] == 0 && v[2] == 0
			switch {
			case inDisk || inRect:
				if !black {
					t.Fatalf("pixel (%d,%d) = %v inside a region, want black", x, y, v)
				}
			case outDisk && !inRect:
				if black {
					t.Fatalf("pixel (%d,%d) outside every region is black", x, y)
				}
			}
		}
	}
}
