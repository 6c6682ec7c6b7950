package pose

import "github.com/anonymize-dev/anonymize/geom"

// DecodeHeatmaps finds each joint's peak in k heatmaps of h x w (CHW) and
// refines it by a quarter pixel towards the higher neighbour, as HRNet's
// and TransPose's get_final_preds do. Coordinates are in heatmap pixels.
func DecodeHeatmaps(hm []float32, k, h, w int) []geom.Keypoint {
	out := make([]geom.Keypoint, k)
	plane := h * w
	for j := 0; j < k; j++ {
		m := hm[j*plane : (j+1)*plane]
		best := 0
		for i, v := range m {
			if v > m[best] {
				best = i
			}
		}
		px, py := best%w, best/w
		x, y := float32(px), float32(py)
		conf := m[best]
		if conf > 0 {
			if px > 0 && px < w-1 {
				x += 0.25 * sign(m[py*w+px+1]-m[py*w+px-1])
			}
			if py > 0 && py < h-1 {
				y += 0.25 * sign(m[(py+1)*w+px]-m[(py-1)*w+px])
			}
		}
		out[j] = geom.Keypoint{X: x, Y: y, Conf: conf}
	}
	return out
}

func sign(v float32) float32 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
