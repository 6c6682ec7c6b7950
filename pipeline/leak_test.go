//go:build matprofile

package pipeline

// Run with `go test -tags matprofile ./pipeline` (make test does): gocv then
// counts every Mat alive, so a Mat the stages forget to close, or close
// twice, shows up whatever path a run ends by.

import (
	"context"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// replacingSource closes and replaces the Mat it is given, as some sources
// (synthclip's renderer, say) do when the shape differs.
type replacingSource struct{ fakeSource }

func (s *replacingSource) Read(dst *gocv.Mat) (time.Duration, error) {
	dst.Close()
	*dst = gocv.NewMat()
	return s.fakeSource.Read(dst)
}

func TestRunStagesLeavesNoMat(t *testing.T) {
	tests := []struct {
		name   string
		src    FrameSource
		det    *fakeDetector
		sink   *fakeSink
		cancel bool
	}{
		{"clean run", &fakeSource{n: 30}, &fakeDetector{}, &fakeSink{failAt: -1}, false},
		{"replacing source", &replacingSource{fakeSource{n: 30}}, &fakeDetector{}, &fakeSink{failAt: -1}, false},
		{"decode error", &fakeSource{n: 30, failAt: 11}, &fakeDetector{}, &fakeSink{failAt: -1}, false},
		{"encode error", &fakeSource{n: 30}, &fakeDetector{}, &fakeSink{failAt: 5}, false},
		{"cancelled", &fakeSource{n: 1 << 20}, &fakeDetector{}, &fakeSink{failAt: -1, delay: time.Millisecond}, true},
		{"batches", &fakeSource{n: 30}, &fakeDetector{rows: 4, prepDelay: jitter}, &fakeSink{failAt: -1}, false},
		{"preparation error", &fakeSource{n: 30}, &fakeDetector{rows: 4, failPrep: 9, prepDelay: jitter}, &fakeSink{failAt: -1}, false},
		{"model error", &fakeSource{n: 30}, &fakeDetector{rows: 4, failRun: 10}, &fakeSink{failAt: -1}, false},
		{"cancelled, slow GPU", &fakeSource{n: 1 << 20}, &fakeDetector{rows: 4, runDelay: 5 * time.Millisecond}, &fakeSink{failAt: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := gocv.MatProfile.Count()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			cfg := stageConfig()
			cfg.PrepareWorkers = 3
			RunStages(ctx, cfg, tt.src, tt.det, fakePose{}, tt.sink, nil)
			if after := gocv.MatProfile.Count(); after != before {
				t.Errorf("%d Mats alive after the run, %d before", after, before)
			}
		})
	}
}
