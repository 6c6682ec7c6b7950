package video

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Rational is an exact frame rate, such as 30000/1001 for NTSC 29.97 fps.
// Rates are kept as fractions because a float cannot represent 30000/1001,
// and re-encoding at a rounded rate makes the video drift against its audio.
// The zero value means "unknown".
type Rational struct{ Num, Den int }

// Valid reports whether r is a usable, positive rate.
func (r Rational) Valid() bool { return r.Num > 0 && r.Den > 0 }

// Float returns r as a float64, or 0 when r is not valid.
func (r Rational) Float() float64 {
	if !r.Valid() {
		return 0
	}
	return float64(r.Num) / float64(r.Den)
}

// String formats r as "Num/Den", the form ffmpeg's -framerate accepts.
func (r Rational) String() string { return fmt.Sprintf("%d/%d", r.Num, r.Den) }

// Duration returns how long frames frames last at rate r, rounded to the
// nanosecond; 0 when r is not valid.
func (r Rational) Duration(frames int) time.Duration {
	if !r.Valid() || frames <= 0 {
		return 0
	}
	// frames*Den/Num seconds, split into whole and remainder so that long
	// videos at large denominators do not overflow int64 nanoseconds.
	q := int64(frames) * int64(r.Den)
	num := int64(r.Num)
	whole := q / num
	rem := q % num
	return time.Duration(whole)*time.Second + time.Duration((rem*int64(time.Second)+num/2)/num)
}

// ParseRational parses a frame rate written as "Num/Den" (as ffprobe prints
// it), as an integer ("25") or as a decimal ("29.97", snapped like FromFloat).
func ParseRational(s string) (Rational, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) (Rational, error) {
		return Rational{}, fmt.Errorf("invalid frame rate %q: %s; write it as Num/Den, e.g. 30000/1001", s, why)
	}
	if s == "" {
		return bad("empty")
	}
	num, den, isFrac := strings.Cut(s, "/")
	if !isFrac {
		if n, err := strconv.Atoi(s); err == nil {
			if n <= 0 {
				return bad("must be positive")
			}
			return Rational{n, 1}, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return bad("not a number")
		}
		r := FromFloat(f)
		if !r.Valid() {
			return bad("must be positive")
		}
		return r, nil
	}
	n, err1 := strconv.Atoi(strings.TrimSpace(num))
	d, err2 := strconv.Atoi(strings.TrimSpace(den))
	if err1 != nil || err2 != nil {
		return bad("not a fraction of integers")
	}
	if d == 0 {
		return bad("zero denominator")
	}
	if n <= 0 || d < 0 {
		return bad("must be positive")
	}
	g := gcd(n, d)
	return Rational{n / g, d / g}, nil
}

// FromFloat converts a floating-point rate (as OpenCV reports it) to a
// Rational. Rates within 1e-3 of an integer or of an NTSC rate n*1000/1001
// snap to that exact value, because containers store those and a float
// round trip loses them; anything else becomes the closest fraction with a
// denominator of at most 1001. Non-positive or non-finite input gives the
// zero Rational.
func FromFloat(f float64) Rational {
	if !(f > 0) || math.IsInf(f, 0) {
		return Rational{}
	}
	const tol = 1e-3
	if n := math.Round(f); n >= 1 && math.Abs(f-n) < tol {
		return Rational{int(n), 1}
	}
	if k := math.Round(f * 1.001); k >= 1 && math.Abs(f-k*1000/1001) < tol {
		return Rational{int(k) * 1000, 1001}
	}
	return bestRational(f, 1001)
}

// bestRational returns the continued-fraction convergent of f closest to it
// whose denominator does not exceed maxDen.
func bestRational(f float64, maxDen int) Rational {
	// Convergents h/k of the continued fraction expansion of f.
	h0, h1 := 0, 1
	k0, k1 := 1, 0
	x := f
	for range 64 {
		a := math.Floor(x)
		if a > math.MaxInt32 {
			break
		}
		ai := int(a)
		h2, k2 := ai*h1+h0, ai*k1+k0
		if k2 > maxDen {
			break
		}
		h0, h1, k0, k1 = h1, h2, k1, k2
		frac := x - a
		if frac < 1e-12 || math.Abs(float64(h1)/float64(k1)-f) < 1e-12 {
			break
		}
		x = 1 / frac
	}
	if h1 <= 0 || k1 <= 0 {
		// f is below 1/maxDen: the smallest rate we can express.
		return Rational{1, maxDen}
	}
	g := gcd(h1, k1)
	return Rational{h1 / g, k1 / g}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	if a < 0 {
		return -a
	}
	return a
}
