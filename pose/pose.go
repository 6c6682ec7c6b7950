package pose

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"

	ort "github.com/yalue/onnxruntime_go"
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

const tracerName = "github.com/anonymize-dev/anonymize/pose"

// Config holds the estimator's settings.
type Config struct {
	// BatchSize caps how many people go through the model at once, so a
	// crowd cannot exhaust GPU memory (the reference sent everyone in one
	// batch and did).
	BatchSize int
	// Padding grows each box before cropping, so limbs at its edge stay in
	// view (1.25 in HRNet and TransPose).
	Padding float64
	// FixedBatch, when positive, is the batch size the model was exported
	// with (see FixedBatch): every run then sends exactly that many crops,
	// padded with empty ones, and BatchSize is capped to it.
	FixedBatch int
	// PadBatches pads each batch to a power of two (or to BatchSize), so
	// the model only ever sees a handful of batch sizes: on a GPU, the
	// CUDA provider plans its convolutions (cuDNN's search) and TensorRT
	// builds a profile for each new input shape, and with a size that
	// changes every frame it would keep doing so. On the CPU padding is
	// wasted work, so it is off there.
	PadBatches bool
}

// FixedBatch returns the batch size a pose model fixes in its input, or 0
// when it leaves the batch free.
func FixedBatch(b models.Binding) int {
	if len(b.Inputs) == 0 || len(b.Inputs[0].Dims) == 0 || b.Inputs[0].Dims[0] <= 0 {
		return 0
	}
	return int(b.Inputs[0].Dims[0])
}

// DefaultConfig returns the settings the model was trained with and a
// batch of 16, which fits any current GPU and keeps the CPU busy.
func DefaultConfig() Config {
	return Config{BatchSize: 16, Padding: 1.25}
}

// Estimator runs one TransPose session. It is not safe for concurrent use.
type Estimator struct {
	sess   *inference.Session
	cfg    Config
	tracer trace.Tracer
	inW    int
	inH    int
	hmW    int
	hmH    int

	crop    gocv.Mat
	affine  gocv.Mat
	inputs  map[int]*ort.Tensor[float32] // by batch size
	outputs *inference.Outputs
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.BatchSize < 1 {
		return fmt.Errorf("pose batch size %d must be at least 1", c.BatchSize)
	}
	if c.Padding < 1 {
		return fmt.Errorf("pose crop padding %.2f must be at least 1", c.Padding)
	}
	return nil
}

// New wraps an opened TransPose session.
func New(sess *inference.Session, cfg Config) (*Estimator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.FixedBatch > 0 {
		cfg.BatchSize = cfg.FixedBatch
	}
	return &Estimator{
		sess:    sess,
		cfg:     cfg,
		tracer:  otel.Tracer(tracerName),
		inW:     models.PoseInputWidth,
		inH:     models.PoseInputHeight,
		hmW:     models.PoseHeatmapWidth,
		hmH:     models.PoseHeatmapHeight,
		crop:    gocv.NewMat(),
		affine:  gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F),
		inputs:  map[int]*ort.Tensor[float32]{},
		outputs: inference.NewOutputs(),
	}, nil
}

// Close frees the estimator's buffers (not the session).
func (e *Estimator) Close() error {
	var errs []error
	for n, t := range e.inputs {
		errs = append(errs, t.Destroy())
		delete(e.inputs, n)
	}
	errs = append(errs, e.outputs.Close(), e.crop.Close(), e.affine.Close())
	return errors.Join(errs...)
}

// Estimate returns one pose per box, in the same order.
func (e *Estimator) Estimate(ctx context.Context, frame gocv.Mat, boxes []geom.Box) (poses []geom.Pose, err error) {
	ctx, span := e.tracer.Start(ctx, "pose_estimation")
	batches := (len(boxes) + e.cfg.BatchSize - 1) / e.cfg.BatchSize
	span.SetAttributes(attribute.Int("people", len(boxes)), attribute.Int("batches", batches))
	defer func() { telemetry.EndSpan(span, err) }()
	if len(boxes) == 0 {
		return nil, nil
	}
	poses = make([]geom.Pose, 0, len(boxes))
	for start := 0; start < len(boxes); start += e.cfg.BatchSize {
		batch := boxes[start:min(start+e.cfg.BatchSize, len(boxes))]
		got, err := e.runBatch(ctx, frame, batch)
		if err != nil {
			return nil, err
		}
		poses = append(poses, got...)
	}
	return poses, nil
}

func (e *Estimator) runBatch(ctx context.Context, frame gocv.Mat, boxes []geom.Box) ([]geom.Pose, error) {
	n := len(boxes)
	_, pre := e.tracer.Start(ctx, "preprocess")
	pre.SetAttributes(attribute.Int("batch.size", n), attribute.Int("batch.rows", e.rows(n)))
	input, xforms, err := e.preprocess(frame, boxes)
	telemetry.EndSpan(pre, err)
	if err != nil {
		return nil, err
	}

	_, inf := e.tracer.Start(ctx, "inference")
	inf.SetAttributes(attribute.Int("batch.size", n))
	// The heatmaps' shape follows the input's batch.
	outputs, err := e.outputs.Run(e.sess, input.GetShape()[0], []ort.Value{input})
	telemetry.EndSpan(inf, err)
	if err != nil {
		return nil, err
	}

	_, post := e.tracer.Start(ctx, "postprocess")
	poses, err := e.decode(outputs[0], xforms)
	err = e.sess.OutputErr(err)
	telemetry.EndSpan(post, err)
	return poses, err
}

// rows is how many crops the model is sent for n people: n, or more where
// the batch is fixed or padded. The rows past n keep what an earlier batch
// put there; their keypoints are not read.
func (e *Estimator) rows(n int) int {
	switch {
	case e.cfg.FixedBatch > 0:
		return e.cfg.FixedBatch
	case e.cfg.PadBatches:
		r := 1
		for r < n {
			r *= 2
		}
		return min(r, e.cfg.BatchSize)
	}
	return n
}

func (e *Estimator) preprocess(frame gocv.Mat, boxes []geom.Box) (*ort.Tensor[float32], []Transform, error) {
	n := len(boxes)
	rows := e.rows(n)
	input, ok := e.inputs[rows]
	if !ok {
		var err error
		input, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), 3, int64(e.inH), int64(e.inW)))
		if err != nil {
			return nil, nil, fmt.Errorf("pose: allocate input for %d people: %w", rows, err)
		}
		e.inputs[rows] = input
	}
	data := input.GetData()
	per := 3 * e.inW * e.inH
	xforms := make([]Transform, n)
	for i, box := range boxes {
		t := CropTransform(box, e.inW, e.inH, e.cfg.Padding)
		xforms[i] = t
		m := t.Matrix()
		for j, v := range m {
			e.affine.SetDoubleAt(j/3, j%3, v)
		}
		// Pixels outside the frame read as black, as in TransPose's
		// training crops.
		gocv.WarpAffineWithParams(frame, &e.crop, e.affine, image.Pt(e.inW, e.inH),
			gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
		px, err := e.crop.DataPtrUint8()
		if err != nil {
			return nil, nil, fmt.Errorf("pose: read crop pixels: %w", err)
		}
		if err := inference.PackImageNet(data[i*per:(i+1)*per], px, e.inW, e.inH, int(e.crop.Step())); err != nil {
			return nil, nil, fmt.Errorf("pose: %w", err)
		}
	}
	return input, xforms, nil
}

func (e *Estimator) decode(out ort.Value, xforms []Transform) ([]geom.Pose, error) {
	hm, ok := out.(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("pose: heatmap output is %T, want a float32 tensor", out)
	}
	s := hm.GetShape()
	n := len(xforms)
	rows := int64(e.rows(n))
	if len(s) != 4 || s[0] != rows || s[1] != models.NumKeypoints || s[2] != int64(e.hmH) || s[3] != int64(e.hmW) {
		return nil, fmt.Errorf("pose: model returned heatmaps %v, want [%d,%d,%d,%d]", s, rows, models.NumKeypoints, e.hmH, e.hmW)
	}
	data := hm.GetData()
	per := models.NumKeypoints * e.hmH * e.hmW
	// Fail closed: NaN heatmaps would decode to keypoints anywhere (or
	// nowhere), and a mask put there would miss the face.
	if err := inference.CheckFinite("heatmaps", data[:n*per]); err != nil {
		return nil, err
	}
	// Heatmap pixel (x, y) stands for input pixel (x, y) times the stride,
	// the convention the model's training targets were made with.
	strideX := float64(e.inW) / float64(e.hmW)
	strideY := float64(e.inH) / float64(e.hmH)
	poses := make([]geom.Pose, n)
	for i, t := range xforms {
		kps := DecodeHeatmaps(data[i*per:(i+1)*per], models.NumKeypoints, e.hmH, e.hmW)
		for j, k := range kps {
			x, y := t.ToFrame(float64(k.X)*strideX, float64(k.Y)*strideY)
			if !finite(x) || !finite(y) || !finite(float64(k.Conf)) {
				return nil, fmt.Errorf("keypoint %s of person %d is not a finite position (%g, %g, confidence %g)",
					models.KeypointNames[j], i, x, y, k.Conf)
			}
			poses[i][j] = geom.Keypoint{X: float32(x), Y: float32(y), Conf: k.Conf}
		}
	}
	return poses, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// SelfTest runs the model once on one plain grey crop and fails if its
// heatmaps are not all finite numbers: a broken export is refused when it
// is loaded rather than at the first person.
func SelfTest(ctx context.Context, sess *inference.Session, cfg Config) error {
	e, err := New(sess, cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	e.tracer = noop.Tracer{} // not a frame: no pose_estimation span
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 128, 64, gocv.MatTypeCV8UC3)
	defer frame.Close()
	if _, err := e.Estimate(ctx, frame, []geom.Box{{X1: 8, Y1: 8, X2: 56, Y2: 120}}); err != nil {
		return inference.SelfTestError(err, "")
	}
	return nil
}

// geom.Pose holds the keypoints of models' COCO list; this fails to
// compile if the two counts ever differ.
const _ = uint(models.NumKeypoints-geom.NumKeypoints) + uint(geom.NumKeypoints-models.NumKeypoints)
