package audit

import (
	"errors"
	"fmt"
	"image"
	"image/color"

	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/inference"
)

// Config holds the face detector's settings.
type Config struct {
	// MinScore is the least face score (MediaPipe uses 0.65 for the back
	// model). Lower finds more leaks and more false ones.
	MinScore float32
	// MinSuppressionIoU merges faces overlapping by more than this (0.3,
	// as MediaPipe).
	MinSuppressionIoU float32
	// MaxBlack is the share of a face's box, flat black, from which it is
	// taken for a mask rather than a face: BlazeFace scores a black disk
	// on a body as a face (0.8 to 0.86 on the demo's masks), which would
	// make every masked person a leak. The price: a face more than half
	// blacked out is not reported.
	MaxBlack float64
	// Levels is how many times the frame is searched at a finer scale: 0
	// looks at the whole frame once (faces from about a tenth of its short
	// side up to all of it); each level adds overlapping square tiles
	// half the side of the previous level's, which find faces half as
	// large, at four times the cost.
	Levels int
}

// DefaultConfig returns a score of 0.75 (MediaPipe's 0.65 flags patterned
// things, a football's panels, in the opencv-doc photographs), MediaPipe's
// suppression and one level of tiles.
func DefaultConfig() Config {
	return Config{MinScore: 0.75, MinSuppressionIoU: 0.3, MaxBlack: 0.5, Levels: 1}
}

// Validate checks the settings.
func (c Config) Validate() error {
	switch {
	case !(c.MinScore > 0 && c.MinScore < 1):
		return fmt.Errorf("audit: minimum face score %g must be between 0 and 1", c.MinScore)
	case !(c.MinSuppressionIoU > 0 && c.MinSuppressionIoU < 1):
		return fmt.Errorf("audit: suppression IoU %g must be between 0 and 1", c.MinSuppressionIoU)
	case !(c.MaxBlack > 0 && c.MaxBlack <= 1):
		return fmt.Errorf("audit: black share %g of a masked face must be above 0 and at most 1", c.MaxBlack)
	case c.Levels < 0 || c.Levels > 4:
		return fmt.Errorf("audit: %d tile levels: use 0 to 4", c.Levels)
	}
	return nil
}

// Detector finds faces in BGR frames with one BlazeFace session. It is not
// safe for concurrent use.
type Detector struct {
	sess    *inference.Session
	cfg     Config
	input   *ort.Tensor[float32]
	outputs []*ort.Tensor[float32]
	crop    gocv.Mat
	affine  gocv.Mat
	scores  []float32 // both layers' raw scores, in anchor order
	boxes   []float32
}

// New wraps an opened BlazeFace session.
func New(sess *inference.Session, cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{sess: sess, cfg: cfg, crop: gocv.NewMat(), affine: gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F),
		scores: make([]float32, len(anchors)), boxes: make([]float32, len(anchors)*valuesPerAnchor)}
	var err error
	if d.input, err = ort.NewEmptyTensor[float32](ort.NewShape(1, InputSize, InputSize, 3)); err != nil {
		d.Close()
		return nil, fmt.Errorf("audit: allocate input: %w", err)
	}
	for _, shape := range []ort.Shape{{1, layer1, 1}, {1, layer2, 1}, {1, layer1, valuesPerAnchor}, {1, layer2, valuesPerAnchor}} {
		t, err := ort.NewEmptyTensor[float32](shape)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("audit: allocate output: %w", err)
		}
		d.outputs = append(d.outputs, t)
	}
	return d, nil
}

// Close frees the detector's buffers (not the session).
func (d *Detector) Close() error {
	var errs []error
	if d.input != nil {
		errs = append(errs, d.input.Destroy())
		d.input = nil
	}
	for _, t := range d.outputs {
		errs = append(errs, t.Destroy())
	}
	d.outputs = nil
	errs = append(errs, d.crop.Close(), d.affine.Close())
	return errors.Join(errs...)
}

// Windows returns the squares of a w×h frame the detector looks at: the
// whole frame (as a square around it, padded), then at each level
// overlapping squares of half the previous side, spaced by half their side
// and shifted to end at the frame's edges.
func Windows(w, h, levels int) []image.Rectangle {
	side := max(w, h)
	out := []image.Rectangle{image.Rect((w-side)/2, (h-side)/2, (w-side)/2+side, (h-side)/2+side)}
	s := min(w, h)
	for range levels {
		s /= 2
		if s < InputSize/4 {
			break // finer than the picture has pixels for
		}
		for _, y := range steps(h, s) {
			for _, x := range steps(w, s) {
				out = append(out, image.Rect(x, y, x+s, y+s))
			}
		}
	}
	return out
}

// steps are the starts of windows of side s over n pixels, spaced by at
// most s/2, the last one ending at n.
func steps(n, s int) []int {
	if s >= n {
		return []int{0}
	}
	count := (n-s+s/2-1)/(s/2) + 1
	out := make([]int, count)
	for i := range out {
		out[i] = i * (n - s) / (count - 1)
	}
	return out
}

// Faces returns the faces in a BGR frame, in frame pixels.
func (d *Detector) Faces(frame gocv.Mat) ([]Face, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, errors.New("audit: frame must be a non-empty 8-bit BGR image")
	}
	var all []Face
	for _, win := range Windows(frame.Cols(), frame.Rows(), d.cfg.Levels) {
		faces, err := d.window(frame, win)
		if err != nil {
			return nil, err
		}
		all = append(all, faces...)
	}
	faces := weightedNMS(all, d.cfg.MinSuppressionIoU)
	kept := faces[:0]
	for _, f := range faces {
		if blackShare(frame, f.Box) < d.cfg.MaxBlack {
			kept = append(kept, f)
		}
	}
	return kept, nil
}

// blackShare is the share of the pixels of box (clipped to the frame)
// that are black: at most 24 in every channel, which is what a mask comes
// out as after encoding.
func blackShare(frame gocv.Mat, b geom.Box) float64 {
	r := b.Rect().Intersect(image.Rect(0, 0, frame.Cols(), frame.Rows()))
	if r.Empty() {
		return 0
	}
	px, err := frame.DataPtrUint8()
	if err != nil {
		return 0
	}
	step := int(frame.Step())
	black := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := px[y*step:]
		for x := r.Min.X; x < r.Max.X; x++ {
			p := row[x*3:]
			if p[0] <= 24 && p[1] <= 24 && p[2] <= 24 {
				black++
			}
		}
	}
	return float64(black) / float64(r.Dx()*r.Dy())
}

// window runs the model on one square of the frame and returns its faces
// in frame pixels.
func (d *Detector) window(frame gocv.Mat, win image.Rectangle) ([]Face, error) {
	scale := float64(InputSize) / float64(win.Dx())
	m := [6]float64{scale, 0, -float64(win.Min.X) * scale, 0, scale, -float64(win.Min.Y) * scale}
	for i, v := range m {
		d.affine.SetDoubleAt(i/3, i%3, v)
	}
	interp := gocv.InterpolationLinear
	if scale < 1 {
		interp = gocv.InterpolationArea
	}
	gocv.WarpAffineWithParams(frame, &d.crop, d.affine, image.Pt(InputSize, InputSize), interp, gocv.BorderConstant, color.RGBA{})
	px, err := d.crop.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("audit: read crop: %w", err)
	}
	packRGB(d.input.GetData(), px, int(d.crop.Step()))
	outs := make([]ort.Value, len(d.outputs))
	for i, t := range d.outputs {
		outs[i] = t
	}
	if err := d.sess.Run([]ort.Value{d.input}, outs); err != nil {
		return nil, err
	}
	s1, s2 := d.outputs[0].GetData(), d.outputs[1].GetData()
	b1, b2 := d.outputs[2].GetData(), d.outputs[3].GetData()
	copy(d.scores, s1)
	copy(d.scores[len(s1):], s2)
	copy(d.boxes, b1)
	copy(d.boxes[len(b1):], b2)
	if err := inference.CheckFinite("face scores", d.scores); err != nil {
		return nil, d.sess.OutputErr(err)
	}
	faces := decode(d.scores, d.boxes, d.cfg.MinScore)
	inv := float32(1 / scale)
	for i := range faces {
		b := &faces[i].Box
		b.X1 = float32(win.Min.X) + b.X1*inv
		b.X2 = float32(win.Min.X) + b.X2*inv
		b.Y1 = float32(win.Min.Y) + b.Y1*inv
		b.Y2 = float32(win.Min.Y) + b.Y2*inv
	}
	return faces, nil
}

// packRGB writes a 256x256 BGR crop as BlazeFace's input: NHWC RGB scaled
// to [-1, 1].
func packRGB(dst []float32, bgr []byte, step int) {
	for y := range InputSize {
		row := bgr[y*step:]
		o := y * InputSize * 3
		for x := range InputSize {
			p := row[x*3:]
			dst[o] = float32(p[2])/127.5 - 1
			dst[o+1] = float32(p[1])/127.5 - 1
			dst[o+2] = float32(p[0])/127.5 - 1
			o += 3
		}
	}
}
