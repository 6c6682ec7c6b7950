package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"gocv.io/x/gocv"
	"golang.org/x/sync/errgroup"

	"github.com/anonymize-dev/anonymize/audit"
	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/mask"
	"github.com/anonymize-dev/anonymize/telemetry"
)

const tracerName = "github.com/anonymize-dev/anonymize/pipeline"

// FrameSource yields decoded BGR frames into a caller-owned Mat, each with
// its presentation time; io.EOF at the end. It may reuse dst's buffer (as
// gocv's VideoCapture does) or close dst and replace it with a new Mat.
// *video.Reader is one.
type FrameSource interface {
	Read(dst *gocv.Mat) (pts time.Duration, err error)
}

// FrameSink takes the finished frames in order, each with the time the
// source gave it, so that the output keeps the input's timing.
// video.Encoder is one.
type FrameSink interface {
	WriteFrame(frame gocv.Mat, pts time.Duration) error
}

// PoseEstimator returns one pose per box. *pose.Estimator is one.
type PoseEstimator interface {
	Estimate(ctx context.Context, frame gocv.Mat, boxes []geom.Box) ([]geom.Pose, error)
}

// StageConfig holds what the stages need besides their collaborators.
type StageConfig struct {
	MaxFrames int // 0: the whole video
	QueueSize int // frames buffered between two stages
	// PrepareWorkers is how many frames are made ready for the detector
	// at once (0: as many as a batch holds plus one, at most half the
	// cores): resizing and normalising a frame costs about as much CPU
	// as encoding it, and must keep pace with a GPU.
	PrepareWorkers int
	Draw           bool
	Mask           mask.Config
	Track          TrackConfig
	Audit          AuditConfig
	// Instruments records the per-frame metrics; nil creates them on the
	// global MeterProvider.
	Instruments *telemetry.Instruments
	// GPUMemory, when set, returns the GPU memory this process uses; it is
	// put on each frame's span next to the people count, the pairing that
	// shows how many people fit before the pose model runs out of memory.
	GPUMemory func() (bytes int64, ok bool)
}

// Person is one detected person of one frame, with where it was masked.
type Person struct {
	Detection geom.Detection
	Pose      *geom.Pose // nil when no pose was estimated
	Mask      geom.Region
	TrackID   int // the person's track: the same id from frame to frame
}

// FrameResult reports one finished frame.
type FrameResult struct {
	Index  int
	People []Person
	// Masks are the masks tracking added where the detector found nobody:
	// held for people it missed, backfilled before people it found late.
	Masks []geom.Region
	// Audited says the leak audit searched the frame; Leaks are the faces
	// it found.
	Audited bool
	Leaks   []audit.Face
}

// Stats sums up a run.
type Stats struct {
	Frames           int
	People           int // person detections over all frames
	MinPeople        int
	MaxPeople        int
	FramesWithPeople int
	Masks            mask.Counts
	Audit            AuditStats
	Elapsed          time.Duration
}

// add counts one written frame.
func (s *Stats) add(people int, masks mask.Counts) {
	s.Frames++
	if s.Frames == 1 || people < s.MinPeople {
		s.MinPeople = people
	}
	s.People += people
	s.MaxPeople = max(s.MaxPeople, people)
	if people > 0 {
		s.FramesWithPeople++
	}
	s.Masks.Merge(masks)
}

// FPS is the processing rate.
func (s Stats) FPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Frames) / s.Elapsed.Seconds()
}

type frame struct {
	index int
	pts   time.Duration
	mat   gocv.Mat
	ctx   context.Context
	span  trace.Span
	// detCtx and detSpan are the frame's "person_detection" span, open
	// from the start of its preparation to the end of its batch's run;
	// prepared is when the preparation ended.
	detCtx   context.Context
	detSpan  trace.Span
	prepared time.Time
	dets     []geom.Detection // at or above the tracker's low score
	poses    []geom.Pose
	// people are the detected people, with their masks; masks are the
	// masks tracking added (held, backfilled).
	people []Person
	masks  []geom.Region
	// trackEvent says a track was born or ended at this frame: the audit's
	// sample takes such frames.
	trackEvent bool
	// queued is when the frame entered the channel to the next stage.
	queued time.Time
}

// fail ends a frame that will not be written and counts it.
func (f *frame) fail(err error, in *telemetry.Instruments) {
	outcome := telemetry.OutcomeFailed
	if errors.Is(err, context.Canceled) {
		outcome = telemetry.OutcomeCancelled
	}
	in.Frames.Add(f.ctx, 1, outcomeAttrs[outcome])
	if f.detSpan != nil {
		telemetry.EndSpan(f.detSpan, err)
		f.detSpan = nil
	}
	telemetry.EndSpan(f.span, err)
}

// waited records the time a frame spent queued before a stage as a span,
// so a trace shows where concurrent stages held it up.
func (f *frame) waited(tracer trace.Tracer, name string) {
	_, span := tracer.Start(f.ctx, name, trace.WithTimestamp(f.queued))
	span.End()
}

// flow is what the stages share: the tracer, the metrics and the pool of
// frame Mats, which bounds the frames in flight.
type flow struct {
	tracer trace.Tracer
	in     *telemetry.Instruments
	free   chan gocv.Mat
}

// release ends a frame that will not be written and returns its Mat to
// the pool (which never blocks: the channel holds the whole pool).
func (fl *flow) release(f *frame, err error) {
	f.fail(err, fl.in)
	fl.free <- f.mat
}

// send passes f on to the next stage, or releases it if the run stops
// first.
func (fl *flow) send(ctx context.Context, out chan<- *frame, f *frame) error {
	f.queued = time.Now()
	select {
	case out <- f:
		return nil
	case <-ctx.Done():
		fl.release(f, ctx.Err())
		return ctx.Err()
	}
}

// sendAll sends frames in order; when the run stops first, it releases
// those not sent.
func (fl *flow) sendAll(ctx context.Context, out chan<- *frame, frames []*frame) error {
	for i, f := range frames {
		if err := fl.send(ctx, out, f); err != nil {
			for _, rest := range frames[i+1:] {
				fl.release(rest, err)
			}
			return err
		}
	}
	return nil
}

// detectInputs is how many detector inputs a run cycles through: one the
// model runs, one waiting for it, one being filled.
const detectInputs = 3

// framesInFlight bounds the frames a run holds at once, for a detector
// batch of rows frames: each stage's own, the queues between stages, the
// frames of the detector's inputs and of the batch it hands on, and the
// frames waiting for a backfill. It is the size of the Mat pool.
func framesInFlight(cfg StageConfig, rows int) int {
	return 4*cfg.QueueSize + (detectInputs+1)*rows + cfg.Track.Window + 5
}

// prepareWorkers is StageConfig.PrepareWorkers, resolved.
func prepareWorkers(cfg StageConfig, rows int) int {
	if cfg.PrepareWorkers > 0 {
		return cfg.PrepareWorkers
	}
	return DefaultPrepareWorkers(rows)
}

// DefaultPrepareWorkers is how many frames are prepared for a detector
// batch of rows frames at once: the whole batch and the next frame, so a
// batch is ready when the model is, but no more than half the cores, as
// ONNX Runtime, OpenCV and the encoder want the rest.
func DefaultPrepareWorkers(rows int) int {
	return max(1, min(rows+1, runtime.GOMAXPROCS(0)/2))
}

// RunStages runs the stages of one video concurrently, joined by bounded
// channels:
//
//	decode → batch → prepare (workers) → detect → pose → track → encode
//
// The batch stage groups frames for the detector and hands each to a
// prepare worker, which resizes and normalises it into its row of the
// batch's input while the detector runs the previous batch; the input's
// rows are the reorder buffer that puts frames prepared out of order back
// in order. Every other stage is one goroutine and every channel FIFO, so
// frames are written in the order they were read. Memory stays bounded
// whatever the video's length: frames live in a fixed pool of Mats
// (framesInFlight) that decode takes from and encode returns to, and the
// detector cycles through detectInputs inputs. Cancelling ctx stops every
// stage; the first error stops the others and is returned. onFrame, if
// set, is called from the encode stage after each frame is written.
func RunStages(ctx context.Context, cfg StageConfig, src FrameSource, det Detector, pe PoseEstimator,
	sink FrameSink, onFrame func(FrameResult)) (stats Stats, err error) {
	start := time.Now()
	defer func() { stats.Elapsed = time.Since(start) }()
	cfg.QueueSize = max(cfg.QueueSize, 1)
	in := cfg.Instruments
	if in == nil {
		if in, err = telemetry.NewInstruments(); err != nil {
			return stats, fmt.Errorf("create metrics: %w", err)
		}
	}
	startCounters(ctx, in)
	rows := max(det.BatchSize(), 1)
	fl := &flow{tracer: otel.Tracer(tracerName), in: in, free: make(chan gocv.Mat, framesInFlight(cfg, rows))}
	for range cap(fl.free) {
		fl.free <- gocv.NewMat()
	}
	// Each Mat goes back to free whatever happens to its frame, so the
	// ones to close at the end are exactly those in free (a source may
	// have replaced some of the originals).
	defer func() {
		close(fl.free)
		for m := range fl.free {
			m.Close()
		}
	}()

	tracking, err := newTracking(cfg, fl)
	if err != nil {
		return stats, err
	}
	batching, err := newBatching(fl, det)
	if err != nil {
		return stats, err
	}
	defer batching.close()
	workers := make([]*preparing, prepareWorkers(cfg, rows))
	for i := range workers {
		if workers[i], err = newPreparing(fl, det); err != nil {
			return stats, err
		}
		defer workers[i].close()
	}
	decoding := &decoding{fl: fl, src: src, maxFrames: cfg.MaxFrames, runLink: trace.LinkFromContext(ctx)}
	detecting := &detecting{fl: fl, det: det, inputs: batching.inputs}
	posing := &posing{fl: fl, pe: pe}
	encoding := &encoding{fl: fl, cfg: cfg, sink: sink, stats: &stats, onFrame: onFrame}

	decoded := make(chan *frame, cfg.QueueSize)
	jobs := make(chan prepareJob, rows)
	batches := make(chan *batch, detectInputs)
	detected := make(chan *frame, cfg.QueueSize)
	posed := make(chan *frame, cfg.QueueSize)
	tracked := make(chan *frame, cfg.QueueSize)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return decoding.run(gctx, decoded) })
	g.Go(func() error { return batching.run(gctx, decoded, jobs, batches) })
	for _, w := range workers {
		g.Go(func() error { w.run(gctx, jobs); return nil })
	}
	g.Go(func() error { return detecting.run(gctx, batches, detected) })
	g.Go(func() error { return posing.run(gctx, detected, posed) })
	g.Go(func() error { return tracking.run(gctx, posed, tracked) })
	g.Go(func() error { return encoding.run(gctx, tracked) })
	err = g.Wait()

	// What a stage that stopped early left queued has open spans and
	// holds Mats and inputs.
	for _, ch := range []chan *frame{decoded, detected, posed, tracked} {
		for f := range ch {
			fl.release(f, context.Canceled)
		}
	}
	for b := range batches {
		batching.abandon(b, context.Canceled)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return stats, err
}
