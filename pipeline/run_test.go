package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/mask"
	"github.com/anonymize-dev/anonymize/models"
)

// fakeSource yields n 16x16 frames whose first pixel holds the frame index.
type fakeSource struct {
	n, read int
	failAt  int // read error at this frame (0: never)
	reads   atomic.Int64
}

func (s *fakeSource) Read(dst *gocv.Mat) (time.Duration, error) {
	if s.failAt > 0 && s.read == s.failAt {
		return 0, errors.New("corrupt packet")
	}
	if s.read == s.n {
		return 0, io.EOF
	}
	if dst.Empty() {
		dst.Close()
		*dst = gocv.NewMatWithSize(16, 16, gocv.MatTypeCV8UC3)
	}
	dst.SetTo(gocv.NewScalar(100, 100, 100, 0))
	dst.SetUCharAt(0, 0, uint8(s.read))
	pts := fakePTS(s.read)
	s.read++
	s.reads.Add(1)
	return pts, nil
}

// fakePTS is the time fakeSource gives frame i: unevenly spaced, as in a
// variable-rate video, so that a stage that made up times would show.
func fakePTS(i int) time.Duration {
	return time.Duration(i*i+i)*time.Millisecond + 7*time.Millisecond
}

// fakeDetector finds one person on odd frames. Its preparer copies the
// frame's index (its first pixel) into the input's row and Run answers
// from the rows, so a frame prepared into the wrong row, or a batch put
// back together out of order, shows as a wrong mask. Delays stand in for
// a slow CPU (prepare) and a slow GPU (run).
type fakeDetector struct {
	rows      int
	prepDelay func(index int) time.Duration
	runDelay  time.Duration
	failPrep  int // preparing this frame fails (0: never)
	failRun   int // the run of the batch holding this frame fails (0: never)
	// open counts the inputs and preparers not closed; runs the model runs,
	// maxRows the most frames in one run.
	open, runs, maxRows atomic.Int64
}

type fakeInput struct {
	d    *fakeDetector
	w, h int
	vals []int
}

func (d *fakeDetector) BatchSize() int { return max(d.rows, 1) }

func (d *fakeDetector) NewInput() (DetectorInput, error) {
	d.open.Add(1)
	return &fakeInput{d: d, vals: make([]int, d.BatchSize())}, nil
}

func (in *fakeInput) Fit(w, h int) error { in.w, in.h = w, h; return nil }
func (in *fakeInput) Close() error       { in.d.open.Add(-1); return nil }

type fakePreparer struct{ d *fakeDetector }

func (d *fakeDetector) NewPreparer() (Preparer, error) {
	d.open.Add(1)
	return fakePreparer{d}, nil
}

func (p fakePreparer) Prepare(ctx context.Context, frame gocv.Mat, in DetectorInput, row int) error {
	idx := int(frame.GetUCharAt(0, 0))
	if p.d.prepDelay != nil {
		time.Sleep(p.d.prepDelay(idx))
	}
	if p.d.failPrep > 0 && idx == p.d.failPrep {
		return errors.New("cannot resize")
	}
	fi := in.(*fakeInput)
	if frame.Cols() != fi.w || frame.Rows() != fi.h {
		return fmt.Errorf("frame %dx%d in an input fitted to %dx%d", frame.Cols(), frame.Rows(), fi.w, fi.h)
	}
	fi.vals[row] = idx
	return nil
}

func (p fakePreparer) Close() error { p.d.open.Add(-1); return nil }

func (d *fakeDetector) Run(ctxs []context.Context, in DetectorInput) ([][]geom.Detection, error) {
	time.Sleep(d.runDelay)
	d.runs.Add(1)
	if n := int64(len(ctxs)); n > d.maxRows.Load() {
		d.maxRows.Store(n)
	}
	out := make([][]geom.Detection, len(ctxs))
	for i := range ctxs {
		v := in.(*fakeInput).vals[i]
		if d.failRun > 0 && v == d.failRun {
			return nil, &detect.FrameError{Row: i, Err: errors.New("returned NaN in logits")}
		}
		if v%2 == 1 {
			out[i] = []geom.Detection{{Box: geom.Box{X1: 2, Y1: 2, X2: 14, Y2: 14}, Score: 0.9}}
		}
	}
	return out, nil
}

type fakePose struct{}

func (fakePose) Estimate(ctx context.Context, frame gocv.Mat, boxes []geom.Box) ([]geom.Pose, error) {
	out := make([]geom.Pose, len(boxes))
	for i := range out {
		out[i][models.KptNose] = geom.Keypoint{X: 8, Y: 6, Conf: 0.9}
		out[i][models.KptLeftShoulder] = geom.Keypoint{X: 11, Y: 10, Conf: 0.9}
	}
	return out, nil
}

// fakeSink records the frame index of each written frame.
type fakeSink struct {
	got    []int
	failAt int // error at the frame with this position (-1: never)
	delay  time.Duration
	src    *fakeSource
	// maxAhead is the most frames decoded but not yet written.
	maxAhead int64
	masked   []bool
	pts      []time.Duration
}

func (s *fakeSink) WriteFrame(frame gocv.Mat, pts time.Duration) error {
	time.Sleep(s.delay)
	if len(s.got) == s.failAt {
		return errors.New("disk full")
	}
	s.got = append(s.got, int(frame.GetUCharAt(0, 0)))
	s.pts = append(s.pts, pts)
	v := frame.GetVecbAt(6, 8)
	s.masked = append(s.masked, v[0] == 0 && v[1] == 0 && v[2] == 0)
	if s.src != nil {
		s.maxAhead = max(s.maxAhead, s.src.reads.Load()-int64(len(s.got)))
	}
	return nil
}

func stageConfig() StageConfig {
	return StageConfig{QueueSize: 2, Mask: mask.DefaultConfig(), Track: DefaultConfig().trackConfig(25)}
}

func TestRunStagesKeepsOrderAndMasks(t *testing.T) {
	// The fake detector finds the person on odd frames only. With --hold 0
	// only those are masked; with the default hold, tracking masks the
	// even frames too: held after a miss, backfilled before the first
	// detection.
	for _, tt := range []struct {
		name   string
		hold   time.Duration
		masked func(i int) bool
		counts mask.Counts
	}{
		{"no hold", 0, func(i int) bool { return i%2 == 1 }, mask.Counts{Nose: 20}},
		{"default hold", DefaultConfig().Hold, func(int) bool { return true }, mask.Counts{Nose: 20, Held: 19, Backfilled: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{n: 40}
			sink := &fakeSink{failAt: -1}
			cfg := stageConfig()
			cfg.Track.Hold = tt.hold
			var results []FrameResult
			stats, err := RunStages(context.Background(), cfg, src, &fakeDetector{}, fakePose{}, sink,
				func(r FrameResult) { results = append(results, r) })
			if err != nil {
				t.Fatal(err)
			}
			if len(sink.got) != 40 {
				t.Fatalf("wrote %d frames, want 40", len(sink.got))
			}
			for i, idx := range sink.got {
				if idx != i {
					t.Fatalf("frame %d written at position %d: order lost", idx, i)
				}
				if sink.pts[i] != fakePTS(i) {
					t.Errorf("frame %d written at %v, the source gave %v", i, sink.pts[i], fakePTS(i))
				}
				if sink.masked[i] != tt.masked(i) {
					t.Errorf("frame %d masked=%v, want %v", i, sink.masked[i], tt.masked(i))
				}
				if results[i].Index != i || len(results[i].People) != i%2 {
					t.Errorf("result %d = %+v", i, results[i])
				}
				if tt.hold > 0 && i%2 == 1 && results[i].People[0].TrackID != 1 {
					t.Errorf("frame %d: track %d, want the one track, 1", i, results[i].People[0].TrackID)
				}
			}
			want := Stats{Frames: 40, People: 20, MaxPeople: 1, FramesWithPeople: 20, Masks: tt.counts}
			stats.Elapsed = 0
			if !reflect.DeepEqual(stats, want) {
				t.Errorf("stats %+v, want %+v", stats, want)
			}
		})
	}
}

func TestRunStagesMaxFrames(t *testing.T) {
	src := &fakeSource{n: 40}
	sink := &fakeSink{failAt: -1}
	cfg := stageConfig()
	cfg.MaxFrames = 7
	stats, err := RunStages(context.Background(), cfg, src, &fakeDetector{}, fakePose{}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Frames != 7 || len(sink.got) != 7 || src.read != 7 {
		t.Errorf("frames %d, written %d, decoded %d; want 7 each", stats.Frames, len(sink.got), src.read)
	}
}

func TestRunStagesBoundsMemory(t *testing.T) {
	// A slow encoder must hold decoding back: at most the pool of frames
	// may be decoded ahead of what is written, however long the video.
	src := &fakeSource{n: 200}
	sink := &fakeSink{failAt: -1, delay: 200 * time.Microsecond, src: src}
	cfg := stageConfig()
	if _, err := RunStages(context.Background(), cfg, src, &fakeDetector{}, fakePose{}, sink, nil); err != nil {
		t.Fatal(err)
	}
	pool := int64(framesInFlight(cfg, 1))
	if sink.maxAhead > pool {
		t.Errorf("%d frames were decoded ahead of the encoder, pool is %d", sink.maxAhead, pool)
	}
	if sink.maxAhead < 2 {
		t.Errorf("only %d frames ahead: the stages did not overlap", sink.maxAhead)
	}
}

func TestRunStagesErrors(t *testing.T) {
	tests := []struct {
		name    string
		src     *fakeSource
		sink    *fakeSink
		wantErr string
	}{
		{"decode error mid-stream", &fakeSource{n: 50, failAt: 13}, &fakeSink{failAt: -1}, "corrupt packet"},
		{"encode error", &fakeSource{n: 50}, &fakeSink{failAt: 9}, "encode frame 9: disk full"},
		{"no frames at all", &fakeSource{n: 0}, &fakeSink{failAt: -1}, "no frames"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error)
			go func() {
				_, err := RunStages(context.Background(), stageConfig(), tt.src, &fakeDetector{}, fakePose{}, tt.sink, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("RunStages did not return after an error: a stage is stuck")
			}
		})
	}
}

func TestRunStagesCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &fakeSource{n: 1 << 30}
	sink := &fakeSink{failAt: -1}
	var n atomic.Int64
	done := make(chan error)
	go func() {
		_, err := RunStages(ctx, stageConfig(), src, &fakeDetector{runDelay: time.Millisecond}, fakePose{}, sink,
			func(FrameResult) {
				if n.Add(1) == 10 {
					cancel()
				}
			})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunStages did not stop after cancellation")
	}
}
