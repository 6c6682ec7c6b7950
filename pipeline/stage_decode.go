package pipeline

import (
	"context"
	"errors"
	"io"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gocv.io/x/gocv"
)

// decoding reads the frames into Mats of the pool and starts each frame's
// trace.
type decoding struct {
	fl        *flow
	src       FrameSource
	maxFrames int        // 0: the whole video
	runLink   trace.Link // to the run's span
}

func (s *decoding) run(ctx context.Context, out chan<- *frame) error {
	defer close(out)
	for i := 0; s.maxFrames == 0 || i < s.maxFrames; i++ {
		var m gocv.Mat
		select {
		case m = <-s.fl.free:
		case <-ctx.Done():
			return ctx.Err()
		}
		t0 := time.Now()
		pts, err := s.src.Read(&m)
		if err != nil {
			s.fl.free <- m
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
		fctx, root := s.fl.tracer.Start(ctx, "process_single_frame",
			trace.WithNewRoot(), trace.WithLinks(s.runLink), trace.WithTimestamp(t0),
			trace.WithAttributes(
				attribute.Int("frame.index", i),
				attribute.Float64("frame.timestamp_ms", float64(pts)/float64(time.Millisecond)),
			))
		_, ds := s.fl.tracer.Start(fctx, "decode", trace.WithTimestamp(t0))
		ds.End()
		if err := s.fl.send(ctx, out, &frame{index: i, pts: pts, mat: m, ctx: fctx, span: root}); err != nil {
			return err
		}
	}
	return nil
}
