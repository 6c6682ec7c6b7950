package pipeline

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
)

// jitter delays the preparation of frames unevenly (0 to 1.2 ms, in no
// monotonic order), so that several workers finish them out of order.
func jitter(index int) time.Duration {
	return time.Duration(index*7%5) * 300 * time.Microsecond
}

// overlapDetector is a fakeDetector that records whether a frame was
// prepared while the model was running: the stages overlap.
type overlapDetector struct {
	*fakeDetector
	running, overlapped atomic.Bool
}

func (d *overlapDetector) NewPreparer() (Preparer, error) {
	p, err := d.fakeDetector.NewPreparer()
	return overlapPreparer{p, d}, err
}

type overlapPreparer struct {
	Preparer
	d *overlapDetector
}

func (p overlapPreparer) Prepare(ctx context.Context, frame gocv.Mat, in DetectorInput, row int) error {
	if p.d.running.Load() {
		p.d.overlapped.Store(true)
	}
	return p.Preparer.Prepare(ctx, frame, in, row)
}

func (d *overlapDetector) Run(ctxs []context.Context, in DetectorInput) ([][]geom.Detection, error) {
	d.running.Store(true)
	defer d.running.Store(false)
	return d.fakeDetector.Run(ctxs, in)
}

// TestStagesUnderLatency injects latency into each stage in turn (uneven
// preparation on several workers, a slow model, a slow encoder), with and
// without batches: frames come out in order, each with its own detections
// (a frame in the wrong row would be masked wrongly), every batch is full
// but the last, memory stays within the pool, and everything is closed.
func TestStagesUnderLatency(t *testing.T) {
	const frames = 41 // not a multiple of the batches: the last is partial
	tests := []struct {
		name      string
		rows      int
		workers   int
		prepDelay func(int) time.Duration
		runDelay  time.Duration
		sinkDelay time.Duration
	}{
		{name: "uneven preparation", rows: 1, workers: 3, prepDelay: jitter},
		{name: "batches, uneven preparation", rows: 4, workers: 3, prepDelay: jitter},
		{name: "slow GPU", rows: 1, workers: 2, runDelay: 3 * time.Millisecond},
		{name: "batches, slow GPU", rows: 4, workers: 2, prepDelay: jitter, runDelay: 5 * time.Millisecond},
		{name: "batches, slow encoder", rows: 3, workers: 2, sinkDelay: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := &fakeDetector{rows: tt.rows, prepDelay: tt.prepDelay, runDelay: tt.runDelay}
			det := &overlapDetector{fakeDetector: fd}
			src := &fakeSource{n: frames}
			sink := &fakeSink{failAt: -1, delay: tt.sinkDelay, src: src}
			cfg := stageConfig()
			cfg.Track.Hold = 0 // only the detected frames are masked
			cfg.PrepareWorkers = tt.workers
			var results []FrameResult
			stats, err := RunStages(context.Background(), cfg, src, det, fakePose{}, sink,
				func(r FrameResult) { results = append(results, r) })
			if err != nil {
				t.Fatal(err)
			}
			if stats.Frames != frames || len(sink.got) != frames {
				t.Fatalf("wrote %d frames (stats %d), want %d", len(sink.got), stats.Frames, frames)
			}
			for i, idx := range sink.got {
				if idx != i {
					t.Fatalf("frame %d written at position %d: order lost", idx, i)
				}
				if sink.masked[i] != (i%2 == 1) || len(results[i].People) != i%2 {
					t.Errorf("frame %d: masked %v with %d people: it got another frame's detections", i, sink.masked[i], len(results[i].People))
				}
			}
			if want := int64((frames + tt.rows - 1) / tt.rows); fd.runs.Load() != want || fd.maxRows.Load() != int64(tt.rows) {
				t.Errorf("%d runs of up to %d frames, want %d of %d: batches were not filled", fd.runs.Load(), fd.maxRows.Load(), want, tt.rows)
			}
			if bound := int64(framesInFlight(cfg, tt.rows)); sink.maxAhead > bound {
				t.Errorf("%d frames decoded ahead of the encoder, the pool is %d", sink.maxAhead, bound)
			}
			if tt.runDelay > 0 && !det.overlapped.Load() {
				t.Errorf("no frame was prepared while the model ran: the stages did not overlap")
			}
			if n := fd.open.Load(); n != 0 {
				t.Errorf("%d detector inputs or preparers left open", n)
			}
		})
	}
}

// TestStagesFailCleanly: an error in any stage, or a cancellation, stops
// the run promptly with an error naming the frame, ends every span it
// started, closes the detector's inputs and preparers, and leaves no
// goroutine behind, with batches in flight and a slow model.
func TestStagesFailCleanly(t *testing.T) {
	tests := []struct {
		name    string
		det     *fakeDetector
		src     *fakeSource
		sink    *fakeSink
		cancel  bool
		wantErr string
	}{
		{name: "preparation fails", det: &fakeDetector{rows: 4, failPrep: 9, prepDelay: jitter},
			src: &fakeSource{n: 60}, sink: &fakeSink{failAt: -1}, wantErr: "frame 9: cannot resize"},
		{name: "model output bad", det: &fakeDetector{rows: 4, failRun: 10, runDelay: time.Millisecond},
			src: &fakeSource{n: 60}, sink: &fakeSink{failAt: -1}, wantErr: "frame 10: returned NaN in logits"},
		{name: "decode fails", det: &fakeDetector{rows: 3, runDelay: time.Millisecond},
			src: &fakeSource{n: 60, failAt: 13}, sink: &fakeSink{failAt: -1}, wantErr: "corrupt packet"},
		{name: "encode fails", det: &fakeDetector{rows: 3, prepDelay: jitter},
			src: &fakeSource{n: 60}, sink: &fakeSink{failAt: 7}, wantErr: "encode frame 7: disk full"},
		{name: "cancelled, slow GPU", det: &fakeDetector{rows: 4, runDelay: 5 * time.Millisecond},
			src: &fakeSource{n: 1 << 20}, sink: &fakeSink{failAt: -1}, cancel: true, wantErr: context.Canceled.Error()},
		{name: "cancelled, slow encoder", det: &fakeDetector{rows: 2},
			src: &fakeSource{n: 1 << 20}, sink: &fakeSink{failAt: -1, delay: 2 * time.Millisecond}, cancel: true, wantErr: context.Canceled.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			prev := otel.GetTracerProvider()
			otel.SetTracerProvider(tp)
			defer otel.SetTracerProvider(prev)
			goroutines := runtime.NumGoroutine()

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var written atomic.Int64
			cfg := stageConfig()
			cfg.PrepareWorkers = 3
			done := make(chan error, 1)
			go func() {
				_, err := RunStages(ctx, cfg, tt.src, tt.det, fakePose{}, tt.sink, func(FrameResult) {
					if written.Add(1) == 20 && tt.cancel {
						cancel()
					}
				})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("RunStages did not return: a stage is stuck")
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
			if tt.cancel && !errors.Is(err, context.Canceled) {
				t.Errorf("error %v is not context.Canceled", err)
			}
			if started, ended := len(rec.Started()), len(rec.Ended()); started != ended {
				t.Errorf("%d spans started, %d ended", started, ended)
			}
			if n := tt.det.open.Load(); n != 0 {
				t.Errorf("%d detector inputs or preparers left open", n)
			}
			// Goroutines of the run end with it; the test's own may take
			// a moment.
			deadline := time.Now().Add(2 * time.Second)
			for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > goroutines {
				t.Errorf("%d goroutines after the run, %d before", n, goroutines)
			}
		})
	}
}
