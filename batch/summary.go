package batch

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes a short human summary: files by status, frames and
// throughput, and each failed file with its error on one line. For a dry
// run it writes the plan instead: each file and its output, whether it
// would be processed, and why.
func (s Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if s.DryRun {
		fmt.Fprintf(tw, "dry run: %d files, %d to process, %d already done\n", s.Totals.Files.Total, s.Pending, s.Skipped)
		for _, f := range s.Files {
			action := "process"
			if f.Status == StatusSkipped {
				action = "skip"
			}
			fmt.Fprintf(tw, "  %s\t%s -> %s\t%s\n", action, f.Input, f.Output, reasonText(f.Reason))
		}
		return tw.Flush()
	}
	fmt.Fprintf(tw, "status\tfiles\n")
	fmt.Fprintf(tw, "done\t%d\n", s.Done)
	fmt.Fprintf(tw, "skipped\t%d\t(already done)\n", s.Skipped)
	fmt.Fprintf(tw, "failed\t%d\n", s.Failed)
	fmt.Fprintf(tw, "pending\t%d\n", s.Pending)
	fmt.Fprintf(tw, "total\t%d\n", s.Totals.Files.Total)
	wall := time.Duration(s.Totals.WallSeconds * float64(time.Second))
	if wall < time.Minute {
		wall = wall.Round(100 * time.Millisecond)
	} else {
		wall = wall.Round(time.Second)
	}
	fmt.Fprintf(tw, "\nframes\t%d\tin %s (%.1f fps)\n", s.Totals.Frames, wall, s.Totals.FPS)
	if s.ReportPath != "" {
		fmt.Fprintf(tw, "report\t%s\n", s.ReportPath)
	}
	switch s.RunStatus {
	case RunInterrupted:
		fmt.Fprintf(tw, "\ninterrupted: run the same command again to process the %d files left\n", s.Pending)
	case RunStopped:
		fmt.Fprintf(tw, "\nstopped at the first failure (--fail-fast): %d files not processed\n", s.Pending)
	}
	if s.Failed > 0 {
		fmt.Fprintf(tw, "\nfailed files:\n")
		for _, f := range s.Files {
			if f.Status == StatusFailed {
				fmt.Fprintf(tw, "  %s\t%s\n", f.Input, oneLine(f.Error))
			}
		}
	}
	return tw.Flush()
}

func reasonText(r Reason) string {
	if r == ReasonAlreadyDone {
		return "already done"
	}
	return strings.ReplaceAll(string(r), "_", " ")
}

// oneLine keeps a table row on one line: an error's first line, capped.
func oneLine(s string) string {
	s, _, cut := strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 160 {
		s, cut = string(r[:159]), true
	}
	if cut {
		s += "…"
	}
	return s
}
