package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/geom"
)

// Detector finds people, a batch of frames per model run: Preparers write
// frames into the rows of an input, several at once, while the model runs
// the input before; Run runs the model on a filled input. DETR wraps a
// *detect.Detector as one.
type Detector interface {
	// BatchSize is how many frames an input holds.
	BatchSize() int
	NewInput() (DetectorInput, error)
	NewPreparer() (Preparer, error)
	// Run returns the people of the first len(ctxs) rows of in, each row
	// with its frame's context. An error about one frame's output wraps
	// a *detect.FrameError naming its row.
	Run(ctxs []context.Context, in DetectorInput) ([][]geom.Detection, error)
}

// DetectorInput is a detector's input for one batch of frames.
type DetectorInput interface {
	// Fit readies the input for frames of w x h.
	Fit(w, h int) error
	Close() error
}

// Preparer writes frames into inputs' rows. Each is used by one goroutine.
type Preparer interface {
	Prepare(ctx context.Context, frame gocv.Mat, in DetectorInput, row int) error
	Close() error
}

// DETR is the Detector of a DETR model.
func DETR(d *detect.Detector) Detector { return detr{d} }

type detr struct{ d *detect.Detector }

func (d detr) BatchSize() int                   { return d.d.BatchSize() }
func (d detr) NewInput() (DetectorInput, error) { return d.d.NewBatch(), nil }
func (d detr) NewPreparer() (Preparer, error)   { return detrPreparer{d.d.NewPreparer()}, nil }
func (d detr) Run(ctxs []context.Context, in DetectorInput) ([][]geom.Detection, error) {
	return d.d.Run(ctxs, in.(*detect.Batch))
}

type detrPreparer struct{ p *detect.Preparer }

func (p detrPreparer) Prepare(ctx context.Context, frame gocv.Mat, in DetectorInput, row int) error {
	return p.p.Prepare(ctx, frame, in.(*detect.Batch), row)
}
func (p detrPreparer) Close() error { return p.p.Close() }

// detecting runs the detector on each batch once its rows are prepared,
// and passes its frames on in order.
type detecting struct {
	fl     *flow
	det    Detector
	inputs chan DetectorInput // where inputs go back once run
	ctxs   []context.Context
}

func (s *detecting) run(ctx context.Context, in <-chan *batch, out chan<- *frame) error {
	defer close(out)
	abandon := func(b *batch, err error) {
		for _, f := range b.frames {
			s.fl.release(f, err)
		}
	}
	for b := range in {
		b.pending.Wait()
		err := b.err
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			s.inputs <- b.in
			abandon(b, err)
			return err
		}
		dets, err := s.detect(b)
		s.inputs <- b.in // never blocks: the channel holds every input
		if err != nil {
			abandon(b, err)
			return err
		}
		for i, f := range b.frames {
			f.dets = dets[i]
			f.detSpan.SetAttributes(attribute.Int("detections", len(f.dets)))
			f.detSpan.End()
			f.detSpan = nil
		}
		if err := s.fl.sendAll(ctx, out, b.frames); err != nil {
			return err
		}
	}
	return nil
}

// detect runs one prepared batch. Each frame's trace shows the time its
// row waited for the rest of the batch and for the model.
func (s *detecting) detect(b *batch) ([][]geom.Detection, error) {
	s.ctxs = s.ctxs[:0]
	now := time.Now()
	for _, f := range b.frames {
		_, w := s.fl.tracer.Start(f.detCtx, "wait_for_batch", trace.WithTimestamp(f.prepared))
		w.End(trace.WithTimestamp(now))
		s.ctxs = append(s.ctxs, f.detCtx)
	}
	dets, err := s.det.Run(s.ctxs, b.in)
	if err == nil && len(dets) != len(b.frames) {
		err = fmt.Errorf("detector returned %d results for %d frames", len(dets), len(b.frames))
	}
	if err != nil {
		// Name the frame whose output was bad, or the batch's first.
		at := b.frames[0].index
		var fe *detect.FrameError
		if errors.As(err, &fe) && fe.Row >= 0 && fe.Row < len(b.frames) {
			at = b.frames[fe.Row].index
		}
		return nil, fmt.Errorf("frame %d: %w", at, err)
	}
	return dets, nil
}
