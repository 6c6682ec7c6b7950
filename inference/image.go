package inference

import (
	"fmt"
	"runtime"
	"sync"
)

// ImageNet normalisation, in RGB order, as both DETR's and TransPose's
// training pipelines apply it.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// imageNetLUT maps an 8-bit value to its normalised float for each RGB
// channel: three table lookups per pixel instead of a divide and two
// multiplies, which matters at 1333x750 pixels per frame.
var imageNetLUT = func() (lut [3][256]float32) {
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			lut[c][v] = (float32(v)/255 - ImageNetMean[c]) / ImageNetStd[c]
		}
	}
	return lut
}()

// PackImageNet writes an 8-bit BGR image (HWC, rows of stride bytes) into dst
// as a normalised RGB CHW float tensor of width w and height h. Large images
// are split by rows across the available cores.
func PackImageNet(dst []float32, bgr []uint8, w, h, stride int) error {
	plane := w * h
	if len(dst) < 3*plane {
		return fmt.Errorf("pack image: tensor holds %d values, need %d", len(dst), 3*plane)
	}
	if stride < 3*w || len(bgr) < stride*(h-1)+3*w {
		return fmt.Errorf("pack image: %d bytes do not hold a %dx%d BGR image", len(bgr), w, h)
	}
	r, g, b := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	pack := func(y0, y1 int) {
		for y := y0; y < y1; y++ {
			row := bgr[y*stride : y*stride+3*w]
			o := y * w
			for x := 0; x < w; x++ {
				p := row[3*x : 3*x+3 : 3*x+3]
				b[o+x] = imageNetLUT[2][p[0]]
				g[o+x] = imageNetLUT[1][p[1]]
				r[o+x] = imageNetLUT[0][p[2]]
			}
		}
	}
	workers := runtime.GOMAXPROCS(0)
	if plane < 1<<16 || workers == 1 {
		pack(0, h)
		return nil
	}
	var wg sync.WaitGroup
	step := (h + workers - 1) / workers
	for y := 0; y < h; y += step {
		wg.Add(1)
		go func(y0, y1 int) {
			defer wg.Done()
			pack(y0, y1)
		}(y, min(y+step, h))
	}
	wg.Wait()
	return nil
}
