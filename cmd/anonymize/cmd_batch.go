package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/anonymize-dev/anonymize/batch"
	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/telemetry"
)

// defaultJobs is how many videos `batch` processes at once. Two keep one
// GPU busy: while one video is in inference, the other's decoding,
// pre-processing and encoding run on the CPU. Each concurrent video holds
// its own activations on the GPU (DETR at 800x1333 and a pose batch of 16,
// a few GB), so two fit any data-centre GPU; more mostly adds memory.
const defaultJobs = 2

// BatchOptions are the inputs of `anonymize batch`.
type BatchOptions struct {
	IO         *IOStreams
	Env        pipeline.Env
	Locations  Locations // where the runtime and models are; resolved into Env
	InDir      string
	OutDir     string
	Include    []string
	Exclude    []string
	Jobs       int
	DryRun     bool
	Force      bool
	FailFast   bool
	ShardIndex int
	ShardCount int
	Quiet      bool
	AuditFail  bool
	Config     pipeline.Config
	Telemetry  TelemetryOptions
	// Settings are the flag values, for the audit report.
	Settings map[string]string
}

// NewCmdBatch builds `anonymize batch`.
func NewCmdBatch(f *Factory, runF func(context.Context, *BatchOptions) error) *cobra.Command {
	opts := &BatchOptions{IO: f.IO, Config: pipeline.DefaultConfig(), Jobs: defaultJobs}
	cmd := &cobra.Command{
		Use:   "batch IN_DIR OUT_DIR",
		Short: "Anonymize every video of a folder tree, resumably",
		Long: "Anonymize every video under IN_DIR into the same relative path under OUT_DIR.\n\n" +
			"The run is resumable: a file counts as done once its output is in place and recorded in\n" +
			"OUT_DIR/.anonymize/; a re-run skips what is done and unchanged and redoes what changed\n" +
			"(input or settings). Partial files never appear in the output tree. A file that fails\n" +
			"(corrupt, unreadable, not a video) is recorded and the batch goes on. The audit report\n" +
			"OUT_DIR/anonymize-report.json says, file by file, what was done with which models and\n" +
			"settings; it is kept up to date as files finish.\n\n" +
			"Several machines split a dataset with --shard-index/--shard-count (by default from\n" +
			"JOB_COMPLETION_INDEX and ANONYMIZE_SHARD_COUNT, as in a Kubernetes Indexed Job); merge\n" +
			"their reports with `anonymize report merge`.\n\n" +
			"Exit status: 0 all done, 3 some files failed (see the report), 1 the batch could not\n" +
			"run, 2 usage error, 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP (run again to resume).",
		Example: "  anonymize batch /data/raw /data/anonymized\n" +
			"  anonymize batch --dry-run --include '*.mp4' --exclude 'drafts/**' raw anonymized\n" +
			"  anonymize batch --shard-index 0 --shard-count 4 raw anonymized",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.InDir, opts.OutDir = args[0], args[1]
			if err := opts.Config.Validate(); err != nil {
				return usageError{err}
			}
			if opts.Jobs < 1 {
				return usageError{fmt.Errorf("--jobs %d: must be at least 1", opts.Jobs)}
			}
			opts.Telemetry.Getenv = f.Getenv
			if err := validateTelemetry(&opts.Telemetry, f.Getenv, cmd.Flags()); err != nil {
				return err
			}
			if err := opts.resolveShard(cmd.Flags(), f.Getenv); err != nil {
				return usageError{err}
			}
			opts.Settings = flagSettings(cmd.Flags())
			opts.Env = f.engineEnv(opts.Locations)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runBatch(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	addPipelineFlags(fs, &opts.Config, &opts.Locations)
	addTelemetryFlags(fs, &opts.Telemetry)
	fs.StringSliceVar(&opts.Include, "include", nil, "glob of files to process, on the base name or the relative path; repeatable (default: common video extensions)")
	fs.StringSliceVar(&opts.Exclude, "exclude", nil, "glob of files or folders to leave out; repeatable")
	fs.IntVar(&opts.Jobs, "jobs", opts.Jobs, "videos processed at once, sharing the loaded models (2 keeps one GPU busy)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "list what would be done and why, and do nothing")
	fs.BoolVar(&opts.Force, "force", false, "redo files an earlier run finished")
	fs.BoolVar(&opts.FailFast, "fail-fast", false, "stop at the first file that fails")
	fs.BoolVar(&opts.AuditFail, "audit-fail", false, "count a file whose output the audit finds a face in as failed, and remove that output from OUT_DIR")
	fs.IntVar(&opts.ShardIndex, "shard-index", 0, "this machine's shard, 0..count-1 (default: $JOB_COMPLETION_INDEX)")
	fs.IntVar(&opts.ShardCount, "shard-count", 0, "number of shards the dataset is split into (default: $ANONYMIZE_SHARD_COUNT, else 1)")
	fs.BoolVarP(&opts.Quiet, "quiet", "q", false, "print only warnings and errors: no progress bar, no summary")
	return cmd
}

// resolveShard fills the shard from the flags that were given, and from
// the environment of a Kubernetes Indexed Job for those that were not.
func (o *BatchOptions) resolveShard(fs *pflag.FlagSet, getenv func(string) string) error {
	var index, count *int
	if fs.Changed("shard-index") {
		index = &o.ShardIndex
	}
	if fs.Changed("shard-count") {
		count = &o.ShardCount
	}
	s, err := batch.ResolveShard(index, count, getenv(batch.EnvShardIndex), getenv(batch.EnvShardCount))
	if err != nil {
		return err
	}
	o.ShardIndex, o.ShardCount = s.Index, s.Count
	return nil
}

// flagSettings records every flag's value as given, for the report.
func flagSettings(fs *pflag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			out[f.Name] = f.Value.String()
		}
	})
	return out
}

func runBatch(ctx context.Context, opts *BatchOptions) (err error) {
	log, lines := newLogger(opts.IO, opts.Quiet)
	opts.Env.Log = log
	bopts := batch.Options{
		InDir: opts.InDir, OutDir: opts.OutDir, Include: opts.Include, Exclude: opts.Exclude,
		Shard: batch.ShardSpec{Index: opts.ShardIndex, Count: opts.ShardCount},
		Jobs:  opts.Jobs, Force: opts.Force, DryRun: opts.DryRun, FailFast: opts.FailFast, AuditFail: opts.AuditFail,
		Config: opts.Config, Settings: opts.Settings, ToolVersion: buildVersion(), Log: log,
	}

	proc, err := startProcessing(ctx, opts.IO, &opts.Env, lines, opts.Config, &opts.Telemetry, "batch")
	defer func() { proc.close(ctx, err) }()
	if err != nil {
		return err
	}

	// One span for the batch: each video's anonymize_video span is its
	// child, and every frame's trace links to its video.
	ctx, span := otel.Tracer("github.com/anonymize-dev/anonymize/cmd").Start(ctx, "anonymize_batch",
		trace.WithAttributes(
			attribute.String("batch.in_dir", opts.InDir), attribute.String("batch.out_dir", opts.OutDir),
			attribute.Int("batch.jobs", opts.Jobs), attribute.String("batch.shard", bopts.Shard.String()),
		))
	lines.setRunSpan(span.SpanContext())
	bar := newBatchProgress(opts.IO, opts.Quiet || opts.DryRun, lines)
	hooks, err := countBatchFiles(ctx, bar.hooks())
	if err != nil {
		return err
	}
	sum, err := batch.Run(ctx, bopts, proc.engine, hooks)
	bar.finish()
	span.SetAttributes(
		attribute.Int("batch.files.done", sum.Done), attribute.Int("batch.files.skipped", sum.Skipped),
		attribute.Int("batch.files.failed", sum.Failed), attribute.Int("batch.frames", sum.Totals.Frames),
	)
	telemetry.EndSpan(span, err)
	proc.tel.SetSummary(wandbBatchSummary(sum))

	if err != nil {
		if ctx.Err() != nil && !opts.DryRun {
			return resumable{err}
		}
		return err
	}
	if opts.DryRun || !opts.Quiet {
		// For a dry run, the plan.
		if err := sum.WriteText(opts.IO.Out); err != nil {
			return err
		}
	}
	if sum.Failed > 0 {
		if opts.IO.LogFormat == logJSON {
			log.Error("files failed", "failed", sum.Failed, "files", sum.Totals.Files.Total, "report", sum.ReportPath)
		} else {
			fmt.Fprintf(opts.IO.ErrOut, "anonymize: %d of %d files failed; see %s\n", sum.Failed, sum.Totals.Files.Total, sum.ReportPath)
		}
		return exitCodeError{exitFilesFailed}
	}
	return nil
}

// countBatchFiles adds the anonymize.batch.files counter to the hooks:
// both status series from the start (at 0, so a dashboard or alert reads
// 0 rather than nothing), then one per file as it ends.
func countBatchFiles(ctx context.Context, h batch.Hooks) (batch.Hooks, error) {
	in, err := telemetry.NewInstruments()
	if err != nil {
		return h, fmt.Errorf("telemetry: %w", err)
	}
	attrs := map[batch.Status]metric.AddOption{}
	for status, name := range map[batch.Status]string{batch.StatusDone: telemetry.FileDone, batch.StatusFailed: telemetry.FileFailed} {
		attrs[status] = metric.WithAttributes(attribute.String(telemetry.AttrStatus, name))
		in.BatchFiles.Add(ctx, 0, attrs[status])
	}
	next := h.FileFinished
	h.FileFinished = func(f batch.FileReport) {
		if a, ok := attrs[f.Status]; ok {
			in.BatchFiles.Add(ctx, 1, a)
		}
		if next != nil {
			next(f)
		}
	}
	return h, nil
}

// wandbBatchSummary is the W&B run's per-file table, as summary values.
func wandbBatchSummary(sum batch.Summary) map[string]any {
	files := map[string]any{}
	for _, f := range sum.Files {
		row := map[string]any{"status": string(f.Status), "frames": f.Frames, "wall_s": f.WallSeconds, "fps": f.ProcessingFPS}
		if f.Error != "" {
			row["error"] = f.Error
		}
		if f.People != nil {
			row["people_mean"], row["people_max"] = f.People.Mean, f.People.Max
		}
		if f.Masks != nil {
			row["fallbacks"] = f.Masks.Fallbacks
			row["held"], row["backfilled"] = f.Masks.Held, f.Masks.Backfilled
		}
		if f.Audit != nil {
			row["audit_frames"], row["audit_leak_frames"] = f.Audit.FramesAudited, f.Audit.FramesWithLeaks
		}
		files[f.Input] = row
	}
	t := sum.Totals
	out := map[string]any{
		"batch/files":         files,
		"batch/files_done":    t.Files.Done,
		"batch/files_skipped": t.Files.Skipped,
		"batch/files_failed":  t.Files.Failed,
		"batch/frames":        t.Frames,
		"batch/fps":           t.FPS,
	}
	if t.Audit != nil {
		out["batch/audit_frames"] = t.Audit.FramesAudited
		out["batch/audit_leak_frames"] = t.Audit.FramesWithLeaks
		out["batch/audit_files_with_leaks"] = t.Audit.FilesWithLeaks
	}
	return out
}
