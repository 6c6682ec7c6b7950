package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/video"
)

// VideoOptions are the inputs of `anonymize video`.
type VideoOptions struct {
	IO        *IOStreams
	Env       pipeline.Env
	Locations Locations // where the runtime and models are; resolved into Env
	Input     string
	Output    string
	Overwrite bool
	Quiet     bool
	Config    pipeline.Config
	Telemetry TelemetryOptions
}

// NewCmdVideo builds `anonymize video`; runF replaces the behaviour in
// tests of flag parsing.
func NewCmdVideo(f *Factory, runF func(context.Context, *VideoOptions) error) *cobra.Command {
	opts := &VideoOptions{IO: f.IO, Config: pipeline.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "video INPUT OUTPUT",
		Short: "Anonymize one video",
		Long: "Detect every person in INPUT, black out a disk over each face and write OUTPUT\n" +
			"(H.264, same size, frame rate and audio). OUTPUT appears only when the whole video\n" +
			"succeeded; it is never the input, and an existing OUTPUT needs --overwrite.",
		Example: "  anonymize video in.mp4 out.mp4\n" +
			"  anonymize video --device cpu --frames 100 --draw in.mp4 debug.mp4",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Input, opts.Output = args[0], args[1]
			if err := opts.Config.Validate(); err != nil {
				return usageError{err}
			}
			if err := video.CheckOutputExt(opts.Output); err != nil {
				return usageError{err}
			}
			opts.Telemetry.Getenv = f.Getenv
			if err := validateTelemetry(&opts.Telemetry, f.Getenv, cmd.Flags()); err != nil {
				return err
			}
			opts.Env = f.engineEnv(opts.Locations)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runVideo(cmd.Context(), opts)
		},
	}
	addPipelineFlags(cmd.Flags(), &opts.Config, &opts.Locations)
	addTelemetryFlags(cmd.Flags(), &opts.Telemetry)
	cmd.Flags().BoolVar(&opts.Overwrite, "overwrite", false, "replace OUTPUT if it exists")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "print only warnings and errors: no progress bar, no summary")
	return cmd
}

func runVideo(ctx context.Context, opts *VideoOptions) (err error) {
	log, lines := newLogger(opts.IO, opts.Quiet)
	opts.Env.Log = log
	// Fail on a bad input or output path before spending seconds on
	// loading models.
	if err := video.CheckPaths(opts.Input, opts.Output, opts.Overwrite); err != nil {
		return err
	}
	// Telemetry is flushed last, bounded, after the output is in place or
	// removed.
	proc, err := startProcessing(ctx, opts.IO, &opts.Env, lines, opts.Config, &opts.Telemetry, "video")
	defer func() { proc.close(ctx, err) }()
	if err != nil {
		return err
	}

	bar := newProgress(opts.IO, opts.Quiet, lines)
	res, err := proc.engine.ProcessVideo(ctx, pipeline.Job{Input: opts.Input, Output: opts.Output, Overwrite: opts.Overwrite},
		pipeline.Hooks{
			RunSpan: lines.setRunSpan,
			Started: func(info video.Info, frames int) { bar.start(filepath.Base(opts.Output), frames) },
			Frame:   func(pipeline.FrameResult) { bar.frame() },
		})
	bar.finish()
	if err != nil {
		return err
	}
	proc.tel.SetSummary(map[string]any{
		"video/frames": res.Stats.Frames, "video/people": res.Stats.People,
		"video/masks_held": res.Stats.Masks.Held, "video/masks_backfilled": res.Stats.Masks.Backfilled,
		"video/audit_frames": res.Stats.Audit.Frames, "video/audit_leak_frames": res.Stats.Audit.LeakFrames,
	})
	if a := res.Stats.Audit; a.LeakFrames > 0 {
		log.Warn(fmt.Sprintf("the audit found a face in %d of the %d frames it searched (%s): look at them before publishing "+
			"(--audit-evidence DIR writes crops, anonymize audit --json lists every face)", a.LeakFrames, a.Frames, auditNote(a)))
	}
	switch {
	case opts.IO.LogFormat == logJSON:
		// The same figures as fields, in the run's trace (and over OTLP).
		s := res.Stats
		log.Info("video done", "output", res.Output, "frames", s.Frames, "width", res.OutputWidth, "height", res.OutputHeight,
			"people", s.People, "max_people", s.MaxPeople, "fallbacks_face_keypoints", s.Masks.FaceKeypoints,
			"fallbacks_head_box", s.Masks.HeadBox, "fallbacks_radius_floor", s.Masks.RadiusFloor,
			"held", s.Masks.Held, "backfilled", s.Masks.Backfilled, "audit_frames", s.Audit.Frames,
			"audit_leak_frames", s.Audit.LeakFrames, "fps", s.FPS(), "providers", proc.engine.Providers(), "encoder", res.Encoder)
	case !opts.Quiet:
		fmt.Fprintln(opts.IO.ErrOut, summaryLine(res, proc.engine.Providers()))
	}
	return nil
}

func summaryLine(res pipeline.Result, providers string) string {
	s := res.Stats
	m := s.Masks
	return fmt.Sprintf("anonymize: %s: %d frames (%s), %d people masked (up to %d in a frame), fallbacks: %d face_keypoints, %d head_box, %d radius_floor; tracking: %d held, %d backfilled; %s; %.1f fps on %s, encoded with %s",
		res.Output, s.Frames, videoNotes(res), s.People, s.MaxPeople, m.FaceKeypoints, m.HeadBox, m.RadiusFloor, m.Held, m.Backfilled,
		auditNote(s.Audit), s.FPS(), providers, res.Encoder)
}

// videoNotes says how the output's picture and timing follow the input's:
// the size, the rate, and what was done about orientation and odd sizes.
func videoNotes(res pipeline.Result) string {
	in := res.Input
	notes := []string{fmt.Sprintf("%dx%d", res.OutputWidth, res.OutputHeight)}
	if res.OutputWidth != in.Width || res.OutputHeight != in.Height {
		notes[0] += fmt.Sprintf(" padded from %dx%d", in.Width, in.Height)
	}
	notes = append(notes, in.Rate())
	if !in.Orientation.IsIdentity() {
		notes = append(notes, "made upright (players show the input "+in.Orientation.String()+")")
	}
	return strings.Join(notes, ", ")
}

// auditNote sums up the leak audit for the summary line.
func auditNote(a pipeline.AuditStats) string {
	if a.Frames == 0 {
		return "audit: off"
	}
	note := fmt.Sprintf("audit: %d frames with a face of %d searched", a.LeakFrames, a.Frames)
	if len(a.Leaks) > 0 {
		l := a.Leaks[0]
		note += fmt.Sprintf(" (first at %s, frame %d)", l.Time.Round(time.Millisecond), l.Frame)
	}
	return note
}
