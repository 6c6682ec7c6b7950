package video

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// Orientation is how a player turns the coded picture before showing it,
// as the container's display matrix (phone videos) says. Frames are
// transposed first, then mirrored; the eight combinations are every turn
// by a multiple of 90 degrees, mirrored or not.
//
// The package applies it itself rather than through OpenCV's
// CAP_PROP_ORIENTATION_AUTO: OpenCV 4.6 turns 90 and 270 degree videos the
// wrong way round (they come out upside down compared with every player).
type Orientation struct {
	Transpose bool // swap rows and columns (a quarter turn, before the flips)
	FlipX     bool // then mirror left-right
	FlipY     bool // then mirror top-bottom
}

// IsIdentity reports whether frames are shown as coded.
func (o Orientation) IsIdentity() bool { return o == Orientation{} }

// Upright returns the size of an upright frame for a coded w×h picture.
func (o Orientation) Upright(w, h int) (int, int) {
	if o.Transpose {
		return h, w
	}
	return w, h
}

// Clockwise is the turn, in degrees (0, 90, 180 or 270), that together
// with Mirrored gives the orientation: a player turns the picture by it,
// after mirroring it left-right when Mirrored.
func (o Orientation) Clockwise() (deg int, mirrored bool) {
	switch o {
	case Orientation{}:
		return 0, false
	case Orientation{FlipX: true, FlipY: true}:
		return 180, false
	case Orientation{Transpose: true, FlipX: true}:
		return 90, false
	case Orientation{Transpose: true, FlipY: true}:
		return 270, false
	case Orientation{FlipX: true}:
		return 0, true
	case Orientation{FlipY: true}:
		return 180, true
	case Orientation{Transpose: true}:
		return 270, true
	default: // Transpose, FlipX and FlipY
		return 90, true
	}
}

// String describes the orientation for people: "as coded", "turned 90°
// clockwise", "mirrored and turned 180° clockwise".
func (o Orientation) String() string {
	deg, mirrored := o.Clockwise()
	switch {
	case deg == 0 && !mirrored:
		return "as coded"
	case deg == 0:
		return "mirrored"
	case mirrored:
		return fmt.Sprintf("mirrored and turned %d° clockwise", deg)
	}
	return fmt.Sprintf("turned %d° clockwise", deg)
}

// orientationFromMatrix reads an ISO/IEC 14496-12 display matrix, nine
// 16.16 / 2.30 fixed-point numbers in the order ffprobe prints them
// (a b u c d v x y w). A coded pixel (p, q) is shown at (a·p + c·q + x,
// b·p + d·q + y); only the signs of a, b, c and d matter for a turn by a
// multiple of 90 degrees, scaling does not. ok is false for a matrix that
// turns by another angle, which players show tilted and this package does
// not reproduce; the nearest quarter turn is returned then.
func orientationFromMatrix(m [9]float64) (o Orientation, ok bool) {
	a, b, c, d := m[0], m[1], m[3], m[4]
	scaleX, scaleY := math.Hypot(a, c), math.Hypot(b, d)
	if scaleX == 0 || scaleY == 0 {
		return Orientation{}, false
	}
	a, c, b, d = a/scaleX, c/scaleX, b/scaleY, d/scaleY
	const cos1deg = 0.99985
	if math.Abs(a) >= math.Abs(b) {
		// x' follows p and y' follows q: no transpose.
		o = Orientation{FlipX: a < 0, FlipY: d < 0}
		ok = math.Abs(a) > cos1deg && math.Abs(d) > cos1deg
	} else {
		// x' follows q and y' follows p: rows and columns swap.
		o = Orientation{Transpose: true, FlipX: c < 0, FlipY: b < 0}
		ok = math.Abs(b) > cos1deg && math.Abs(c) > cos1deg
	}
	return o, ok
}

// orientationFromRotation turns a rotation in degrees counter-clockwise
// (ffprobe's "rotation" of a display matrix) into an Orientation; used when
// ffprobe gives the angle but not the matrix.
func orientationFromRotation(ccw float64) (Orientation, bool) {
	rad := ccw * math.Pi / 180
	// The display matrix of a counter-clockwise turn by rad, as FFmpeg's
	// av_display_rotation_set writes it.
	cos, sin := math.Cos(rad), math.Sin(rad)
	return orientationFromMatrix([9]float64{cos, -sin, 0, sin, cos, 0, 0, 0, 1})
}

// parseDisplayMatrix parses ffprobe's text dump of a display matrix:
// three lines "00000000:  a  b  u" of decimal integers.
func parseDisplayMatrix(s string) ([9]float64, bool) {
	var m [9]float64
	n := 0
	for _, line := range strings.Split(s, "\n") {
		_, vals, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		for _, f := range strings.Fields(vals) {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil || n == len(m) {
				return m, false
			}
			m[n] = float64(v)
			n++
		}
	}
	return m, n == len(m)
}

// apply writes src turned upright into dst; src is not changed. dst must
// not be src.
func (o Orientation) apply(src gocv.Mat, dst *gocv.Mat) {
	switch o {
	case Orientation{FlipX: true, FlipY: true}:
		gocv.Rotate(src, dst, gocv.Rotate180Clockwise)
	case Orientation{Transpose: true, FlipX: true}:
		gocv.Rotate(src, dst, gocv.Rotate90Clockwise)
	case Orientation{Transpose: true, FlipY: true}:
		gocv.Rotate(src, dst, gocv.Rotate90CounterClockwise)
	case Orientation{FlipX: true}:
		gocv.Flip(src, dst, 1)
	case Orientation{FlipY: true}:
		gocv.Flip(src, dst, 0)
	case Orientation{Transpose: true}:
		gocv.Transpose(src, dst)
	case Orientation{Transpose: true, FlipX: true, FlipY: true}:
		gocv.Transpose(src, dst)
		gocv.Flip(*dst, dst, -1)
	default:
		src.CopyTo(dst)
	}
}
