package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints the result for people: the two sides end to end, their
// ratio, then where the pipeline's time went.
func (r Result) WriteTable(w io.Writer) error {
	clip := r.Clip
	if r.Generated {
		clip = "generated scene"
	}
	models := "the given models"
	if r.NullModels {
		models = "null models (near-zero cost)"
	}
	fmt.Fprintf(w, "%d frames of %dx%d (%s), %s on %s (detector batch %d, pre-processing %s), %s -preset %s -crf %d\n\n",
		r.Frames, r.Width, r.Height, clip, models, r.Providers, r.Batch, r.Preprocess, r.Encoder, r.Preset, r.CRF)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\t   frames/s\t       wall\t        CPU\t   peak RSS")
	row := func(name string, u Usage) {
		fmt.Fprintf(tw, "%s\t%11.1f\t%11s\t%11s\t%11s\n", name, r.FPS(u), secs(u.Wall), secs(u.CPU()), mib(u.PeakRSS))
	}
	row("ffmpeg decode+encode", r.FFmpeg)
	row("anonymize", r.Anonymize)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nratio to ffmpeg (its wall time / anonymize's): %.2f\n", r.Ratio())
	fmt.Fprintf(w, "Go allocations: %.0f per frame, %s per frame (span recording included)\n\n", r.AllocsPerFrame, kib(r.AllocBytesPerFrame))

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\t busy\tstep\t ms/frame")
	for _, st := range r.Stages {
		first := true
		for _, s := range r.Steps {
			if s.Stage != st.Name {
				continue
			}
			name, busy := "", ""
			if first {
				name, busy = st.Name, fmt.Sprintf("%4.0f%%", 100*st.Busy)
				if st.Workers > 1 {
					name = fmt.Sprintf("%s (%d workers)", st.Name, st.Workers)
				}
				first = false
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%9.2f\n", name, busy, s.Name, ms(s.PerFrame))
		}
	}
	return tw.Flush()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.0f KiB", b/1024) }
