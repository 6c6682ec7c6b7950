// Package track follows people from frame to frame, so that a mask can
// outlive the detector's momentary misses: a person the detector loses for
// a frame (motion blur, occlusion, a score dipping under the threshold)
// keeps a mask where they are predicted to be.
//
// Association is ByteTrack's: each track's box is predicted to the frame's
// time at constant velocity; confident detections are matched to the
// predictions first, by IoU with an optimal assignment; detections whose
// score is only above a lower threshold are then matched to the tracks left
// over, so a person whose score dips is still followed, but never start a
// track of their own.
package track
