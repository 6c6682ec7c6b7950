package detect

import (
	"math"
	"strings"
	"testing"

	"github.com/anonymize-dev/anonymize/geom"
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
		want      []geom.Detection
	}{
		{"default threshold", 0.7, []geom.Detection{
			{Box: geom.Box{X1: 80, Y1: 30, X2: 120, Y2: 70}, Score: personScore},
			{Box: geom.Box{X1: 170, Y1: 0, X2: 200, Y2: 30}, Score: personScore},
		}},
		{"low threshold keeps the 0.5 person", 0.5, []geom.Detection{
			{Box: geom.Box{X1: 80, Y1: 30, X2: 120, Y2: 70}, Score: personScore},
			{Box: geom.Box{X1: 40, Y1: 20, X2: 60, Y2: 30}, Score: 0.5},
			{Box: geom.Box{X1: 170, Y1: 0, X2: 200, Y2: 30}, Score: personScore},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Postprocess(logits, boxes, 6, classes, 200, 100, Config{Threshold: tt.threshold})
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
	cfg := Config{Threshold: 0.7}
	if _, err := Postprocess(make([]float32, 10), make([]float32, 8), 2, 2, 10, 10, cfg); err == nil {
		t.Error("2 classes cannot hold person and no-object: want an error")
	}
	if _, err := Postprocess(make([]float32, 10), make([]float32, 8), 2, 92, 10, 10, cfg); err == nil {
		t.Error("short logits: want an error")
	}
}

func TestPostprocessClassHead(t *testing.T) {
	// A head of another width is another label set: its class 1 need not
	// be person, so it is refused unless the person class is named.
	const queries = 2
	for _, tt := range []struct {
		name            string
		classes, person int
		wantErr         string
		wantPeople      int
	}{
		{"COCO", 92, 0, "", 1},
		{"80 classes", 81, 0, "has 81 classes, not the 92 of the COCO label set", 0},
		{"91 classes", 91, 0, "--person-class", 0},
		{"80 classes, person named", 81, 3, "", 1},
		{"person class out of range", 81, 80, "--person-class 80 is not a class", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			person := tt.person
			if person == 0 {
				person = 1
			}
			logits := make([]float32, queries*tt.classes)
			logits[person] = 10                  // query 0: a person
			logits[tt.classes+tt.classes-1] = 10 // query 1: no object
			boxes := []float32{0.5, 0.5, 0.2, 0.2, 0.5, 0.5, 0.2, 0.2}
			got, err := Postprocess(logits, boxes, queries, tt.classes, 100, 100, Config{Threshold: 0.7, PersonClass: tt.person})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.wantPeople {
				t.Errorf("got %v, %v; want %d people", got, err, tt.wantPeople)
			}
		})
	}
}

func TestPostprocessFailsClosed(t *testing.T) {
	// Not a finite number anywhere in the outputs, even in a query that
	// would not be a person: the frame is never reported as empty.
	const classes, queries = 92, 3
	base := func() ([]float32, []float32) {
		logits := make([]float32, queries*classes)
		for q := range queries {
			logits[q*classes+classes-1] = 10 // no object everywhere
		}
		return logits, make([]float32, queries*4)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tt := range []struct {
		name   string
		spoil  func(logits, boxes []float32)
		tensor string
		what   string
	}{
		{"NaN logit", func(l, _ []float32) { l[classes+5] = nan }, "logits", "NaN"},
		{"infinite logit", func(l, _ []float32) { l[2*classes] = -inf }, "logits", "an infinite value"},
		{"NaN box", func(_, b []float32) { b[7] = nan }, "pred_boxes", "NaN"},
		{"infinite box", func(_, b []float32) { b[0] = inf }, "pred_boxes", "an infinite value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logits, boxes := base()
			tt.spoil(logits, boxes)
			dets, err := Postprocess(logits, boxes, queries, classes, 100, 100, Config{Threshold: 0.7})
			if err == nil {
				t.Fatalf("got %d detections and no error", len(dets))
			}
			if want := "returned " + tt.what + " in " + tt.tensor; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		})
	}
	logits, boxes := base()
	if dets, err := Postprocess(logits, boxes, queries, classes, 100, 100, Config{Threshold: 0.7}); err != nil || len(dets) != 0 {
		t.Errorf("finite empty frame: %v, %v", dets, err)
	}
}

func assertBox(t *testing.T, got, want geom.Box) {
	t.Helper()
	const eps = 1e-3
	if math.Abs(float64(got.X1-want.X1)) > eps || math.Abs(float64(got.Y1-want.Y1)) > eps ||
		math.Abs(float64(got.X2-want.X2)) > eps || math.Abs(float64(got.Y2-want.Y2)) > eps {
		t.Errorf("box %+v, want %+v", got, want)
	}
}
