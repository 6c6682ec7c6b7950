package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
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

// Detector finds people. *detect.Detector is one.
type Detector interface {
	Detect(ctx context.Context, frame gocv.Mat) ([]geom.Detection, error)
}

// PoseEstimator returns one pose per box. *pose.Estimator is one.
type PoseEstimator interface {
	Estimate(ctx context.Context, frame gocv.Mat, boxes []geom.Box) ([]geom.Pose, error)
}

// StageConfig holds what the stages need besides their collaborators.
type StageConfig struct {
	MaxFrames int // 0: the whole video
	QueueSize int // frames buffered between two stages
	Draw      bool
	Mask      mask.Config
	Track     TrackConfig
	Audit     AuditConfig
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
	dets  []geom.Detection // at or above the tracker's low score
	poses []geom.Pose
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
	telemetry.EndSpan(f.span, err)
}

// waited records the time a frame spent queued before a stage as a span,
// so a trace shows where concurrent stages held it up.
func (f *frame) waited(tracer trace.Tracer, name string) {
	_, span := tracer.Start(f.ctx, name, trace.WithTimestamp(f.queued))
	span.End()
}

// RunStages runs decode, inference and mask+encode as three concurrent
// stages joined by bounded channels. Frames keep their order (one goroutine
// per stage, FIFO channels) and memory stays bounded whatever the video's
// length: frames live in a fixed pool of Mats that decode takes from and
// encode returns to. Cancelling ctx stops every stage; the first error
// stops the others and is returned. onFrame, if set, is called from the
// encode stage after each frame is written.
func RunStages(ctx context.Context, cfg StageConfig, src FrameSource, det Detector, pe PoseEstimator,
	sink FrameSink, onFrame func(FrameResult)) (Stats, error) {
	if cfg.QueueSize < 1 {
		cfg.QueueSize = 1
	}
	in := cfg.Instruments
	if in == nil {
		var err error
		if in, err = telemetry.NewInstruments(); err != nil {
			return Stats{}, fmt.Errorf("create metrics: %w", err)
		}
	}
	tracer := otel.Tracer(tracerName)
	start := time.Now()
	var stats Stats

	tracking, err := newTracking(cfg, tracer)
	if err != nil {
		return Stats{}, err
	}
	// Every Mat a stage can hold at once: one per stage, the queues and
	// the frames waiting for a backfill. Each Mat goes back to free
	// whatever happens to its frame, so the ones to close at the end are
	// exactly those in free (a source may have replaced some of the
	// originals).
	poolSize := 3*cfg.QueueSize + 4 + cfg.Track.Window
	free := make(chan gocv.Mat, poolSize)
	for range poolSize {
		free <- gocv.NewMat()
	}
	defer func() {
		close(free)
		for m := range free {
			m.Close()
		}
	}()

	decoded := make(chan *frame, cfg.QueueSize)
	inferred := make(chan *frame, cfg.QueueSize)
	tracked := make(chan *frame, cfg.QueueSize)
	g, gctx := errgroup.WithContext(ctx)
	runLink := trace.LinkFromContext(ctx)

	g.Go(func() error {
		defer close(decoded)
		for i := 0; cfg.MaxFrames == 0 || i < cfg.MaxFrames; i++ {
			var m gocv.Mat
			select {
			case m = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			t0 := time.Now()
			pts, err := src.Read(&m)
			if err != nil {
				free <- m
				if !errors.Is(err, io.EOF) {
					return err
				}
				if i == 0 {
					return errors.New("the video has no frames")
				}
				return nil
			}
			// One trace per frame, linked to the run's span: a long video
			// would otherwise make one unreadable trace.
			fctx, root := tracer.Start(gctx, "process_single_frame",
				trace.WithNewRoot(), trace.WithLinks(runLink), trace.WithTimestamp(t0),
				trace.WithAttributes(
					attribute.Int("frame.index", i),
					attribute.Float64("frame.timestamp_ms", float64(pts)/float64(time.Millisecond)),
				))
			_, ds := tracer.Start(fctx, "decode", trace.WithTimestamp(t0))
			ds.End()
			f := &frame{index: i, pts: pts, mat: m, ctx: fctx, span: root, queued: time.Now()}
			select {
			case decoded <- f:
			case <-gctx.Done():
				f.fail(gctx.Err(), in)
				free <- f.mat
				return gctx.Err()
			}
		}
		return nil
	})

	g.Go(func() error {
		defer close(inferred)
		for f := range decoded {
			f.waited(tracer, "wait_for_inference")
			if err := infer(f, det, pe); err != nil {
				f.fail(err, in)
				free <- f.mat
				return fmt.Errorf("frame %d: %w", f.index, err)
			}
			f.queued = time.Now()
			select {
			case inferred <- f:
			case <-gctx.Done():
				f.fail(gctx.Err(), in)
				free <- f.mat
				return gctx.Err()
			}
		}
		return nil
	})

	release := func(f *frame, err error) {
		f.fail(err, in)
		free <- f.mat
	}
	g.Go(func() error {
		defer close(tracked)
		send := func(done []*frame) error {
			for i, f := range done {
				f.queued = time.Now()
				select {
				case tracked <- f:
				case <-gctx.Done():
					for _, rest := range done[i:] {
						release(rest, gctx.Err())
					}
					return gctx.Err()
				}
			}
			return nil
		}
		for f := range inferred {
			f.waited(tracer, "wait_for_track")
			done, err := tracking.add(f)
			if err != nil {
				release(f, err)
				tracking.fail(err, release)
				return fmt.Errorf("frame %d: %w", f.index, err)
			}
			if err := send(done); err != nil {
				tracking.fail(err, release)
				return err
			}
		}
		if err := gctx.Err(); err != nil {
			tracking.fail(err, release)
			return err
		}
		return send(tracking.flush())
	})

	g.Go(func() error {
		for f := range tracked {
			if err := gctx.Err(); err != nil {
				// Another stage failed: the output will be discarded, so
				// only drain what is left.
				release(f, err)
				continue
			}
			f.waited(tracer, "wait_for_encode")
			masks := applyMasks(tracer, f, cfg)
			leaks, audited, err := auditFrame(tracer, f, cfg.Audit, in)
			if err != nil {
				release(f, err)
				return fmt.Errorf("frame %d: %w", f.index, err)
			}
			if audited {
				stats.Audit.add(f, leaks)
			}
			_, es := tracer.Start(f.ctx, "encode")
			err = sink.WriteFrame(f.mat, f.pts)
			telemetry.EndSpan(es, err)
			if err != nil {
				release(f, err)
				return fmt.Errorf("encode frame %d: %w", f.index, err)
			}
			f.span.SetAttributes(attribute.Int("people.count", len(f.people)))
			if cfg.GPUMemory != nil {
				if b, ok := cfg.GPUMemory(); ok {
					f.span.SetAttributes(attribute.Int64("gpu.process.memory.usage", b))
				}
			}
			recordFrame(f.ctx, in, len(f.people), masks)
			f.span.End()
			stats.add(len(f.people), masks)
			if onFrame != nil {
				onFrame(FrameResult{Index: f.index, People: f.people, Masks: f.masks, Audited: audited, Leaks: leaks})
			}
			free <- f.mat // never blocks: the channel holds the whole pool
		}
		return nil
	})

	err = g.Wait()
	// Frames still queued when a stage failed have open spans.
	for _, ch := range []chan *frame{decoded, inferred, tracked} {
		for f := range ch {
			f.fail(context.Canceled, in)
			free <- f.mat
		}
	}
	stats.Elapsed = time.Since(start)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return stats, err
}

// Attribute sets of the per-frame metrics, built once: recording happens
// on the frame path and should not allocate them every time.
var (
	outcomeAttrs = attrOptions(telemetry.AttrOutcome, telemetry.OutcomeOK, telemetry.OutcomeFailed, telemetry.OutcomeCancelled)
	kindAttrs    = attrOptions(telemetry.AttrKind, string(geom.MaskNose), string(geom.MaskFaceKeypoints),
		string(geom.MaskHeadBox), mask.FallbackRadiusFloor, string(geom.MaskHeld), string(geom.MaskBackfilled))
)

func attrOptions(key string, values ...string) map[string]metric.MeasurementOption {
	out := make(map[string]metric.MeasurementOption, len(values))
	for _, v := range values {
		out[v] = metric.WithAttributeSet(attribute.NewSet(attribute.String(key, v)))
	}
	return out
}

// recordFrame records a written frame's metrics, in the frame's context so
// exemplars point at its trace.
func recordFrame(ctx context.Context, in *telemetry.Instruments, people int, c mask.Counts) {
	n := int64(people)
	in.DetectedPeople.Record(ctx, n)
	in.PeoplePerFrame.Record(ctx, n)
	in.Frames.Add(ctx, 1, outcomeAttrs[telemetry.OutcomeOK])
	add := func(inst metric.Int64Counter, kind string, v int) {
		if v > 0 {
			inst.Add(ctx, int64(v), kindAttrs[kind])
		}
	}
	add(in.Masks, string(geom.MaskNose), c.Nose)
	add(in.Masks, string(geom.MaskFaceKeypoints), c.FaceKeypoints)
	add(in.Masks, string(geom.MaskHeadBox), c.HeadBox)
	add(in.Masks, string(geom.MaskHeld), c.Held)
	add(in.Masks, string(geom.MaskBackfilled), c.Backfilled)
	add(in.MaskFallbacks, string(geom.MaskFaceKeypoints), c.FaceKeypoints)
	add(in.MaskFallbacks, string(geom.MaskHeadBox), c.HeadBox)
	add(in.MaskFallbacks, mask.FallbackRadiusFloor, c.RadiusFloor)
}

func infer(f *frame, det Detector, pe PoseEstimator) error {
	dets, err := det.Detect(f.ctx, f.mat)
	if err != nil {
		return err
	}
	f.dets = dets
	// Estimate runs even with nobody in the frame, so every frame's trace
	// has the same shape and per-stage span counts equal frame counts.
	boxes := make([]geom.Box, len(dets))
	for i, d := range dets {
		boxes[i] = d.Box
	}
	poses, err := pe.Estimate(f.ctx, f.mat, boxes)
	if err != nil {
		return err
	}
	if len(poses) != len(dets) {
		return fmt.Errorf("pose estimator returned %d poses for %d people", len(poses), len(dets))
	}
	f.poses = poses
	return nil
}

// applyMasks blacks out every mask of f (the detected people's, then
// those tracking added) and draws the debug view; it returns the tally.
func applyMasks(tracer trace.Tracer, f *frame, cfg StageConfig) mask.Counts {
	_, span := tracer.Start(f.ctx, "mask")
	defer span.End()
	var counts mask.Counts
	regions := make([]geom.Region, 0, len(f.people)+len(f.masks))
	for _, p := range f.people {
		regions = append(regions, p.Mask)
		counts.Add(p.Mask)
	}
	for _, r := range f.masks {
		regions = append(regions, r)
		counts.Add(r)
	}
	mask.Apply(&f.mat, regions)
	if cfg.Draw {
		for _, p := range f.people {
			mask.DrawDebug(&f.mat, p.Detection, p.Pose, p.TrackID, cfg.Mask.KptThreshold)
		}
	}
	span.SetAttributes(attribute.Int("masks", len(regions)), attribute.Int("masks.held", counts.Held),
		attribute.Int("masks.backfilled", counts.Backfilled))
	return counts
}
