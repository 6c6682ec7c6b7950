package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/bench"
	"github.com/anonymize-dev/anonymize/pipeline"
)

// BenchOptions are the inputs of `anonymize bench`.
type BenchOptions struct {
	IO        *IOStreams
	Env       pipeline.Env
	Locations Locations // where the runtime and models are; resolved into Env
	Config    bench.Config
	Size      sizeValue
	JSON      bool
}

// NewCmdBench builds `anonymize bench`.
func NewCmdBench(f *Factory, runF func(context.Context, *BenchOptions) error) *cobra.Command {
	opts := &BenchOptions{IO: f.IO, Config: bench.DefaultConfig()}
	opts.Size = sizeValue{&opts.Config.Width, &opts.Config.Height}
	// --frames is the generated clip's length here, not a cut of the input.
	opts.Config.Pipeline.Frames = opts.Config.Frames
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the pipeline against ffmpeg decoding and encoding the same clip",
		Long: "Generate a clip (1920x1080, 600 frames, the synthetic scene) or take --clip, then run\n" +
			"ffmpeg alone (decode, libx264 with the same --preset and --crf, audio copied) and\n" +
			"anonymize on it, one after the other, from this process. Without --detector-model and\n" +
			"--pose-model the models are null ones of the exact contracts that cost next to nothing,\n" +
			"so what is measured is the pipeline's own work; the encoder is the floor, and the ratio\n" +
			"(ffmpeg's wall time over anonymize's) says how close the pipeline gets to it.\n\n" +
			"The table gives frames/s, wall and CPU time and peak memory of both, Go allocations per\n" +
			"frame, and, from the run's own spans, each step's time per frame and how busy each of\n" +
			"the concurrent stages was. All pipeline flags apply (--device, --audit, --hold, ...).",
		Example: "  anonymize bench\n" +
			"  anonymize bench --runs 3 --audit off\n" +
			"  anonymize bench --device cuda --detector-model detr.onnx --pose-model transpose.onnx",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := &opts.Config
			if c.Clip != "" && cmd.Flags().Changed("frames") {
				return usageError{fmt.Errorf("--frames sets the length of the generated clip; with --clip the whole clip is used")}
			}
			if c.Clip != "" && cmd.Flags().Changed("size") {
				return usageError{fmt.Errorf("--size sets the size of the generated clip; it cannot change --clip")}
			}
			c.Frames, c.Pipeline.Frames = c.Pipeline.Frames, 0
			if err := c.Validate(); err != nil {
				return usageError{err}
			}
			opts.Env = f.engineEnv(opts.Locations)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runBench(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	addPipelineFlags(fs, &opts.Config.Pipeline, &opts.Locations)
	fs.Lookup("frames").Usage = "frames of the generated clip"
	fs.StringVar(&opts.Config.Clip, "clip", "", "video to run on instead of a generated one")
	fs.Var(&opts.Size, "size", "size of the generated clip, WIDTHxHEIGHT")
	fs.IntVar(&opts.Config.Runs, "runs", opts.Config.Runs, "runs of each side, alternately; the median is reported")
	fs.StringVar(&opts.Config.WorkDir, "work-dir", "", "keep the clip, the null models and the outputs in this folder (default: a temporary one, removed)")
	fs.BoolVar(&opts.JSON, "json", false, "print the result as JSON")
	return cmd
}

func runBench(ctx context.Context, opts *BenchOptions) error {
	log, _ := newLogger(opts.IO, false)
	opts.Env.Log = log
	opts.Config.Progress = func(s string) { log.Info(s) }
	res, err := bench.Run(ctx, opts.Config, opts.Env)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteTable(opts.IO.Out)
}

// sizeValue is a WIDTHxHEIGHT flag.
type sizeValue struct{ w, h *int }

func (v sizeValue) String() string {
	if v.w == nil {
		return ""
	}
	return fmt.Sprintf("%dx%d", *v.w, *v.h)
}

func (v sizeValue) Set(s string) error {
	var w, h int
	if n, err := fmt.Sscanf(s, "%dx%d", &w, &h); err != nil || n != 2 || fmt.Sprintf("%dx%d", w, h) != s {
		return fmt.Errorf("want WIDTHxHEIGHT, e.g. 1920x1080")
	}
	*v.w, *v.h = w, h
	return nil
}

func (sizeValue) Type() string { return "size" }
