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
			switch {
			case m.PinMatches():
				status += fmt.Sprintf(" (Hub %s@%.7s)", m.Pin.Repo, m.Pin.Revision)
			case m.Pin != nil:
				status += " (differs from its Hub pull in " + models.HubLockFile + ")"
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
	HubURL    string
	Revision  string
	SHA256    string
	File      string
	Getenv    func(string) string
	Cwd       string
}

// NewCmdModelsPull builds `anonymize models pull`.
func NewCmdModelsPull(f *Factory, runF func(context.Context, *ModelsPullOptions) error) *cobra.Command {
	opts := &ModelsPullOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "pull NAME",
		Short: "Download a model from the Hugging Face Hub or your models server",
		Long: "Download model NAME (see `anonymize models list`).\n\n" +
			"With --models-url or $ANONYMIZE_MODELS_URL set, it comes from that models server: a base URL\n" +
			"serving manifest.json (format in models/README.md), and must match the manifest's sha256.\n\n" +
			"Otherwise models with a public ONNX export (detr-resnet-50 and its variants) come from the\n" +
			"Hugging Face Hub ($HF_ENDPOINT or --hub-url for a mirror, $HF_TOKEN for gated repositories),\n" +
			"at a pinned commit, and must match the sha256 the Hub publishes. The commit and sha256 are\n" +
			"recorded in " + models.HubLockFile + " in the model folder; a later pull of the same commit that\n" +
			"finds another file is refused. TransPose has no public ONNX: export it (models/README.md).\n\n" +
			"Either way the download resumes where an interrupted one stopped, and the file is installed\n" +
			"only when it declares the tensors the program feeds and reads.",
		Example: "  anonymize models pull detr-resnet-50\n" +
			"  anonymize models pull detr-resnet-50 --file model.onnx --sha256 <hash>   # fetched by hand\n" +
			"  ANONYMIZE_MODELS_URL=https://models.example.org/anonymize/ anonymize models pull transpose-h-a4",
		Args: cobra.ExactArgs(1),
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
	cmd.Flags().StringVar(&opts.HubURL, "hub-url", "", "Hugging Face Hub or mirror to pull from (default: $HF_ENDPOINT, else "+models.DefaultHubURL+")")
	cmd.Flags().StringVar(&opts.Revision, "revision", "", "Hub commit (40 hex digits) to pull instead of the pinned one")
	cmd.Flags().StringVar(&opts.SHA256, "sha256", "", "install only a file with this sha256")
	cmd.Flags().StringVar(&opts.File, "file", "", "install this file, fetched by hand, instead of downloading (checked like a download)")
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
	hubURL := opts.HubURL
	if hubURL == "" {
		hubURL = opts.Getenv(models.EnvHubURL)
	}
	path, err := models.Pull(ctx, models.PullOptions{
		ManifestURL: manifestURL, Name: opts.Name, Dir: dir, SHA256: opts.SHA256, File: opts.File,
		Hub:      models.HubOptions{URL: hubURL, Token: opts.Getenv(models.EnvHubToken), Revision: opts.Revision},
		Progress: progress, Logger: log,
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "installed %s at %s\n", opts.Name, path)
	if m, err := models.Lookup(opts.Name); err == nil && m.VariantOf != "" {
		fmt.Fprintf(opts.IO.Out, "it replaces %s when run with %s %s\n", m.VariantOf, m.Flag, path)
	}
	return nil
}
