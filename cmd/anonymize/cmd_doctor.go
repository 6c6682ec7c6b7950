package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/diagnose"
	"github.com/anonymize-dev/anonymize/pipeline"
)

// DoctorOptions are the inputs of `anonymize doctor`.
type DoctorOptions struct {
	IO        *IOStreams
	Env       pipeline.Env
	Locations Locations // where the runtime and models are; resolved into Env
	Config    pipeline.Config
}

// NewCmdDoctor builds `anonymize doctor`.
func NewCmdDoctor(f *Factory, runF func(context.Context, *DoctorOptions) error) *cobra.Command {
	opts := &DoctorOptions{IO: f.IO, Config: pipeline.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check OpenCV, ONNX Runtime, CUDA, NVML, ffmpeg and the models",
		Long: "Report everything a run depends on: OpenCV and its video back-ends, the ONNX Runtime\n" +
			"library and which execution providers load, whether CUDA and NVML are usable, ffmpeg,\n" +
			"and each model file with its sha256, inputs and outputs. Exits 1 when `anonymize video`\n" +
			"could not run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Env = f.engineEnv(opts.Locations)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runDoctor(cmd.Context(), opts)
		},
	}
	addRuntimeFlags(cmd.Flags(), &opts.Config, &opts.Locations)
	return cmd
}

func runDoctor(ctx context.Context, opts *DoctorOptions) error {
	dev := opts.Config.Device
	report := diagnose.Run(ctx, diagnose.Options{
		Library:       opts.Env.Library,
		Device:        dev,
		Models:        opts.Env.Models,
		DetectorModel: opts.Config.DetectorModel,
		PoseModel:     opts.Config.PoseModel,
	})
	if err := report.Write(opts.IO.Out); err != nil {
		return err
	}
	if report.Failed() {
		return exitCodeError{exitError}
	}
	return nil
}
