package track

import (
	"fmt"
	"time"

	"github.com/anonymize-dev/anonymize/geom"
)

// Config holds the tracker's settings.
type Config struct {
	// High is the score from which a detection is a person: it extends a
	// track or starts one (the detector's --threshold).
	High float64
	// Low is the score from which a detection may extend a track that
	// confident detections left unmatched (--track-low). At or above High
	// it has no effect.
	Low float64
	// Hold is how long a track that goes unmatched is kept (and masked at
	// its predicted position) before it ends (--hold). Zero ends it at the
	// first miss.
	Hold time.Duration
	// MatchIoU and LowMatchIoU are the least IoU of a match in the first
	// (confident) and second (low-score) association.
	MatchIoU, LowMatchIoU float64
}

// DefaultConfig returns ByteTrack's matching thresholds (IoU 0.2 for the
// first association, 0.5 for the second), a low score of 0.3 and a hold of
// half a second.
func DefaultConfig() Config {
	return Config{High: 0.7, Low: 0.3, Hold: 500 * time.Millisecond, MatchIoU: 0.2, LowMatchIoU: 0.5}
}

// Validate checks the settings.
func (c Config) Validate() error {
	switch {
	case !(c.High > 0 && c.High <= 1):
		return fmt.Errorf("track: high score %g must be above 0 and at most 1", c.High)
	case !(c.Low > 0 && c.Low <= 1):
		return fmt.Errorf("track: low score %g must be above 0 and at most 1", c.Low)
	case c.Hold < 0:
		return fmt.Errorf("track: hold %v must not be negative", c.Hold)
	case !(c.MatchIoU > 0 && c.MatchIoU <= 1 && c.LowMatchIoU > 0 && c.LowMatchIoU <= 1):
		return fmt.Errorf("track: match IoU %g/%g must be above 0 and at most 1", c.MatchIoU, c.LowMatchIoU)
	}
	return nil
}

// Track is one person followed across frames.
type Track struct {
	ID int
	// Box is where the person was last seen, at Seen.
	Box  geom.Box
	Seen time.Duration
	// Born is the time of the frame that started the track.
	Born time.Duration
	// Region is the mask placed the last time the person was seen (set by
	// the caller with SetRegion); held masks follow it.
	Region geom.Region
	// velocity is the box's motion in pixels per second (X1, Y1, X2, Y2).
	velocity    [4]float64
	hasVelocity bool // seen twice: velocity is measured
	misses      int  // frames since Seen
}

// Predict returns where the track's box is expected at time t, moving at
// constant velocity since it was last seen.
func (tr *Track) Predict(t time.Duration) geom.Box {
	dt := (t - tr.Seen).Seconds()
	b := tr.Box
	return geom.Box{
		X1: b.X1 + float32(tr.velocity[0]*dt), Y1: b.Y1 + float32(tr.velocity[1]*dt),
		X2: b.X2 + float32(tr.velocity[2]*dt), Y2: b.Y2 + float32(tr.velocity[3]*dt),
	}
}

// Misses is the number of frames since the track was last matched.
func (tr *Track) Misses() int { return tr.misses }

// Match pairs a detection of the frame with the track it belongs to.
type Match struct {
	Det   int // index in the detections passed to Update
	Track *Track
	Born  bool // the detection started the track
}

// Held is a track that the frame's detections did not match but that is
// still within its hold.
type Held struct {
	Track *Track
	Box   geom.Box // the predicted box at the frame's time
}

// Update is what the tracker made of one frame.
type Update struct {
	Matched []Match // in the order of the detections
	Held    []Held
	Ended   []*Track // tracks whose hold ran out at this frame
}

// Tracker follows people through one video. It is not safe for concurrent
// use: frames must be given in order.
type Tracker struct {
	cfg    Config
	tracks []*Track
	nextID int
	last   time.Duration
	frames int
}

// New returns a tracker with no tracks.
func New(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Tracker{cfg: cfg, nextID: 1}, nil
}

// Update matches the detections of the frame shown at t (at or above
// Config.Low; those below are ignored) to the tracks and returns which
// detections belong to which track, which tracks are held and which
// ended. Low-score detections that match no track are left out of
// Matched: they are not people.
func (t *Tracker) Update(at time.Duration, dets []geom.Detection) (Update, error) {
	if t.frames > 0 && at <= t.last {
		return Update{}, fmt.Errorf("track: frame at %v is not after the previous one at %v", at, t.last)
	}
	t.frames++
	t.last = at

	var high, low []int
	for i, d := range dets {
		switch s := float64(d.Score); {
		case s >= t.cfg.High:
			high = append(high, i)
		case s >= t.cfg.Low:
			low = append(low, i)
		}
	}
	predicted := make([]geom.Box, len(t.tracks))
	for i, tr := range t.tracks {
		predicted[i] = tr.Predict(at)
	}

	detTrack := make(map[int]*Track, len(dets))
	free := make([]int, len(t.tracks)) // indexes of tracks not yet matched
	for i := range free {
		free[i] = i
	}
	free = t.associate(at, dets, high, free, predicted, t.cfg.MatchIoU, detTrack)
	free = t.associate(at, dets, low, free, predicted, t.cfg.LowMatchIoU, detTrack)

	var up Update
	born := map[int]bool{}
	for _, i := range high {
		if detTrack[i] != nil {
			continue
		}
		tr := &Track{ID: t.nextID, Box: dets[i].Box, Seen: at, Born: at}
		t.nextID++
		t.tracks = append(t.tracks, tr)
		detTrack[i] = tr
		born[i] = true
	}
	for i := range dets {
		if tr := detTrack[i]; tr != nil {
			up.Matched = append(up.Matched, Match{Det: i, Track: tr, Born: born[i]})
		}
	}

	kept := t.tracks[:0]
	isFree := map[*Track]bool{}
	for _, k := range free {
		isFree[t.tracks[k]] = true
	}
	for i, tr := range t.tracks {
		if !isFree[tr] {
			kept = append(kept, tr)
			continue
		}
		tr.misses++
		if at-tr.Seen <= t.cfg.Hold && t.cfg.Hold > 0 {
			up.Held = append(up.Held, Held{Track: tr, Box: predicted[i]})
			kept = append(kept, tr)
		} else {
			up.Ended = append(up.Ended, tr)
		}
	}
	clear(t.tracks[len(kept):])
	t.tracks = kept
	return up, nil
}

// associate matches the detections idx to the free tracks by IoU with
// their predicted boxes, optimally, keeping pairs with IoU of at least
// minIoU; it records each match and returns the tracks still free.
func (t *Tracker) associate(at time.Duration, dets []geom.Detection, idx, free []int, predicted []geom.Box,
	minIoU float64, detTrack map[int]*Track) []int {
	if len(idx) == 0 || len(free) == 0 {
		return free
	}
	cost := make([][]float64, len(idx))
	for r, i := range idx {
		cost[r] = make([]float64, len(free))
		for c, k := range free {
			cost[r][c] = 1 - float64(dets[i].Box.IoU(predicted[k]))
		}
	}
	taken := make([]bool, len(free))
	for r, c := range assign(cost) {
		if c < 0 || 1-cost[r][c] < minIoU {
			continue
		}
		tr := t.tracks[free[c]]
		tr.observe(at, dets[idx[r]].Box)
		detTrack[idx[r]] = tr
		taken[c] = true
	}
	var rest []int
	for c, k := range free {
		if !taken[c] {
			rest = append(rest, k)
		}
	}
	return rest
}

// observe moves the track to a matched box, updating its velocity: an
// even blend of the previous estimate and the motion since it was last
// seen, which follows a walking person without jumping at every jittery
// box.
func (tr *Track) observe(at time.Duration, b geom.Box) {
	dt := (at - tr.Seen).Seconds()
	if dt > 0 {
		motion := [4]float64{
			float64(b.X1-tr.Box.X1) / dt, float64(b.Y1-tr.Box.Y1) / dt,
			float64(b.X2-tr.Box.X2) / dt, float64(b.Y2-tr.Box.Y2) / dt,
		}
		for i := range motion {
			if tr.hasVelocity {
				tr.velocity[i] = 0.5*tr.velocity[i] + 0.5*motion[i]
			} else {
				tr.velocity[i] = motion[i]
			}
		}
		tr.hasVelocity = true
	}
	tr.Box, tr.Seen, tr.misses = b, at, 0
}

// SetRegion records the mask placed for the track's person in the frame
// where it was last seen.
func (tr *Track) SetRegion(r geom.Region) { tr.Region = r }
