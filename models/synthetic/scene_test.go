package synthetic_test

import (
	"testing"

	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// background is a low-saturation grey, far from every colour the models
// look for, as the scene generator's backgrounds are.
var background = synthetic.RGB{R: 120, G: 118, B: 125}

// rect is a half-open pixel rectangle [x0,x1) x [y0,y1).
type rect struct{ x0, y0, x1, y1 int }

// union is the smallest rect holding both; the zero rect is empty.
func (r rect) union(o rect) rect {
	if r == (rect{}) {
		return o
	}
	return rect{min(r.x0, o.x0), min(r.y0, o.y0), max(r.x1, o.x1), max(r.y1, o.y1)}
}

// image is a test picture in RGB. Pixels outside the content size are DETR
// padding: marked 0 in pixel_mask whatever their colour.
type image struct {
	h, w               int
	contentH, contentW int
	pix                []synthetic.RGB
}

func newImage(h, w int) *image {
	m := &image{h: h, w: w, contentH: h, contentW: w, pix: make([]synthetic.RGB, h*w)}
	for i := range m.pix {
		m.pix[i] = background
	}
	return m
}

func (m *image) fill(r rect, c synthetic.RGB) *image {
	for y := r.y0; y < r.y1; y++ {
		for x := r.x0; x < r.x1; x++ {
			m.pix[y*m.w+x] = c
		}
	}
	return m
}

// pad marks everything right of width cw and below height ch as padding.
func (m *image) pad(ch, cw int) *image {
	m.contentH, m.contentW = ch, cw
	return m
}

// mean and std are ImageNet's, the normalisation both real networks expect.
var (
	mean = [3]float32{0.485, 0.456, 0.406}
	std  = [3]float32{0.229, 0.224, 0.225}
)

// pixelValues lays a batch of equally sized images out as the NCHW float
// tensor the pipeline feeds: RGB, scaled to [0,1], ImageNet-normalised.
func pixelValues(t *testing.T, imgs []*image) (shape []int64, data []float32) {
	t.Helper()
	h, w := imgs[0].h, imgs[0].w
	data = make([]float32, 0, len(imgs)*3*h*w)
	for _, m := range imgs {
		if m.h != h || m.w != w {
			t.Fatalf("batch mixes %dx%d and %dx%d images", h, w, m.h, m.w)
		}
		for c := range 3 {
			for _, p := range m.pix {
				v := [3]uint8{p.R, p.G, p.B}[c]
				data = append(data, (float32(v)/255-mean[c])/std[c])
			}
		}
	}
	return []int64{int64(len(imgs)), 3, int64(h), int64(w)}, data
}

// pixelMask is DETR's pixel_mask for a batch: 1 on content, 0 on padding.
func pixelMask(imgs []*image) (shape []int64, data []int64) {
	h, w := imgs[0].h, imgs[0].w
	data = make([]int64, 0, len(imgs)*h*w)
	for _, m := range imgs {
		for y := range h {
			for x := range w {
				v := int64(0)
				if y < m.contentH && x < m.contentW {
					v = 1
				}
				data = append(data, v)
			}
		}
	}
	return []int64{int64(len(imgs)), int64(h), int64(w)}, data
}
