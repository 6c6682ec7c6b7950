package synthclip

import (
	"math"

	"gocv.io/x/gocv"
)

// Background levels. Every background pixel stays near grey (channel
// spread at most 2*bgTint+2*bgChanNoise) and no channel drops below about
// 95: a palette colour needs a spread of at least 10 (the ghost colour,
// whose blue is also at most 75) to be matched within Tolerance, so the
// background can never pass for one, even after encoding.
const (
	bgBase      = 112 // darkest gradient level
	bgGradX     = 42  // added across the width
	bgGradY     = 28  // added down the height
	bgStripe    = 6   // amplitude of the diagonal stripes
	bgNoise     = 2   // per-frame luma noise, so the encoder sees change everywhere
	bgChanNoise = 1   // per-channel noise
	bgTint      = 3   // red up, blue down: a warm grey
)

// Render draws frame into dst as BGR (CV_8UC3, Width x Height), reusing
// dst's buffer when it already has that shape.
func (s Scene) Render(frame int, dst *gocv.Mat) {
	if dst.Empty() || dst.Rows() != s.Height || dst.Cols() != s.Width ||
		dst.Type() != gocv.MatTypeCV8UC3 || !dst.IsContinuous() {
		dst.Close()
		*dst = gocv.NewMatWithSize(s.Height, s.Width, gocv.MatTypeCV8UC3)
	}
	buf, err := dst.DataPtrUint8()
	if err != nil {
		// Unreachable: a freshly allocated Mat is continuous.
		panic("synthclip: " + err.Error())
	}
	s.renderInto(frame, buf)
}

// renderInto draws frame into a packed BGR buffer of Width*Height*3 bytes.
func (s Scene) renderInto(frame int, buf []byte) {
	s.background(frame, buf)
	for _, sh := range s.shapes(frame) {
		if !sh.fig.Visible {
			continue
		}
		r := sh.bounds.Intersect(s.blocks())
		for by := r.Min.Y; by < r.Max.Y; by++ {
			for bx := r.Min.X; bx < r.Max.X; bx++ {
				c, ok := sh.colourAt(bx, by)
				if !ok {
					continue
				}
				for y := by * block; y < (by+1)*block; y++ {
					row := buf[(y*s.Width+bx*block)*3:]
					for i := 0; i < block*3; i += 3 {
						row[i], row[i+1], row[i+2] = c.B, c.G, c.R
					}
				}
			}
		}
	}
}

func (s Scene) background(frame int, buf []byte) {
	w, h := s.Width, s.Height
	gx := make([]int, w)
	for x := range gx {
		gx[x] = bgBase + bgGradX*x/w
	}
	period := max(16, w/24)
	stripe := make([]int, period)
	for i := range stripe {
		stripe[i] = int(math.Round(bgStripe * math.Sin(2*math.Pi*float64(i)/float64(period))))
	}
	seed := uint64(s.Seed)*0x9e3779b97f4a7c15 ^ uint64(frame)*0xbf58476d1ce4e5b9
	for y := 0; y < h; y++ {
		gy := bgGradY * y / h
		row := buf[y*w*3 : (y+1)*w*3]
		for x := 0; x < w; x++ {
			n := mix(seed + uint64(y*w+x))
			l := gx[x] + gy + stripe[(x+2*y)%period] + noise(n, bgNoise)
			row[x*3] = uint8(l - bgTint + noise(n>>16, bgChanNoise))
			row[x*3+1] = uint8(l + noise(n>>24, bgChanNoise))
			row[x*3+2] = uint8(l + bgTint + noise(n>>32, bgChanNoise))
		}
	}
}

// noise maps the low byte of n onto [-amp, amp].
func noise(n uint64, amp int) int {
	return int(n&0xff)*(2*amp+1)/256 - amp
}

// mix is SplitMix64's finaliser: cheap, and good enough that the noise shows
// no pattern the encoder could exploit.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
