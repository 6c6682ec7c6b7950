// Package pose estimates 17 COCO keypoints for each detected person with
// TransPose (tph_a4_256x192) exported to ONNX, top-down: one aspect-
// preserving crop per person, batched.
package pose

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"

	ort "github.com/yalue/onnxruntime_go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/telemetry"
)

const tracerName = "github.com/anonymize-dev/anonymize/pose"

// Pose is one person's keypoints in COCO order, in frame pixels.
type Pose [models.NumKeypoints]Keypoint

// Config holds the estimator's settings.
type Config struct {
	// BatchSize caps how many people go through the model at once, so a
	// crowd cannot exhaust GPU memory (the reference sent everyone in one
	// batch and did).
	BatchSize int
	// Padding grows each box before cropping, so limbs at its edge stay in
	// view (1.25 in HRNet and TransPose).
	Padding float64
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

	crop   gocv.Mat
	affine gocv.Mat
	inputs map[int]*ort.Tensor[float32] // by batch size
}

// New wraps an opened TransPose session.
func New(sess *inference.Session, cfg Config) (*Estimator, error) {
	if cfg.BatchSize < 1 {
		return nil, fmt.Errorf("pose batch size %d must be at least 1", cfg.BatchSize)
	}
	if cfg.Padding < 1 {
		return nil, fmt.Errorf("pose crop padding %.2f must be at least 1", cfg.Padding)
	}
	return &Estimator{
		sess:   sess,
		cfg:    cfg,
		tracer: otel.Tracer(tracerName),
		inW:    models.PoseInputWidth,
		inH:    models.PoseInputHeight,
		hmW:    models.PoseHeatmapWidth,
		hmH:    models.PoseHeatmapHeight,
		crop:   gocv.NewMat(),
		affine: gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F),
		inputs: map[int]*ort.Tensor[float32]{},
	}, nil
}

// Close frees the estimator's buffers (not the session).
func (e *Estimator) Close() error {
	var errs []error
	for n, t := range e.inputs {
		errs = append(errs, t.Destroy())
		delete(e.inputs, n)
	}
	errs = append(errs, e.crop.Close(), e.affine.Close())
	return errors.Join(errs...)
}

// Estimate returns one pose per box, in the same order.
func (e *Estimator) Estimate(ctx context.Context, frame gocv.Mat, boxes []detect.Box) (poses []Pose, err error) {
	ctx, span := e.tracer.Start(ctx, "pose_estimation")
	batches := (len(boxes) + e.cfg.BatchSize - 1) / e.cfg.BatchSize
	span.SetAttributes(attribute.Int("people", len(boxes)), attribute.Int("batches", batches))
	defer func() { telemetry.EndSpan(span, err) }()
	if len(boxes) == 0 {
		return nil, nil
	}
	poses = make([]Pose, 0, len(boxes))
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

func (e *Estimator) runBatch(ctx context.Context, frame gocv.Mat, boxes []detect.Box) ([]Pose, error) {
	n := len(boxes)
	_, pre := e.tracer.Start(ctx, "preprocess")
	pre.SetAttributes(attribute.Int("batch.size", n))
	input, xforms, err := e.preprocess(frame, boxes)
	telemetry.EndSpan(pre, err)
	if err != nil {
		return nil, err
	}

	_, inf := e.tracer.Start(ctx, "inference")
	inf.SetAttributes(attribute.Int("batch.size", n))
	outputs := []ort.Value{nil}
	err = e.sess.Run([]ort.Value{input}, outputs)
	telemetry.EndSpan(inf, err)
	defer func() {
		if outputs[0] != nil {
			outputs[0].Destroy()
		}
	}()
	if err != nil {
		return nil, err
	}

	_, post := e.tracer.Start(ctx, "postprocess")
	poses, err := e.decode(outputs[0], xforms)
	telemetry.EndSpan(post, err)
	return poses, err
}

func (e *Estimator) preprocess(frame gocv.Mat, boxes []detect.Box) (*ort.Tensor[float32], []Transform, error) {
	n := len(boxes)
	input, ok := e.inputs[n]
	if !ok {
		var err error
		input, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 3, int64(e.inH), int64(e.inW)))
		if err != nil {
			return nil, nil, fmt.Errorf("pose: allocate input for %d people: %w", n, err)
		}
		e.inputs[n] = input
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

func (e *Estimator) decode(out ort.Value, xforms []Transform) ([]Pose, error) {
	hm, ok := out.(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("pose: heatmap output is %T, want a float32 tensor", out)
	}
	s := hm.GetShape()
	n := len(xforms)
	if len(s) != 4 || s[0] != int64(n) || s[1] != models.NumKeypoints || s[2] != int64(e.hmH) || s[3] != int64(e.hmW) {
		return nil, fmt.Errorf("pose: model returned heatmaps %v, want [%d,%d,%d,%d]", s, n, models.NumKeypoints, e.hmH, e.hmW)
	}
	data := hm.GetData()
	per := models.NumKeypoints * e.hmH * e.hmW
	// Heatmap pixel (x, y) stands for input pixel (x, y) times the stride,
	// the convention the model's training targets were made with.
	strideX := float64(e.inW) / float64(e.hmW)
	strideY := float64(e.inH) / float64(e.hmH)
	poses := make([]Pose, n)
	for i, t := range xforms {
		kps := DecodeHeatmaps(data[i*per:(i+1)*per], models.NumKeypoints, e.hmH, e.hmW)
		for j, k := range kps {
			x, y := t.ToFrame(float64(k.X)*strideX, float64(k.Y)*strideY)
			poses[i][j] = Keypoint{X: float32(x), Y: float32(y), Conf: k.Conf}
		}
	}
	return poses, nil
}
