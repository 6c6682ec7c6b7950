package pipeline

import (
	"context"
	"fmt"
	"sync"
)

// batch is the frames of one detector run, in order, and their input.
type batch struct {
	in     DetectorInput
	w, h   int // the frames' size
	frames []*frame
	// pending counts the rows still being prepared; err is the first
	// preparation's error.
	pending sync.WaitGroup
	mu      sync.Mutex
	err     error
}

// prepared records that f's row is ready, or failed with err.
func (b *batch) prepared(f *frame, err error) {
	if err != nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = fmt.Errorf("frame %d: %w", f.index, err)
		}
		b.mu.Unlock()
	}
	b.pending.Done()
}

// prepareJob asks a worker to prepare f as row of b.
type prepareJob struct {
	f   *frame
	b   *batch
	row int
}

// batching groups frames, in order, into batches of the detector's size,
// each on an input from a fixed pool, and hands every frame to a prepare
// worker. A batch goes on when it is full, when the frame size changes and
// at the end of the video; rows still being prepared are waited for by
// the detect stage.
type batching struct {
	fl     *flow
	rows   int
	inputs chan DetectorInput // the free inputs
	all    []DetectorInput
}

func newBatching(fl *flow, det Detector) (*batching, error) {
	s := &batching{fl: fl, rows: max(det.BatchSize(), 1), inputs: make(chan DetectorInput, detectInputs)}
	for range detectInputs {
		in, err := det.NewInput()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("detector input: %w", err)
		}
		s.all = append(s.all, in)
		s.inputs <- in
	}
	return s, nil
}

// close frees the inputs, once the run is over.
func (s *batching) close() {
	for _, in := range s.all {
		in.Close()
	}
}

func (s *batching) run(ctx context.Context, in <-chan *frame, jobs chan<- prepareJob, out chan<- *batch) error {
	defer close(out)
	// Workers drain the jobs sent before the batching stops, so a batch
	// abandoned below is waited for without deadlock.
	defer close(jobs)
	var cur *batch
	flush := func() error {
		b := cur
		cur = nil
		if b == nil {
			return nil
		}
		select {
		case out <- b:
			return nil
		case <-ctx.Done():
			s.abandon(b, ctx.Err())
			return ctx.Err()
		}
	}
	for f := range in {
		w, h := f.mat.Cols(), f.mat.Rows()
		if cur != nil && (w != cur.w || h != cur.h) {
			if err := flush(); err != nil {
				s.fl.release(f, err)
				return err
			}
		}
		if cur == nil {
			var input DetectorInput
			select {
			case input = <-s.inputs:
			case <-ctx.Done():
				s.fl.release(f, ctx.Err())
				return ctx.Err()
			}
			if err := input.Fit(w, h); err != nil {
				s.inputs <- input
				s.fl.release(f, err)
				return fmt.Errorf("frame %d: %w", f.index, err)
			}
			cur = &batch{in: input, w: w, h: h}
		}
		cur.frames = append(cur.frames, f)
		cur.pending.Add(1)
		select {
		case jobs <- prepareJob{f: f, b: cur, row: len(cur.frames) - 1}:
		case <-ctx.Done():
			cur.pending.Done() // never sent
			s.abandon(cur, ctx.Err())
			return ctx.Err()
		}
		if len(cur.frames) == s.rows {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		if cur != nil {
			s.abandon(cur, err)
		}
		return err
	}
	return flush()
}

// abandon releases a batch's frames, once no worker reads them any more,
// and returns its input to the pool.
func (s *batching) abandon(b *batch, err error) {
	b.pending.Wait()
	for _, f := range b.frames {
		s.fl.release(f, err)
	}
	s.inputs <- b.in
}
