package pipeline

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/mask"
	"github.com/anonymize-dev/anonymize/track"
)

// TrackConfig is what the tracking stage needs.
type TrackConfig struct {
	track.Config
	// GrowRate grows a held or backfilled mask, per second away from the
	// frame where its person was seen, by this fraction of the person's
	// box (its longer side): the margin for where they may have moved
	// that the prediction does not know. 1.0 covers a person who walks
	// their own height in a second.
	GrowRate float64
	// Window is the most frames that wait for a backfill: the frames of
	// Hold at the video's nominal rate, with room for faster bursts of a
	// variable rate. Frames beyond it go on unbackfilled.
	Window int
}

// tracking is the stage between inference and encoding. It follows the
// people from frame to frame, places every mask, holds the masks of
// people the detector missed, and keeps the last Hold of frames back from
// the encoder so that a person first detected now can be masked in the
// frames before too (backfill): people are usually detected a few frames
// after they come into view.
type tracking struct {
	cfg     StageConfig
	fl      *flow
	tracker *track.Tracker
	tracer  trace.Tracer
	window  []*frame // frames that a backfill may still reach, oldest first
}

func newTracking(cfg StageConfig, fl *flow) (*tracking, error) {
	tr, err := track.New(cfg.Track.Config)
	if err != nil {
		return nil, err
	}
	return &tracking{cfg: cfg, fl: fl, tracker: tr, tracer: fl.tracer}, nil
}

func (s *tracking) run(ctx context.Context, in <-chan *frame, out chan<- *frame) error {
	defer close(out)
	for f := range in {
		f.waited(s.tracer, "wait_for_track")
		done, err := s.add(f)
		if err != nil {
			s.fl.release(f, err)
			s.fail(err)
			return fmt.Errorf("frame %d: %w", f.index, err)
		}
		if err := s.fl.sendAll(ctx, out, done); err != nil {
			s.fail(err)
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		s.fail(err)
		return err
	}
	return s.fl.sendAll(ctx, out, s.flush())
}

// add plans f's masks, backfills the waiting frames when a track is born,
// and returns the frames that no later backfill can reach, in order.
func (s *tracking) add(f *frame) ([]*frame, error) {
	_, span := s.tracer.Start(f.ctx, "track")
	defer span.End()
	up, err := s.tracker.Update(f.pts, f.dets)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(up.Matched))
	for _, m := range up.Matched {
		d := f.dets[m.Det]
		var p *geom.Pose
		if m.Det < len(f.poses) {
			p = &f.poses[m.Det]
		}
		reg := mask.Plan(d.Box, p, s.cfg.Mask)
		m.Track.SetRegion(reg)
		f.people = append(f.people, Person{Detection: d, Pose: p, Mask: reg, TrackID: m.Track.ID})
		ids = append(ids, int64(m.Track.ID))
		if m.Born {
			s.backfill(m.Track, reg, f.pts)
			f.trackEvent = true
		}
	}
	for _, h := range up.Held {
		f.masks = append(f.masks, s.held(h, f.pts))
	}
	f.trackEvent = f.trackEvent || len(up.Ended) > 0
	span.SetAttributes(
		attribute.Int64Slice("track.ids", ids),
		attribute.Int("track.held", len(up.Held)),
		attribute.Int("track.ended", len(up.Ended)),
	)

	s.window = append(s.window, f)
	// A track born at a later frame backfills frames no older than its
	// birth minus Hold: frames older than that, measured from f, are done.
	n := 0
	for n < len(s.window) && (s.window[n].pts < f.pts-s.cfg.Track.Hold || len(s.window)-n > s.cfg.Track.Window) {
		n++
	}
	done := s.window[:n:n]
	s.window = s.window[n:]
	return done, nil
}

// flush returns the frames still waiting, at the end of the video.
func (s *tracking) flush() []*frame {
	done := s.window
	s.window = nil
	return done
}

// held is the mask of a track the detector missed: its last mask, moved
// as its box is predicted to move and grown for the time it was not seen.
func (s *tracking) held(h track.Held, at time.Duration) geom.Region {
	tr := h.Track
	x0, y0 := tr.Box.Center()
	x1, y1 := h.Box.Center()
	r := tr.Region.Moved(float64(x1-x0), float64(y1-y0), s.grow(tr.Box, at-tr.Seen))
	r.Kind = geom.MaskHeld
	return r
}

// backfill draws a newly born track's first mask, grown for the time
// between them, on the waiting frames within Hold before its birth.
func (s *tracking) backfill(tr *track.Track, reg geom.Region, born time.Duration) {
	for _, w := range s.window {
		if w.pts < born-s.cfg.Track.Hold {
			continue
		}
		r := reg.Moved(0, 0, s.grow(tr.Box, born-w.pts))
		r.Kind = geom.MaskBackfilled
		w.masks = append(w.masks, r)
	}
}

// grow is the margin in pixels for a person with box b over d.
func (s *tracking) grow(b geom.Box, d time.Duration) float64 {
	return s.cfg.Track.GrowRate * float64(max(b.W(), b.H())) * d.Seconds()
}

// fail ends the spans of the waiting frames and returns their Mats, when
// the run stops early.
func (s *tracking) fail(err error) {
	for _, f := range s.flush() {
		s.fl.release(f, err)
	}
}
