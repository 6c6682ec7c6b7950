package main

import (
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/anonymize-dev/anonymize/batch"
	"github.com/anonymize-dev/anonymize/pipeline"
)

// progress draws a frames bar (count, fps, ETA) on a terminal, and nothing
// anywhere else: logs captured by CI or a pod would fill with redraws.
type progress struct {
	enabled bool
	io      *IOStreams
	log     *logHandler
	bar     *progressbar.ProgressBar
}

func newProgress(streams *IOStreams, quiet bool, log *logHandler) *progress {
	return &progress{enabled: streams.ErrIsTerminal && !quiet, io: streams, log: log}
}

// start draws the bar; total 0 means the frame count is unknown (spinner).
func (p *progress) start(label string, total int) {
	if !p.enabled {
		return
	}
	max := total
	if max <= 0 {
		max = -1
	}
	p.bar = progressbar.NewOptions(max,
		progressbar.OptionSetWriter(p.io.ErrOut),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("frames"), // shown as frames/s
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
	)
	attachBar(p.log, p.bar)
}

// attachBar makes log lines clear the bar, print, and redraw it below.
func attachBar(log *logHandler, bar *progressbar.ProgressBar) {
	if log == nil {
		return
	}
	log.setInterrupt(func(write func()) {
		bar.Clear()
		write()
		bar.RenderBlank()
	})
}

// detachBar removes the bar for good, so the summary stands alone.
func detachBar(log *logHandler, bar *progressbar.ProgressBar) {
	if log != nil {
		log.setInterrupt(nil)
	}
	bar.Finish()
	bar.Clear()
}

func (p *progress) frame() {
	if p.bar != nil {
		p.bar.Add(1)
	}
}

// finish removes the bar, so the summary line stands alone.
func (p *progress) finish() {
	if p.bar != nil {
		detachBar(p.log, p.bar)
		p.bar = nil
	}
}

// batchProgress is the overall bar of `batch`: frames over every file to
// process (the total grows as files open), files done, ETA, and the file
// being worked on.
type batchProgress struct {
	enabled bool
	io      *IOStreams
	log     *logHandler
	bar     *progressbar.ProgressBar

	files, done, failed int
	frames              int64
	current             string
}

func newBatchProgress(streams *IOStreams, quiet bool, log *logHandler) *batchProgress {
	return &batchProgress{enabled: streams.ErrIsTerminal && !quiet, io: streams, log: log}
}

func (p *batchProgress) describe() {
	desc := fmt.Sprintf("files %d/%d", p.done, p.files)
	if p.failed > 0 {
		desc += fmt.Sprintf(" (%d failed)", p.failed)
	}
	if p.current != "" {
		desc += " · " + p.current
	}
	p.bar.Describe(desc)
}

// hooks follows a batch run; batch.Run never calls them concurrently.
func (p *batchProgress) hooks() batch.Hooks {
	if !p.enabled {
		return batch.Hooks{}
	}
	return batch.Hooks{
		Planned: func(files []batch.FileReport) {
			for _, f := range files {
				if f.Status != batch.StatusSkipped {
					p.files++
				}
			}
			p.bar = progressbar.NewOptions64(-1,
				progressbar.OptionSetWriter(p.io.ErrOut),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("frames"),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionSetWidth(25),
				progressbar.OptionClearOnFinish(),
			)
			p.describe()
			attachBar(p.log, p.bar)
		},
		FileStarted: func(it batch.Item, frames int) {
			p.frames += int64(frames)
			if p.frames > 0 {
				p.bar.ChangeMax64(p.frames)
			}
			p.current = it.Rel
			p.describe()
		},
		Frame: func(batch.Item, pipeline.FrameResult) { p.bar.Add(1) },
		FileFinished: func(f batch.FileReport) {
			p.done++
			if f.Status == batch.StatusFailed {
				p.failed++
			}
			p.describe()
		},
	}
}

func (p *batchProgress) finish() {
	if p.bar != nil {
		detachBar(p.log, p.bar)
		p.bar = nil
	}
}
