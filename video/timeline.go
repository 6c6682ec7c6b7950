package video

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// timeline is what a video stream's packets say about its frames, read by
// ffprobe without decoding (about a tenth of a second per thousand frames
// of 1080p H.264, most of it reading the file).
//
// It replaces guesses from the container header: Matroska and WebM state no
// frame count, the rate of a variable-rate video says nothing about when
// each frame is shown, and MP4 sample tables count samples that an edit
// list hides (ffprobe marks those packets with the discard flag, and
// decoders drop them).
type timeline struct {
	tb Rational // the stream's time base: one tick is tb.Num/tb.Den seconds
	// pts are the presentation times, in ticks, of the frames a decoder
	// returns, in presentation order. It is nil when some packet has no
	// presentation time (AVI and MPEG program streams leave it out of
	// reordered frames); frames then still holds the count.
	pts      []int64
	frames   int   // packets that decode to a frame (not marked discard)
	packets  int   // every packet, the discarded ones included
	end      int64 // end of the last frame in ticks: its pts plus its duration
	firstDTS int64 // for a stream without pts, where decoding starts
	// problem is ffprobe's last complaint while reading packets, e.g.
	// "partial file" or "File ended prematurely"; "" when it had none.
	problem string
}

// scanPackets lists the packets of stream index of the file at path.
func scanPackets(ctx context.Context, ffprobe, path string, index int) (*timeline, error) {
	cmd := command(ctx, ffprobe, "-v", "error", "-select_streams", strconv.Itoa(index),
		"-show_entries", "packet=pts,dts,duration,flags", "-of", "compact=p=0:nk=0", "file:"+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := newTailBuffer(4 << 10)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("read the packets of %s: run ffprobe: %w", path, err)
	}
	tl := &timeline{}
	exact := true
	lastEnd := int64(math.MinInt64)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		p, ok := parsePacket(sc.Text())
		if !ok {
			continue
		}
		if tl.packets == 0 {
			tl.firstDTS = p.dts
		}
		tl.packets++
		if p.discard {
			continue
		}
		tl.frames++
		if !p.hasPTS {
			exact = false
			continue
		}
		tl.pts = append(tl.pts, p.pts)
		end := p.pts + max(p.duration, 0)
		lastEnd = max(lastEnd, end)
	}
	// Drain what is left so that ffprobe is never blocked on a full pipe.
	for sc.Scan() {
	}
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("read the packets of %s: %w", path, ctx.Err())
	}
	if lines := stderr.lastLines(1); len(lines) > 0 {
		tl.problem = strings.TrimPrefix(lines[0], "file:"+path+": ")
	}
	if waitErr != nil && tl.packets == 0 {
		return nil, fmt.Errorf("read the packets of %s: ffprobe: %v (%s)", path, waitErr, tl.problem)
	}
	if !exact {
		tl.pts = nil
	} else {
		slices.Sort(tl.pts)
		tl.pts = slices.Compact(tl.pts)
		if len(tl.pts) != tl.frames {
			// Two frames shown at the same time: the times are unusable.
			tl.pts = nil
		}
	}
	if len(tl.pts) > 0 {
		tl.end = lastEnd
		if last := tl.pts[len(tl.pts)-1]; tl.end <= last {
			// The last packet states no duration: assume the previous gap.
			tl.end = last + tl.step()
		}
	}
	return tl, nil
}

type packet struct {
	pts, dts, duration int64
	hasPTS, discard    bool
}

// parsePacket parses one line of ffprobe's compact output,
// "pts=0|dts=-1024|duration=512|flags=K_".
func parsePacket(line string) (packet, bool) {
	var p packet
	seen := false
	for _, field := range strings.Split(line, "|") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			continue
		}
		switch k {
		case "pts":
			n, err := strconv.ParseInt(v, 10, 64)
			p.pts, p.hasPTS = n, err == nil
			seen = true
		case "dts":
			p.dts, _ = strconv.ParseInt(v, 10, 64)
		case "duration":
			p.duration, _ = strconv.ParseInt(v, 10, 64)
		case "flags":
			p.discard = strings.Contains(v, "D")
		}
	}
	return p, seen
}

// step is the most common gap between two frames, in ticks; 0 for fewer
// than two frames.
func (tl *timeline) step() int64 {
	if len(tl.pts) < 2 {
		return 0
	}
	counts := map[int64]int{}
	var best int64
	for i := 1; i < len(tl.pts); i++ {
		d := tl.pts[i] - tl.pts[i-1]
		counts[d]++
		if counts[d] > counts[best] || (counts[d] == counts[best] && d < best) {
			best = d
		}
	}
	return best
}

// minGap is the shortest time between two frames, in ticks; 0 for fewer
// than two frames.
func (tl *timeline) minGap() int64 {
	var gap int64
	for i := 1; i < len(tl.pts); i++ {
		if d := tl.pts[i] - tl.pts[i-1]; gap == 0 || d < gap {
			gap = d
		}
	}
	return gap
}

// variable reports whether the frames are not evenly spaced: gaps that
// differ by more than one tick (a millisecond time base spaces 29.97 fps
// frames 33 and 34 ms apart, which is still a constant rate).
func (tl *timeline) variable() bool {
	if len(tl.pts) < 3 {
		return false
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for i := 1; i < len(tl.pts); i++ {
		d := tl.pts[i] - tl.pts[i-1]
		lo, hi = min(lo, d), max(hi, d)
	}
	return hi-lo > 1
}

// averageRate is the number of frames over the time they cover.
func (tl *timeline) averageRate() Rational {
	if len(tl.pts) == 0 || tl.end <= tl.pts[0] {
		return Rational{}
	}
	num := new(big.Int).Mul(big.NewInt(int64(len(tl.pts))), big.NewInt(int64(tl.tb.Den)))
	den := new(big.Int).Mul(big.NewInt(tl.end-tl.pts[0]), big.NewInt(int64(tl.tb.Num)))
	g := new(big.Int).GCD(nil, nil, num, den)
	num.Quo(num, g)
	den.Quo(den, g)
	if !num.IsInt64() || !den.IsInt64() || num.Int64() > math.MaxInt32 || den.Int64() > math.MaxInt32 {
		return FromFloat(float64(len(tl.pts)) / (float64(tl.end-tl.pts[0]) * tl.tb.Float()))
	}
	return Rational{int(num.Int64()), int(den.Int64())}
}

// next returns the first presentation time after t, or false.
func (tl *timeline) next(t int64) (int64, bool) {
	i, found := slices.BinarySearch(tl.pts, t)
	if found {
		i++
	}
	if i < len(tl.pts) {
		return tl.pts[i], true
	}
	return 0, false
}

// contains reports whether a frame is shown at t.
func (tl *timeline) contains(t int64) bool {
	_, found := slices.BinarySearch(tl.pts, t)
	return found
}

// ticks converts ticks of time base tb into a duration, rounded to the
// nanosecond; exact enough that converting back with the same time base
// gives the same tick for any time base coarser than a nanosecond.
func ticks(t int64, tb Rational) time.Duration {
	if !tb.Valid() {
		return 0
	}
	n := new(big.Int).Mul(big.NewInt(t), big.NewInt(int64(tb.Num)*int64(time.Second)))
	return time.Duration(divRound(n, big.NewInt(int64(tb.Den))).Int64())
}

// toTicks converts d into ticks of time base tb, rounded to the nearest.
func toTicks(d time.Duration, tb Rational) int64 {
	if !tb.Valid() {
		return 0
	}
	n := new(big.Int).Mul(big.NewInt(int64(d)), big.NewInt(int64(tb.Den)))
	return divRound(n, big.NewInt(int64(tb.Num)*int64(time.Second))).Int64()
}

// divRound is n/d rounded half away from zero, for d > 0.
func divRound(n, d *big.Int) *big.Int {
	half := new(big.Int).Rsh(d, 1)
	if n.Sign() < 0 {
		q := new(big.Int).Sub(n, half)
		return q.Quo(q, d)
	}
	q := new(big.Int).Add(n, half)
	return q.Quo(q, d)
}
