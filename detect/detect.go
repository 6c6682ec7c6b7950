package detect

import (
	"context"
	"errors"
	"fmt"
	"math"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/telemetry"
)

const tracerName = "github.com/anonymize-dev/anonymize/detect"

// Config holds the detector's settings.
type Config struct {
	// Threshold is the minimum person score (the reference used 0.70).
	Threshold float64
	// ShortSide and LongSide bound the resized input as DetrImageProcessor
	// does: the short side becomes ShortSide unless the long side would
	// then exceed LongSide.
	ShortSide, LongSide int
	// Batch is how many frames go through the model in one run (0: 1).
	Batch int
	// PersonClass is the person's index in the model's class head; 0
	// means the COCO label set (models.COCOClasses wide, person at
	// models.COCOPersonClass), and then a head of any other width is
	// refused rather than trusted.
	PersonClass int
}

// DefaultConfig returns DetrImageProcessor's sizes and the reference's threshold.
func DefaultConfig() Config {
	return Config{Threshold: 0.70, ShortSide: 800, LongSide: 1333, Batch: 1}
}

// Detector runs one DETR session: Run on batches of frames that
// Preparers filled (the pipeline's way: preparation and the model overlap),
// or Detect on one frame at a time. Run and Detect are not safe for
// concurrent use: they reuse the output tensors from call to call.
type Detector struct {
	sess    *inference.Session
	cfg     Config
	mask    PixelMask
	fused   bool // the model takes frames (Fuse)
	tracer  trace.Tracer
	outputs *inference.Outputs

	// Detect's own input, made at its first call.
	one  *Batch
	prep *Preparer
}

// CheckModel refuses a DETR model the detector cannot use as it is
// configured, before any frame: a batch fixed at another size than the
// detector's, or a class head that does not hold the person class where it
// is looked for. Sizes the model leaves symbolic are checked on its first
// output instead.
func CheckModel(b models.Binding, cfg Config) error {
	if in, ok := batchInput(b); ok && len(in.Dims) > 0 && in.Dims[0] > 0 && in.Dims[0] != int64(max(cfg.Batch, 1)) {
		return fmt.Errorf("person detector (DETR): %q has a fixed batch of %d, and anonymize sends %d frames a run: "+
			"pass --batch %d, or export the model with a dynamic batch", in.Name, in.Dims[0], max(cfg.Batch, 1), in.Dims[0])
	}
	for _, out := range b.Outputs {
		if out.Name == models.DETRLogits && len(out.Dims) == 3 && out.Dims[2] > 0 {
			return checkClasses(int(out.Dims[2]), cfg.PersonClass)
		}
	}
	return nil
}

// batchInput is the input whose first dimension is the batch: the frames
// of a fused model, the pixel values of a plain one.
func batchInput(b models.Binding) (models.TensorInfo, bool) {
	if in, ok := b.Input(FrontFrames); ok {
		return in, true
	}
	return b.Input(models.DETRPixelValues)
}

// checkClasses checks a class head of the given width against the person
// class the detector looks up.
func checkClasses(classes, personClass int) error {
	switch {
	case personClass == 0 && classes != models.COCOClasses:
		return fmt.Errorf("person detector (DETR): the model has %d classes, not the %d of the COCO label set in which class %d is person; "+
			"if its labels differ, pass --person-class with the index of its person class", classes, models.COCOClasses, models.COCOPersonClass)
	case personClass > 0 && personClass >= classes-1:
		return fmt.Errorf("person detector (DETR): --person-class %d is not a class of a model with %d classes (the last is \"no object\")",
			personClass, classes)
	}
	return nil
}

// PixelMask is the pixel_mask input a DETR model declares, if any. DETR
// scales the mask down to its feature map by nearest-neighbour sampling,
// and the program never pads (frames of one video share a size), so the
// mask is all ones: at the image's size, or at whatever fixed size the
// export declares (Hugging Face's exporter declares 64x64, and
// transformers.js feeds 64x64 ones at every image size).
type PixelMask struct {
	Present bool
	// Height and Width are the sizes the model fixes, 0 where the mask
	// follows the image.
	Height, Width int64
}

// PixelMaskOf reads the pixel_mask a model's binding declares.
func PixelMaskOf(b models.Binding) PixelMask {
	t, ok := b.Input(models.DETRPixelMask)
	if !ok {
		return PixelMask{}
	}
	m := PixelMask{Present: true}
	if len(t.Dims) == 3 {
		m.Height, m.Width = max(t.Dims[1], 0), max(t.Dims[2], 0)
	}
	return m
}

// size is the mask's height and width for an image of h x w.
func (m PixelMask) size(h, w int) (int64, int64) {
	mh, mw := int64(h), int64(w)
	if m.Height > 0 {
		mh = m.Height
	}
	if m.Width > 0 {
		mw = m.Width
	}
	return mh, mw
}

// Validate checks the settings.
func (c Config) Validate() error {
	switch {
	case !(c.Threshold > 0 && c.Threshold <= 1):
		return fmt.Errorf("detector threshold %g must be above 0 and at most 1", c.Threshold)
	case c.ShortSide <= 0 || c.LongSide < c.ShortSide:
		return fmt.Errorf("detector input size %d/%d is invalid", c.ShortSide, c.LongSide)
	case c.PersonClass < 0:
		return fmt.Errorf("person class %d is invalid", c.PersonClass)
	case c.Batch < 0:
		return fmt.Errorf("detector batch %d is invalid", c.Batch)
	}
	return nil
}

// New wraps an opened DETR session.
func New(sess *inference.Session, cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Batch == 0 {
		cfg.Batch = 1
	}
	_, fused := sess.Binding.Input(FrontFrames)
	return &Detector{
		sess:    sess,
		cfg:     cfg,
		mask:    PixelMaskOf(sess.Binding),
		fused:   fused,
		tracer:  otel.Tracer(tracerName),
		outputs: inference.NewOutputs(),
	}, nil
}

// BatchSize is how many frames go through the model in one run.
func (d *Detector) BatchSize() int { return d.cfg.Batch }

// Close frees the detector's buffers (not the session, nor the batches and
// preparers it made).
func (d *Detector) Close() error {
	var errs []error
	if d.one != nil {
		errs = append(errs, d.one.Close(), d.prep.Close())
	}
	return errors.Join(append(errs, d.outputs.Close())...)
}

// Detect returns the people in one BGR frame, under a "person_detection"
// span.
func (d *Detector) Detect(ctx context.Context, frame gocv.Mat) (dets []geom.Detection, err error) {
	ctx, span := d.tracer.Start(ctx, "person_detection")
	defer func() {
		span.SetAttributes(attribute.Int("detections", len(dets)))
		telemetry.EndSpan(span, err)
	}()
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, fmt.Errorf("detect: frame must be a non-empty 8-bit BGR image")
	}
	if d.one == nil {
		d.one, d.prep = d.NewBatch(), d.NewPreparer()
	}
	if err := d.one.Fit(frame.Cols(), frame.Rows()); err != nil {
		return nil, err
	}
	if err := d.prep.Prepare(ctx, frame, d.one, 0); err != nil {
		return nil, err
	}
	out, err := d.Run([]context.Context{ctx}, d.one)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ResizeTarget computes DetrImageProcessor's output size (height, width) for
// an image of h x w: the short side becomes short unless that would push
// the long side past long, in which case the long side becomes long. It
// rounds as Python's round does, half to even.
func ResizeTarget(h, w, short, long int) (oh, ow int) {
	size := float64(short)
	minSide, maxSide := float64(min(h, w)), float64(max(h, w))
	raw := 0.0
	if maxSide/minSide*size > float64(long) {
		raw = float64(long) * minSide / maxSide
		size = math.RoundToEven(raw)
	}
	s := int(size)
	if (h <= w && h == s) || (w <= h && w == s) {
		return h, w
	}
	scaled := func(side int) int {
		if raw > 0 {
			return int(raw * float64(side) / minSide)
		}
		return int(size * float64(side) / minSide)
	}
	if w < h {
		return scaled(h), s
	}
	return s, scaled(w)
}

// Postprocess turns DETR's raw outputs for one image (logits [Q,C+1],
// boxes [Q,4] as normalised cx,cy,w,h) into person detections in frame
// pixels, as HF's post_process_object_detection does: softmax over all
// classes, drop "no object" (the last), keep queries whose best class is
// the person class with a score at or above cfg.Threshold.
//
// It fails closed: a value that is not a finite number anywhere in the
// outputs is an error, never "nobody here". A model exported wrongly (a
// reversed pixel_mask, say) answers NaN for every frame, which would
// otherwise read as empty frames and leave every face visible.
func Postprocess(logits, boxes []float32, queries, classes, frameW, frameH int, cfg Config) ([]geom.Detection, error) {
	if err := checkClasses(classes, cfg.PersonClass); err != nil {
		return nil, err
	}
	if queries <= 0 {
		return nil, fmt.Errorf("the model answered with %d queries", queries)
	}
	if len(logits) < queries*classes || len(boxes) < queries*4 {
		return nil, fmt.Errorf("detect: outputs hold %d logits and %d box values, want %d and %d",
			len(logits), len(boxes), queries*classes, queries*4)
	}
	if err := inference.CheckFinite(models.DETRLogits, logits[:queries*classes]); err != nil {
		return nil, err
	}
	if err := inference.CheckFinite(models.DETRPredBoxes, boxes[:queries*4]); err != nil {
		return nil, err
	}
	person := cfg.PersonClass
	if person == 0 {
		person = models.COCOPersonClass
	}
	threshold := cfg.Threshold
	W, H := float32(frameW), float32(frameH)
	var out []geom.Detection
	probs := make([]float32, classes)
	for q := 0; q < queries; q++ {
		softmax(probs, logits[q*classes:(q+1)*classes])
		best := 0
		for c := 1; c < classes-1; c++ {
			if probs[c] > probs[best] {
				best = c
			}
		}
		score := probs[person]
		if best != person || float64(score) < threshold {
			continue
		}
		b := boxes[q*4 : q*4+4]
		cx, cy, bw, bh := b[0], b[1], b[2], b[3]
		box := geom.Box{
			X1: clamp((cx-bw/2)*W, 0, W),
			Y1: clamp((cy-bh/2)*H, 0, H),
			X2: clamp((cx+bw/2)*W, 0, W),
			Y2: clamp((cy+bh/2)*H, 0, H),
		}
		if box.X2 <= box.X1 || box.Y2 <= box.Y1 {
			continue // entirely outside the frame: nothing to mask
		}
		out = append(out, geom.Detection{Box: box, Score: score})
	}
	return out, nil
}

func softmax(dst, logits []float32) {
	m := logits[0]
	for _, v := range logits[1:] {
		m = max(m, v)
	}
	var sum float64
	for i, v := range logits {
		e := math.Exp(float64(v - m))
		dst[i] = float32(e)
		sum += e
	}
	for i := range dst {
		dst[i] = float32(float64(dst[i]) / sum)
	}
}

func clamp(v, lo, hi float32) float32 {
	return min(max(v, lo), hi)
}

// SelfTest runs the model once on a small plain grey picture and fails if
// its outputs are not all finite numbers, or do not fit cfg: a broken
// export is refused when it is loaded, not after a video was processed
// as if nobody were in it. A DETR export whose pixel_mask has the wrong
// polarity (1 must mark real pixels, as in Hugging Face's exports) fails
// here: every position is masked and the attention returns NaN.
func SelfTest(ctx context.Context, sess *inference.Session, cfg Config) error {
	cfg.ShortSide, cfg.LongSide = 64, 64
	d, err := New(sess, cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	// Not a frame: no person_detection span, whose count must equal the
	// frames'.
	d.tracer = noop.Tracer{}
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 64, 64, gocv.MatTypeCV8UC3)
	defer frame.Close()
	if _, err := d.Detect(ctx, frame); err != nil {
		hint := ""
		if d.mask.Present {
			hint = "a pixel_mask of reversed polarity does this: 1 must mark real pixels"
		}
		return inference.SelfTestError(err, hint)
	}
	return nil
}
