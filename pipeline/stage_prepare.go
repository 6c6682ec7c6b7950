package pipeline

import (
	"context"
	"fmt"
	"time"
)

// preparing is one prepare worker: it opens a frame's "person_detection"
// span and writes the frame into its row of the batch's input.
type preparing struct {
	fl *flow
	p  Preparer
}

func newPreparing(fl *flow, det Detector) (*preparing, error) {
	p, err := det.NewPreparer()
	if err != nil {
		return nil, fmt.Errorf("detector preparation: %w", err)
	}
	return &preparing{fl: fl, p: p}, nil
}

func (s *preparing) close() { s.p.Close() }

// run prepares jobs until the batching stage closes them. It never stops
// early and never blocks on anything else: batches wait for their rows.
func (s *preparing) run(ctx context.Context, jobs <-chan prepareJob) {
	for j := range jobs {
		if err := ctx.Err(); err != nil {
			j.b.prepared(j.f, err)
			continue
		}
		f := j.f
		f.waited(s.fl.tracer, "wait_for_inference")
		f.detCtx, f.detSpan = s.fl.tracer.Start(f.ctx, "person_detection")
		err := s.p.Prepare(f.detCtx, f.mat, j.b.in, j.row)
		f.prepared = time.Now()
		j.b.prepared(f, err)
	}
}
