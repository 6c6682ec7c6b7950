package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/anonymize-dev/anonymize/audit"
	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/pose"
	"github.com/anonymize-dev/anonymize/telemetry"

	"github.com/anonymize-dev/anonymize/video"
)

// Job is one video to anonymize.
type Job struct {
	Input     string
	Output    string
	Overwrite bool
	// TempDir, when set, holds the partial output until the final rename
	// (on the output's file system); by default it sits beside the output.
	TempDir string
}

// Hooks let the caller follow a video's progress.
type Hooks struct {
	// RunSpan, when set, is called with the run's span as soon as it has
	// started: the command's logger ties what is logged without a span
	// of its own to it.
	RunSpan func(trace.SpanContext)
	// Started is called once the input is open, with the number of frames
	// that will be processed (0 when unknown).
	Started func(info video.Info, frames int)
	// Frame is called after each frame is written.
	Frame func(FrameResult)
}

// Result describes a finished video.
type Result struct {
	Input  video.Info
	Output string
	// OutputWidth and OutputHeight are the size written: the input's
	// upright size, padded to even for H.264 (video.EncodedSize).
	OutputWidth, OutputHeight int
	Encoder                   string
	Stats                     Stats
}

// ProcessVideo anonymizes one video; several may run at once on one
// Engine. The output appears only when
// everything succeeded: it is written to a temporary file beside it and
// renamed at the end; on any error or cancellation nothing is left behind.
func (e *Engine) ProcessVideo(ctx context.Context, job Job, hooks Hooks) (res Result, err error) {
	if err := video.CheckPaths(job.Input, job.Output, job.Overwrite); err != nil {
		return res, err
	}
	reader, err := video.Open(ctx, job.Input, e.log)
	if err != nil {
		return res, err
	}
	defer reader.Close()
	info := reader.Info()
	res.Input, res.Output = info, job.Output
	res.OutputWidth, res.OutputHeight = video.EncodedSize(info.Width, info.Height)

	// The run's span carries what a frame's trace should not repeat: the
	// video, the device and the exact models. Frame traces link to it.
	ctx, run := otel.Tracer(tracerName).Start(ctx, "anonymize_video", trace.WithAttributes(e.runAttributes(job, info)...))
	if hooks.RunSpan != nil {
		hooks.RunSpan(run.SpanContext())
	}
	defer func() {
		run.SetAttributes(
			attribute.Int("frames.processed", res.Stats.Frames),
			attribute.Int("people.total", res.Stats.People),
			attribute.Int("people.max", res.Stats.MaxPeople),
			attribute.Int("mask.fallbacks.face_keypoints", res.Stats.Masks.FaceKeypoints),
			attribute.Int("mask.fallbacks.head_box", res.Stats.Masks.HeadBox),
			attribute.Int("mask.fallbacks.radius_floor", res.Stats.Masks.RadiusFloor),
			attribute.Int("masks.held", res.Stats.Masks.Held),
			attribute.Int("masks.backfilled", res.Stats.Masks.Backfilled),
			attribute.Int("audit.frames", res.Stats.Audit.Frames),
			attribute.Int("audit.leak_frames", res.Stats.Audit.LeakFrames),
			attribute.Float64("fps", res.Stats.FPS()),
		)
		telemetry.EndSpan(run, err)
	}()

	total := info.FrameCount
	if e.cfg.Frames > 0 && (total == 0 || e.cfg.Frames < total) {
		total = e.cfg.Frames
	}
	opts := video.EncoderOptions{
		Output:       job.Output,
		TempDir:      job.TempDir,
		Width:        info.Width,
		Height:       info.Height,
		FPS:          info.FPS,
		TimeBase:     info.TimeBase,
		SAR:          info.SAR,
		VariableRate: info.VariableRate,
		CRF:          e.cfg.CRF,
		Preset:       e.cfg.Preset,
		Codec:        e.codec,
		Threads:      e.cfg.EncoderThreads,
		Audio:        e.cfg.Audio,
		Subtitles:    e.cfg.Subtitles,
		AudioSource:  job.Input,
		Logger:       e.log,
	}
	if e.cfg.Frames > 0 {
		// Cut the audio and subtitles where the last kept frame ends.
		opts.MaxDuration = reader.End(e.cfg.Frames)
	}
	if w, h := res.OutputWidth, res.OutputHeight; w != info.Width || h != info.Height {
		e.log.Warn(fmt.Sprintf("frame size %dx%d is odd; the output is %dx%d, padded with black at the right or bottom (H.264 in 4:2:0 needs even sizes)",
			info.Width, info.Height, w, h), "input", job.Input)
	}
	enc, err := video.NewEncoder(ctx, opts)
	if err != nil {
		return res, err
	}
	res.Encoder = enc.Backend()
	if hooks.Started != nil {
		hooks.Started(info, total)
	}

	stages := StageConfig{
		MaxFrames: e.cfg.Frames,
		QueueSize: e.cfg.QueueSize,
		Draw:      e.cfg.Draw,
		Mask:      e.cfg.maskConfig(),
		Track:     e.cfg.trackConfig(info.PeakFPS),
		GPUMemory: e.env.GPUMemory,
	}
	// Buffers per video, sessions shared: videos may run concurrently on
	// one Engine (anonymize batch --jobs).
	det, err := detect.New(e.detSess, e.detectConfig())
	if err != nil {
		enc.Abort()
		return res, err
	}
	defer det.Close()
	poser, err := pose.New(e.poseSess, e.poseConfig())
	if err != nil {
		enc.Abort()
		return res, err
	}
	defer poser.Close()
	if e.auditSess != nil {
		faces, err := audit.New(e.auditSess, audit.DefaultConfig())
		if err != nil {
			enc.Abort()
			return res, err
		}
		defer faces.Close()
		stages.Audit = AuditConfig{Faces: faces, Every: e.cfg.auditEvery(), Evidence: e.cfg.AuditEvidence,
			Name: strings.TrimSuffix(filepath.Base(job.Output), filepath.Ext(job.Output))}
	}
	res.Stats, err = RunStages(ctx, stages, reader, DETR(det), poser, enc, hooks.Frame)
	if err != nil {
		if aerr := enc.Abort(); aerr != nil {
			e.log.Warn("could not clean up the partial output", "error", aerr)
		}
		return res, fmt.Errorf("%s: %w", job.Input, err)
	}
	if err := enc.Close(); err != nil {
		return res, fmt.Errorf("write %s: %w", job.Output, err)
	}
	return res, nil
}

func (e *Engine) runAttributes(job Job, info video.Info) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.String("video.input", job.Input),
		attribute.String("video.output", job.Output),
		attribute.String("video.codec", info.Codec),
		attribute.String("video.container", info.Container),
		attribute.Int("video.width", info.Width),
		attribute.Int("video.height", info.Height),
		attribute.String("video.fps", info.FPS.String()),
		attribute.Float64("video.fps_value", info.FPS.Float()),
		attribute.Bool("video.variable_frame_rate", info.VariableRate),
		attribute.String("video.orientation", info.Orientation.String()),
		attribute.Int("video.frame_count", info.FrameCount),
		attribute.Float64("video.duration_s", info.Duration.Seconds()),
		attribute.Bool("video.has_audio", info.HasAudio),
		attribute.String("device", e.Device.String()),
		attribute.String("execution_provider", e.Providers()),
		attribute.Int("detector.batch", e.detBatch),
		attribute.String("detector.preprocess", e.Preprocess().String()),
	}
	for _, m := range e.Models {
		prefix := "model." + string(m.Role) + "."
		attrs = append(attrs,
			attribute.String(prefix+"path", m.Path),
			attribute.String(prefix+"sha256", m.SHA256),
			attribute.String(prefix+"provider", m.Provider),
		)
	}
	return attrs
}
