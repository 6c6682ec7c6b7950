package main

import (
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress draws a frames bar (count, fps, ETA) on a terminal, and nothing
// anywhere else: logs captured by CI or a pod would fill with redraws.
type progress struct {
	enabled bool
	io      *IOStreams
	log     *lineHandler
	bar     *progressbar.ProgressBar
}

func newProgress(streams *IOStreams, quiet bool, log *lineHandler) *progress {
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
	if p.log != nil {
		bar := p.bar
		p.log.setInterrupt(func(write func()) {
			bar.Clear()
			write()
			bar.RenderBlank()
		})
	}
}

func (p *progress) frame() {
	if p.bar != nil {
		p.bar.Add(1)
	}
}

// finish removes the bar, so the summary line stands alone.
func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	if p.log != nil {
		p.log.setInterrupt(nil)
	}
	p.bar.Finish()
	p.bar.Clear()
	p.bar = nil
}
