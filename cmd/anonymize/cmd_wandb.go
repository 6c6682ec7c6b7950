package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/telemetry/wandb"
)

// NewCmdWandB builds `anonymize wandb`.
func NewCmdWandB(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wandb",
		Short: "Weights & Biases runs saved on disk",
	}
	cmd.AddCommand(NewCmdWandBSync(f, nil))
	return cmd
}

// WandBSyncOptions are the inputs of `anonymize wandb sync`.
type WandBSyncOptions struct {
	IO     *IOStreams
	Dirs   []string
	Getenv func(string) string
}

// NewCmdWandBSync builds `anonymize wandb sync`.
func NewCmdWandBSync(f *Factory, runF func(context.Context, *WandBSyncOptions) error) *cobra.Command {
	opts := &WandBSyncOptions{IO: f.IO}
	return &cobra.Command{
		Use:   "sync DIR...",
		Short: "Upload runs saved offline (or whose upload was cut short) to W&B",
		Long: "Upload Weights & Biases runs that `anonymize video --telemetry wandb` saved on disk:\n" +
			"offline runs (WANDB_MODE=offline) and online runs whose upload did not finish. DIR is a\n" +
			"run folder, or a folder of them (WANDB_DIR/wandb). Uploads resume where an earlier sync\n" +
			"stopped, so running it again after an interruption sends nothing twice. Needs\n" +
			"WANDB_API_KEY; WANDB_BASE_URL, WANDB_ENTITY and WANDB_PROJECT apply as for a run.",
		Example: "  WANDB_MODE=offline anonymize video --telemetry wandb in.mp4 out.mp4\n" +
			"  WANDB_API_KEY=... anonymize wandb sync wandb/",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dirs, opts.Getenv = args, f.Getenv
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runWandBSync(cmd.Context(), opts)
		},
	}
}

func runWandBSync(ctx context.Context, opts *WandBSyncOptions) error {
	settings, err := wandb.SettingsFromEnv(opts.Getenv)
	if err != nil {
		return err
	}
	if settings.APIKey == "" {
		return errors.New("WANDB_API_KEY is not set: set it to the API key of the W&B account to upload to")
	}
	log, _ := newLogger(opts.IO, false)
	return wandb.Sync(ctx, opts.Dirs, settings, log)
}
