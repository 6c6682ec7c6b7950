package pipeline

import (
	"context"
	"fmt"

	"github.com/anonymize-dev/anonymize/geom"
)

// posing estimates the pose of each detected person.
type posing struct {
	fl    *flow
	pe    PoseEstimator
	boxes []geom.Box
}

func (s *posing) run(ctx context.Context, in <-chan *frame, out chan<- *frame) error {
	defer close(out)
	for f := range in {
		f.waited(s.fl.tracer, "wait_for_pose")
		if err := s.estimate(f); err != nil {
			s.fl.release(f, err)
			return fmt.Errorf("frame %d: %w", f.index, err)
		}
		if err := s.fl.send(ctx, out, f); err != nil {
			return err
		}
	}
	return nil
}

func (s *posing) estimate(f *frame) error {
	// Estimate runs even with nobody in the frame, so every frame's trace
	// has the same shape and per-stage span counts equal frame counts.
	s.boxes = s.boxes[:0]
	for _, d := range f.dets {
		s.boxes = append(s.boxes, d.Box)
	}
	poses, err := s.pe.Estimate(f.ctx, f.mat, s.boxes)
	if err != nil {
		return err
	}
	if len(poses) != len(f.dets) {
		return fmt.Errorf("pose estimator returned %d poses for %d people", len(poses), len(f.dets))
	}
	f.poses = poses
	return nil
}
