package detect

import (
	"math"
	"testing"
)

func TestResizeTarget(t *testing.T) {
	tests := []struct {
		name         string
		h, w         int
		wantH, wantW int
	}{
		// Worked through DetrImageProcessor's get_size_with_aspect_ratio by hand.
		{"1080p capped by the long side", 1080, 1920, 750, 1333},
		{"4:3 fits", 480, 640, 800, 1066},
		{"portrait", 1920, 1080, 1333, 750},
		{"already at size", 800, 1000, 800, 1000},
		{"square upscaled", 100, 100, 800, 800},
		{"vtest 768x576", 576, 768, 800, 1066},
		{"very wide", 200, 2000, 133, 1333},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, w := ResizeTarget(tt.h, tt.w, 800, 1333)
			if h != tt.wantH || w != tt.wantW {
				t.Errorf("ResizeTarget(%d, %d) = %dx%d (h x w), want %dx%d", tt.h, tt.w, h, w, tt.wantH, tt.wantW)
			}
			if max(h, w) > 1333 {
				t.Errorf("long side %d exceeds 1333", max(h, w))
			}
		})
	}
}

// logitsFor builds one query's logits with the given person and no-object
// values and every other class at 0.
func logitsFor(classes int, person, other, noObject float32) []float32 {
	l := make([]float32, classes)
	l[1] = person
	l[2] = other
	l[classes-1] = noObject
	return l
}

func TestPostprocess(t *testing.T) {
	const classes = 92
	// Query 0: a confident person at the centre of a 200x100 frame.
	// Query 1: "no object" wins.
	// Query 2: person score exactly 0.5 (ln 91 against 91 zero logits).
	// Query 3: another class (label 2) beats person.
	// Query 4: a person whose box spills out of the frame (clamped).
	// Query 5: a person entirely left of the frame (dropped).
	var logits []float32
	logits = append(logits, logitsFor(classes, 10, 0, 0)...)
	logits = append(logits, logitsFor(classes, 0, 0, 10)...)
	logits = append(logits, logitsFor(classes, float32(math.Log(91)), 0, 0)...)
	logits = append(logits, logitsFor(classes, 5, 9, 0)...)
	logits = append(logits, logitsFor(classes, 10, 0, 0)...)
	logits = append(logits, logitsFor(classes, 10, 0, 0)...)
	boxes := []float32{
		0.5, 0.5, 0.2, 0.4,
		0.5, 0.5, 0.2, 0.4,
		0.25, 0.25, 0.1, 0.1,
		0.5, 0.5, 0.2, 0.4,
		0.95, 0.1, 0.2, 0.4,
		-0.2, 0.5, 0.1, 0.1,
	}
	personScore := float32(math.Exp(10) / (math.Exp(10) + 91))

	tests := []struct {
		name      string
		threshold float64
		want      []Detection
	}{
		{"default threshold", 0.7, []Detection{
			{Box: Box{80, 30, 120, 70}, Score: personScore},
			{Box: Box{170, 0, 200, 30}, Score: personScore},
		}},
		{"low threshold keeps the 0.5 person", 0.5, []Detection{
			{Box: Box{80, 30, 120, 70}, Score: personScore},
			{Box: Box{40, 20, 60, 30}, Score: 0.5},
			{Box: Box{170, 0, 200, 30}, Score: personScore},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Postprocess(logits, boxes, 6, classes, 200, 100, tt.threshold)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d detections %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				assertBox(t, got[i].Box, tt.want[i].Box)
				if math.Abs(float64(got[i].Score-tt.want[i].Score)) > 1e-5 {
					t.Errorf("detection %d score %v, want %v", i, got[i].Score, tt.want[i].Score)
				}
			}
		})
	}
}

func TestPostprocessRejectsBadShapes(t *testing.T) {
	if _, err := Postprocess(make([]float32, 10), make([]float32, 8), 2, 2, 10, 10, 0.7); err == nil {
		t.Error("2 classes cannot hold person and no-object: want an error")
	}
	if _, err := Postprocess(make([]float32, 10), make([]float32, 8), 2, 92, 10, 10, 0.7); err == nil {
		t.Error("short logits: want an error")
	}
}

func assertBox(t *testing.T, got, want Box) {
	t.Helper()
	const eps = 1e-3
	if math.Abs(float64(got.X1-want.X1)) > eps || math.Abs(float64(got.Y1-want.Y1)) > eps ||
		math.Abs(float64(got.X2-want.X2)) > eps || math.Abs(float64(got.Y2-want.Y2)) > eps {
		t.Errorf("box %+v, want %+v", got, want)
	}
}
