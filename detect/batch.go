package detect

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/geom"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/telemetry"
)

// Batch is the model's input for up to Rows frames of one size: the
// normalised pixels of each frame and, when the model declares it, the
// pixel mask, which is all ones (every pixel is real: frames of one video
// need no padding; see PixelMask) and so is written once per size; or, for a model with
// its pre-processing fused in (Fuse), the frames' bytes as decoded. Rows
// are filled by Preparers, each its own row, possibly at the same time;
// Run reads them.
type Batch struct {
	rows  int
	mask  PixelMask
	fused bool
	cfg   Config
	// frameW, frameH is the size of the frames the batch was fitted to;
	// inW, inH the model input they are resized to.
	frameW, frameH int
	inW, inH       int
	pixels         *ort.Tensor[float32]
	maskT          *ort.Tensor[int64]
	frames         *ort.Tensor[uint8] // fused models' input
}

// NewBatch returns an empty input for the detector's batch size; Fit
// allocates it.
func (d *Detector) NewBatch() *Batch {
	return &Batch{rows: d.cfg.Batch, mask: d.mask, fused: d.fused, cfg: d.cfg}
}

// Rows is how many frames the batch holds.
func (b *Batch) Rows() int { return b.rows }

// Fit makes the batch ready for frames of w x h, keeping its tensors when
// they already have the size such frames are resized to.
func (b *Batch) Fit(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("detect: frame size %dx%d is invalid", w, h)
	}
	oh, ow := ResizeTarget(h, w, b.cfg.ShortSide, b.cfg.LongSide)
	if b.fused {
		if b.frames != nil && b.frameW == w && b.frameH == h {
			return nil
		}
		if err := b.Close(); err != nil {
			return fmt.Errorf("detect: free input: %w", err)
		}
		var err error
		b.frames, err = ort.NewEmptyTensor[uint8](ort.NewShape(int64(b.rows), int64(h), int64(w), 3))
		if err != nil {
			return fmt.Errorf("detect: allocate input for %d frames of %dx%d: %w", b.rows, w, h, err)
		}
		// The model resizes them to inW x inH itself.
		b.frameW, b.frameH, b.inW, b.inH = w, h, ow, oh
		return nil
	}
	b.frameW, b.frameH = w, h
	if b.pixels != nil && b.inW == ow && b.inH == oh {
		return nil
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("detect: free input: %w", err)
	}
	rows := int64(b.rows)
	var err error
	b.pixels, err = ort.NewEmptyTensor[float32](ort.NewShape(rows, 3, int64(oh), int64(ow)))
	if err != nil {
		return fmt.Errorf("detect: allocate input for %d frames of %dx%d: %w", b.rows, ow, oh, err)
	}
	if b.mask.Present {
		mh, mw := b.mask.size(oh, ow)
		b.maskT, err = ort.NewEmptyTensor[int64](ort.NewShape(rows, mh, mw))
		if err != nil {
			return fmt.Errorf("detect: allocate pixel mask: %w", err)
		}
		m := b.maskT.GetData()
		for i := range m {
			m[i] = 1
		}
	}
	b.inW, b.inH = ow, oh
	return nil
}

// Close frees the batch's tensors.
func (b *Batch) Close() error {
	var errs []error
	if b.pixels != nil {
		errs = append(errs, b.pixels.Destroy())
		b.pixels = nil
	}
	if b.maskT != nil {
		errs = append(errs, b.maskT.Destroy())
		b.maskT = nil
	}
	if b.frames != nil {
		errs = append(errs, b.frames.Destroy())
		b.frames = nil
	}
	return errors.Join(errs...)
}

// Preparer resizes and normalises frames into a Batch's rows. Each holds
// its own scratch images, so several can fill one batch at once; one
// Preparer is not safe for concurrent use.
type Preparer struct {
	tracer  trace.Tracer
	resized gocv.Mat
	scratch gocv.Mat // the blurred frame before resizing
}

// NewPreparer returns a preparer for one worker.
func (d *Detector) NewPreparer() *Preparer {
	return &Preparer{tracer: d.tracer, resized: gocv.NewMat(), scratch: gocv.NewMat()}
}

// Close frees the preparer's scratch images.
func (p *Preparer) Close() error {
	return errors.Join(p.resized.Close(), p.scratch.Close())
}

// Prepare writes a BGR frame into row of b, under a "preprocess" span.
func (p *Preparer) Prepare(ctx context.Context, frame gocv.Mat, b *Batch, row int) (err error) {
	_, span := p.tracer.Start(ctx, "preprocess")
	span.SetAttributes(attribute.Int("input.width", b.inW), attribute.Int("input.height", b.inH), attribute.Int("batch.row", row))
	defer func() { telemetry.EndSpan(span, err) }()
	switch {
	case frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3:
		return fmt.Errorf("detect: frame must be a non-empty 8-bit BGR image")
	case b.pixels == nil && b.frames == nil:
		return fmt.Errorf("detect: the batch was not fitted to a frame size")
	case frame.Cols() != b.frameW || frame.Rows() != b.frameH:
		return fmt.Errorf("detect: frame is %dx%d, the batch was fitted to %dx%d", frame.Cols(), frame.Rows(), b.frameW, b.frameH)
	case row < 0 || row >= b.rows:
		return fmt.Errorf("detect: row %d of a batch of %d", row, b.rows)
	}
	if b.fused {
		return b.copyFrame(frame, row)
	}
	src := frame
	if b.inW != b.frameW || b.inH != b.frameH {
		p.resize(frame, b.inW, b.inH)
		src = p.resized
	}
	data, err := src.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("detect: read frame pixels: %w", err)
	}
	per := 3 * b.inW * b.inH
	return inference.PackImageNet(b.pixels.GetData()[row*per:(row+1)*per], data, b.inW, b.inH, int(src.Step()))
}

// copyFrame writes a frame's bytes into row of a fused model's input.
func (b *Batch) copyFrame(frame gocv.Mat, row int) error {
	data, err := frame.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("detect: read frame pixels: %w", err)
	}
	line, step := 3*b.frameW, int(frame.Step())
	dst := b.frames.GetData()[row*line*b.frameH : (row+1)*line*b.frameH]
	if step == line {
		copy(dst, data[:len(dst)])
		return nil
	}
	for y := range b.frameH {
		copy(dst[y*line:(y+1)*line], data[y*step:])
	}
	return nil
}

// resize brings frame to ow x oh in p.resized, close to what Pillow's
// bilinear resize (DetrImageProcessor's) gives. Pillow widens its triangle
// filter by the scale when shrinking, so every input pixel counts; OpenCV's
// INTER_LINEAR reads only the nearest four and aliases, and INTER_AREA,
// closer, is slow at scales that are not whole numbers. From a scale of
// 1.44 (1080p) up, a Gaussian blur first, then INTER_LINEAR, is as close
// to Pillow as INTER_AREA at 1080p (0.50 against 0.51 levels on average),
// much closer above (0.27 against 0.71 at 1440p, 0.23 against 0.89 at
// 2160p), and 2.7 times faster at 1080p: measured against a Go port of
// Pillow's resampling on detailed frames in resize_test.go.
func (p *Preparer) resize(frame gocv.Mat, ow, oh int) {
	sx, sy := float64(frame.Cols())/float64(ow), float64(frame.Rows())/float64(oh)
	switch {
	case sx <= 1 && sy <= 1:
		gocv.Resize(frame, &p.resized, image.Pt(ow, oh), 0, 0, gocv.InterpolationLinear)
		return
	case sx < 1.44 && sy < 1.44:
		// Shrunk less than 1080p is, INTER_AREA is the closer (they are
		// even at 1080p, and the blur wins more and more above).
		gocv.Resize(frame, &p.resized, image.Pt(ow, oh), 0, 0, gocv.InterpolationArea)
		return
	}
	sigX, sigY := blurSigma(sx), blurSigma(sy)
	gocv.GaussianBlur(frame, &p.scratch, image.Pt(blurSize(sigX), blurSize(sigY)), sigX, sigY, gocv.BorderReflect101)
	gocv.Resize(p.scratch, &p.resized, image.Pt(ow, oh), 0, 0, gocv.InterpolationLinear)
}

// Run runs the model on the first len(ctxs) rows of b, one frame's
// context per row, and returns each frame's people. A batch runs whole,
// however many of its rows are filled (the rest keep an earlier frame and
// are not read): the model then sees one input shape, which a GPU plans
// for once. Each frame's trace gets its own "inference" span, timed as
// the shared run and saying which batch it was part of, and its own
// "postprocess"; an error names the first frame whose output is bad.
func (d *Detector) Run(ctxs []context.Context, b *Batch) ([][]geom.Detection, error) {
	n := len(ctxs)
	if n == 0 || n > b.rows {
		return nil, fmt.Errorf("detect: %d frames for a batch of %d", n, b.rows)
	}
	var inputs []ort.Value
	switch {
	case b.fused && b.frames != nil:
		inputs = []ort.Value{b.frames}
	case !b.fused && b.pixels != nil:
		inputs = []ort.Value{b.pixels}
		if b.mask.Present {
			inputs = append(inputs, b.maskT)
		}
	default:
		return nil, fmt.Errorf("detect: the batch was not fitted to a frame size")
	}
	t0 := time.Now()
	// Output shapes follow the batch and, for some exports, the input
	// size (which follows the frame size): both are in the key.
	outputs, err := d.outputs.Run(d.sess, int64(b.rows)<<48|int64(b.frameH)<<24|int64(b.frameW), inputs)
	t1 := time.Now()
	for i, ctx := range ctxs {
		_, span := d.tracer.Start(ctx, "inference", trace.WithTimestamp(t0), trace.WithAttributes(
			attribute.Int(AttrBatchFrames, n), attribute.Int("batch.rows", b.rows), attribute.Int("batch.row", i)))
		telemetry.EndSpan(span, err, trace.WithTimestamp(t1))
	}
	if err != nil {
		return nil, err
	}
	logits, boxes, queries, classes, err := splitOutputs(outputs, b.rows)
	if err != nil {
		return nil, d.sess.OutputErr(err)
	}
	out := make([][]geom.Detection, n)
	for i, ctx := range ctxs {
		_, post := d.tracer.Start(ctx, "postprocess")
		out[i], err = Postprocess(logits[i*queries*classes:(i+1)*queries*classes], boxes[i*queries*4:(i+1)*queries*4],
			queries, classes, b.frameW, b.frameH, d.cfg)
		err = d.sess.OutputErr(err)
		post.SetAttributes(attribute.Int("detections", len(out[i])))
		telemetry.EndSpan(post, err)
		if err != nil {
			return nil, &FrameError{Row: i, Err: err}
		}
	}
	return out, nil
}

// AttrBatchFrames is the attribute of a frame's "inference" span that says
// how many frames shared the run: a span's duration divided by it is the
// frame's share of the model's time.
const AttrBatchFrames = "batch.frames"

// FrameError is an error in the output for one frame of a batch.
type FrameError struct {
	Row int
	Err error
}

func (e *FrameError) Error() string { return e.Err.Error() }
func (e *FrameError) Unwrap() error { return e.Err }

// splitOutputs checks DETR's outputs for a batch of rows and returns them
// flat, with their query and class counts.
func splitOutputs(outputs []ort.Value, rows int) (logits, boxes []float32, queries, classes int, err error) {
	lt, ok := outputs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, nil, 0, 0, fmt.Errorf("logits output is %T, want a float32 tensor", outputs[0])
	}
	bt, ok := outputs[1].(*ort.Tensor[float32])
	if !ok {
		return nil, nil, 0, 0, fmt.Errorf("pred_boxes output is %T, want a float32 tensor", outputs[1])
	}
	ls, bs := lt.GetShape(), bt.GetShape()
	r := int64(rows)
	if len(ls) != 3 || len(bs) != 3 || ls[0] != r || bs[0] != r || ls[1] != bs[1] || bs[2] != 4 {
		return nil, nil, 0, 0, fmt.Errorf("model returned logits %v and pred_boxes %v, want [%d,Q,C+1] and [%d,Q,4]", ls, bs, rows, rows)
	}
	return lt.GetData(), bt.GetData(), int(ls[1]), int(ls[2]), nil
}

// blurSigma is the Gaussian's sigma before a bilinear shrink by s: it
// matches the variance of Pillow's filter (a triangle of half-width s,
// variance s²/6, of which bilinear sampling already gives 1/6) where that
// is larger than 0.35 s, the best fit at scales below 2.
func blurSigma(s float64) float64 { return max(0.35*s, math.Sqrt(max(s*s-1, 0)/6)) }

// blurSize is the Gaussian's kernel width: three sigmas each side.
func blurSize(sigma float64) int { return 2*int(math.Ceil(3*sigma)) + 1 }
