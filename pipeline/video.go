package pipeline

import (
	"context"
	"fmt"

	"github.com/anonymize-dev/anonymize/video"
)

// Job is one video to anonymize.
type Job struct {
	Input     string
	Output    string
	Overwrite bool
}

// Hooks let the caller follow a video's progress.
type Hooks struct {
	// Started is called once the input is open, with the number of frames
	// that will be processed (0 when unknown).
	Started func(info video.Info, frames int)
	// Frame is called after each frame is written.
	Frame func(FrameResult)
}

// Result describes a finished video.
type Result struct {
	Input   video.Info
	Output  string
	Encoder string
	Stats   Stats
}

// ProcessVideo anonymizes one video. The output appears only when
// everything succeeded: it is written to a temporary file beside it and
// renamed at the end; on any error or cancellation nothing is left behind.
func (e *Engine) ProcessVideo(ctx context.Context, job Job, hooks Hooks) (res Result, err error) {
	if err := video.CheckPaths(job.Input, job.Output, job.Overwrite); err != nil {
		return res, err
	}
	reader, err := video.Open(ctx, job.Input)
	if err != nil {
		return res, err
	}
	defer reader.Close()
	info := reader.Info()
	res.Input, res.Output = info, job.Output

	total := info.FrameCount
	if e.cfg.Frames > 0 && (total == 0 || e.cfg.Frames < total) {
		total = e.cfg.Frames
	}
	opts := video.EncoderOptions{
		Output:      job.Output,
		Width:       info.Width,
		Height:      info.Height,
		FPS:         info.FPS,
		CRF:         e.cfg.CRF,
		Preset:      e.cfg.Preset,
		Audio:       e.cfg.audioMode(),
		AudioSource: job.Input,
		Logger:      e.log,
	}
	if e.cfg.Frames > 0 && info.FPS.Valid() {
		// Cut the audio to the frames that are kept.
		opts.MaxDuration = info.FPS.Duration(e.cfg.Frames)
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
		FPS:       info.FPS.Float(),
		Draw:      e.cfg.Draw,
		Mask:      e.cfg.maskConfig(),
	}
	res.Stats, err = RunStages(ctx, stages, reader, e.detector, e.poser, enc, hooks.Frame)
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
