package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/batch"
)

// NewCmdReport builds `anonymize report`.
func NewCmdReport(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Work with batch audit reports",
	}
	cmd.AddCommand(NewCmdReportMerge(f, nil))
	return cmd
}

// ReportMergeOptions are the inputs of `anonymize report merge`.
type ReportMergeOptions struct {
	IO                 *IOStreams
	Reports            []string
	Output             string
	AllowMixedSettings bool
}

// NewCmdReportMerge builds `anonymize report merge`.
func NewCmdReportMerge(f *Factory, runF func(context.Context, *ReportMergeOptions) error) *cobra.Command {
	opts := &ReportMergeOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "merge REPORT...",
		Short: "Combine the reports of a sharded batch into one",
		Long: "Combine the audit reports the shards of a batch wrote (anonymize-report.shard-I-of-N.json)\n" +
			"into one report with totals over the whole dataset. The shards must have used the same\n" +
			"settings and models (the settings hash), and no file may appear in two of them.",
		Example: "  anonymize report merge -o anonymized/anonymize-report.json anonymized/anonymize-report.shard-*.json",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Reports = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runReportMerge(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "write the merged report here (default: standard output)")
	cmd.Flags().BoolVar(&opts.AllowMixedSettings, "allow-mixed-settings", false, "merge shards run with different settings or models")
	return cmd
}

func runReportMerge(_ context.Context, opts *ReportMergeOptions) error {
	merged, err := batch.MergeReports(opts.Reports, batch.MergeOptions{AllowMixedSettings: opts.AllowMixedSettings})
	if err != nil {
		return err
	}
	if opts.Output == "" {
		return batch.EncodeReport(opts.IO.Out, merged)
	}
	if err := batch.WriteReport(opts.Output, merged); err != nil {
		return err
	}
	t := merged.Totals.Files
	fmt.Fprintf(opts.IO.ErrOut, "anonymize: merged %d reports into %s: %d files, %d done, %d already done, %d failed, %d pending\n",
		len(opts.Reports), opts.Output, t.Total, t.Done, t.Skipped, t.Failed, t.Pending+t.Running)
	return nil
}
