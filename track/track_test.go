package track

import (
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/geom"
)

const frame = 40 * time.Millisecond // 25 fps

func person(x, y, score float32) geom.Detection {
	return geom.Detection{Box: geom.Box{X1: x, Y1: y, X2: x + 40, Y2: y + 100}, Score: score}
}

func newTracker(t *testing.T, hold time.Duration) *Tracker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Hold = hold
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func update(t *testing.T, tr *Tracker, i int, dets ...geom.Detection) Update {
	t.Helper()
	up, err := tr.Update(time.Duration(i)*frame, dets)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

func TestCrossingPathsKeepTheirIDs(t *testing.T) {
	// Two people walk towards each other at 12 px a frame and pass, their
	// boxes overlapping for several frames; the one walking right must keep
	// its id all the way, and so must the other.
	tr := newTracker(t, 500*time.Millisecond)
	var right, left int
	for i := range 40 {
		a := person(float32(12*i), 50, 0.9)     // walking right
		b := person(float32(468-12*i), 54, 0.9) // walking left
		up := update(t, tr, i, a, b)
		if len(up.Matched) != 2 {
			t.Fatalf("frame %d: %d matches", i, len(up.Matched))
		}
		ids := [2]int{up.Matched[0].Track.ID, up.Matched[1].Track.ID}
		if i == 0 {
			right, left = ids[0], ids[1]
			continue
		}
		if ids != [2]int{right, left} {
			t.Fatalf("frame %d: ids %v, want %v (swapped at the crossing)", i, ids, [2]int{right, left})
		}
	}
}

func TestLowScoresExtendButNeverStart(t *testing.T) {
	tr := newTracker(t, 500*time.Millisecond)
	up := update(t, tr, 0, person(100, 100, 0.9))
	id := up.Matched[0].Track.ID
	// The score dips under the threshold: the low-score box keeps the
	// track, while another low-score box elsewhere starts nothing.
	up = update(t, tr, 1, person(104, 100, 0.4), person(400, 100, 0.5))
	if len(up.Matched) != 1 || up.Matched[0].Det != 0 || up.Matched[0].Track.ID != id || up.Matched[0].Born {
		t.Fatalf("matches %+v: want only the dipping person, on track %d", up.Matched, id)
	}
	// Below the low threshold the detection is ignored: the track is held.
	up = update(t, tr, 2, person(108, 100, 0.2))
	if len(up.Matched) != 0 || len(up.Held) != 1 || up.Held[0].Track.ID != id {
		t.Fatalf("update %+v: want the track held", up)
	}
}

func TestHeldTrackFollowsItsMotionThenEnds(t *testing.T) {
	hold := 100 * time.Millisecond // 2.5 frames at 25 fps
	tr := newTracker(t, hold)
	for i := range 5 {
		update(t, tr, i, person(float32(10*i), 0, 0.9)) // 10 px a frame: 250 px/s
	}
	for i := 5; i <= 7; i++ {
		up := update(t, tr, i)
		missed := i - 4
		if float64(missed)*frame.Seconds() > hold.Seconds() {
			if len(up.Held) != 0 || len(up.Ended) != 1 {
				t.Fatalf("frame %d, %d after the last detection: %+v, want the track ended", i, missed, up)
			}
			continue
		}
		if len(up.Held) != 1 {
			t.Fatalf("frame %d: %+v, want the track held", i, up)
		}
		if got, want := up.Held[0].Box.X1, float32(10*i); got < want-0.5 || got > want+0.5 {
			t.Errorf("frame %d: held box at x=%v, want %v (the person kept walking)", i, got, want)
		}
		if up.Held[0].Track.Misses() != missed {
			t.Errorf("frame %d: %d misses, want %d", i, up.Held[0].Track.Misses(), missed)
		}
	}
	// A person seen again after the track ended starts a new one.
	up := update(t, tr, 8, person(80, 0, 0.9))
	if !up.Matched[0].Born {
		t.Error("a person after the hold did not start a new track")
	}
}

func TestNoHold(t *testing.T) {
	tr := newTracker(t, 0)
	update(t, tr, 0, person(0, 0, 0.9))
	if up := update(t, tr, 1); len(up.Held) != 0 || len(up.Ended) != 1 {
		t.Errorf("hold 0: %+v, want the track ended at the first miss", up)
	}
}

func TestFramesMustMoveForward(t *testing.T) {
	tr := newTracker(t, 0)
	update(t, tr, 3)
	if _, err := tr.Update(3*frame, nil); err == nil {
		t.Error("a frame at the same time as the previous one was accepted")
	}
}
