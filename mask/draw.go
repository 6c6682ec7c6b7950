package mask

import (
	"fmt"
	"image"
	"image/color"

	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
)

// skeleton lists COCO's limb pairs.
var skeleton = [][2]int{
	{15, 13}, {13, 11}, {16, 14}, {14, 12}, {11, 12}, {5, 11}, {6, 12}, {5, 6}, {5, 7},
	{6, 8}, {7, 9}, {8, 10}, {1, 2}, {0, 1}, {0, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6},
}

var (
	boxColour  = color.RGBA{G: 255, A: 255}
	limbColour = color.RGBA{R: 255, G: 160, A: 255}
	kptColour  = color.RGBA{R: 255, B: 255, A: 255}
)

// DrawDebug draws a person's box, track id, score and confident keypoints and limbs,
// for --draw: it shows what the models saw, which is the first thing to
// look at when a mask is misplaced.
func DrawDebug(frame *gocv.Mat, det geom.Detection, p *geom.Pose, trackID int, kptThreshold float64) {
	r := det.Box.Rect()
	gocv.Rectangle(frame, r, boxColour, 2)
	gocv.PutText(frame, fmt.Sprintf("#%d %.2f", trackID, det.Score), image.Pt(r.Min.X, max(r.Min.Y-4, 12)),
		gocv.FontHersheySimplex, 0.5, boxColour, 1)
	if p == nil {
		return
	}
	pt := func(k int) image.Point { return image.Pt(int(p[k].X+0.5), int(p[k].Y+0.5)) }
	for _, l := range skeleton {
		if float64(p[l[0]].Conf) >= kptThreshold && float64(p[l[1]].Conf) >= kptThreshold {
			gocv.Line(frame, pt(l[0]), pt(l[1]), limbColour, 2)
		}
	}
	for k := range p {
		if float64(p[k].Conf) >= kptThreshold {
			gocv.Circle(frame, pt(k), 3, kptColour, -1)
		}
	}
}
