package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/models"
)

// NewCmdModels builds `anonymize models` and its subcommands.
func NewCmdModels(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "models",
		Short: "List and download the detector and pose models",
		Long: "The program needs two ONNX models: a DETR person detector and a TransPose keypoint model\n" +
			"(contracts and export scripts: models/README.md). They are looked for in --models-dir,\n" +
			"$ANONYMIZE_MODELS, ./models, then the user cache folder.",
	}
	cmd.AddCommand(NewCmdModelsList(f, nil), NewCmdModelsPull(f, nil))
	return cmd
}

// ModelsListOptions are the inputs of `anonymize models list`.
type ModelsListOptions struct {
	IO        *IOStreams
	ModelsDir string
	Getenv    func(string) string
	Cwd       string
}

// NewCmdModelsList builds `anonymize models list`.
func NewCmdModelsList(f *Factory, runF func(context.Context, *ModelsListOptions) error) *cobra.Command {
	opts := &ModelsListOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show which models are installed, with their sizes and sha256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Getenv, opts.Cwd = f.Getenv, f.cwd()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runModelsList(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ModelsDir, "models-dir", "", "model folder (default: $ANONYMIZE_MODELS, ./models, then the user cache folder)")
	return cmd
}

func runModelsList(_ context.Context, opts *ModelsListOptions) error {
	dir, source := models.ResolveDir(opts.ModelsDir, opts.Getenv, opts.Cwd)
	list, err := models.List(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "model folder: %s (from %s)\n\n", dir, source)
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSTATUS\tSIZE\tSHA256\tFILE")
	for _, m := range list {
		role := string(m.Role)
		if role == "" {
			role = "-"
		}
		status, size, sum := "missing", "-", "-"
		if m.Present {
			status = "installed"
			if m.Manifest != models.NoManifest {
				status += " (" + m.Manifest.String() + ")"
			}
			size = humanBytes(m.Size)
			sum = m.SHA256
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, role, status, size, sum, m.Path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range list {
		if m.Known && !m.Present {
			reg, _ := models.Lookup(m.Name)
			fmt.Fprintf(opts.IO.Out, "\n%s is missing: %s\n", m.Name, reg.HowToObtain())
		}
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// ModelsPullOptions are the inputs of `anonymize models pull`.
type ModelsPullOptions struct {
	IO        *IOStreams
	Name      string
	ModelsDir string
	ModelsURL string
	Getenv    func(string) string
	Cwd       string
}

// NewCmdModelsPull builds `anonymize models pull`.
func NewCmdModelsPull(f *Factory, runF func(context.Context, *ModelsPullOptions) error) *cobra.Command {
	opts := &ModelsPullOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "pull NAME",
		Short: "Download a model from the configured models server",
		Long: "Download model NAME (see `anonymize models list`) from the models server named by\n" +
			"--models-url or $ANONYMIZE_MODELS_URL: a base URL serving manifest.json (format in\n" +
			"models/README.md). The download resumes where an interrupted one stopped, and the file\n" +
			"is installed only when its sha256 matches the manifest.",
		Example: "  ANONYMIZE_MODELS_URL=https://models.example.org/anonymize/ anonymize models pull detr-resnet-50",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Getenv, opts.Cwd = f.Getenv, f.cwd()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runModelsPull(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ModelsDir, "models-dir", "", "model folder to install into (default: $ANONYMIZE_MODELS, ./models, then the user cache folder)")
	cmd.Flags().StringVar(&opts.ModelsURL, "models-url", "", "models server base URL or manifest.json URL (default: $ANONYMIZE_MODELS_URL)")
	return cmd
}

func runModelsPull(ctx context.Context, opts *ModelsPullOptions) error {
	manifestURL, err := models.ResolveManifestURL(opts.ModelsURL, opts.Getenv)
	if err != nil {
		return err
	}
	dir, _ := models.ResolveDir(opts.ModelsDir, opts.Getenv, opts.Cwd)
	log, _ := newLogger(opts.IO, false)
	var bar *progressbar.ProgressBar
	progress := func(done, total int64) {
		if !opts.IO.ErrIsTerminal {
			return
		}
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(opts.IO.ErrOut),
				progressbar.OptionSetDescription(opts.Name),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetWidth(30),
				progressbar.OptionClearOnFinish(),
			)
		}
		bar.Set64(done)
	}
	path, err := models.Pull(ctx, models.PullOptions{
		ManifestURL: manifestURL, Name: opts.Name, Dir: dir, Progress: progress, Logger: log,
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "installed %s at %s\n", opts.Name, path)
	return nil
}
