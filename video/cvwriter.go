package video

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// cvEncoder writes with OpenCV's VideoWriter, for machines without ffmpeg.
// OpenCV can only write MPEG-4 part 2 here and never audio.
type cvEncoder struct {
	mu       sync.Mutex
	vw       *gocv.VideoWriter
	output   string
	tmp      *tempFile
	w, h     int
	frames   int
	state    int
	closeErr error
}

func newCVEncoder(opts EncoderOptions) (*cvEncoder, error) {
	tmp, err := createTemp(opts.Output, opts.TempDir)
	if err != nil {
		return nil, err
	}
	if opts.VariableRate {
		opts.Logger.Warn("OpenCV's writer spaces frames evenly: the variable frame rate of the source is not kept (install ffmpeg to keep it)")
	}
	vw, err := gocv.VideoWriterFile(tmp.name, "mp4v", opts.FPS.Float(), opts.Width, opts.Height, true)
	if err == nil && !vw.IsOpened() {
		vw.Close()
		err = errors.New("OpenCV cannot write this container; install ffmpeg or use an .mp4 output")
	}
	if err != nil {
		tmp.remove()
		return nil, fmt.Errorf("encoder: open %s: %w", opts.Output, err)
	}
	return &cvEncoder{vw: vw, output: opts.Output, tmp: tmp, w: opts.Width, h: opts.Height}, nil
}

func (e *cvEncoder) Backend() string { return "opencv mp4v" }

// WriteFrame writes the frame; OpenCV's writer knows only a constant
// rate, so pts is ignored.
func (e *cvEncoder) WriteFrame(frame gocv.Mat, _ time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != stateOpen {
		return errors.New("encoder: write after Close or Abort")
	}
	if err := checkFrame(&frame, e.w, e.h); err != nil {
		return err
	}
	if err := e.vw.Write(frame); err != nil {
		return fmt.Errorf("encoder: %w", err)
	}
	e.frames++
	return nil
}

func (e *cvEncoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state {
	case stateClosed:
		return e.closeErr
	case stateAborted:
		return ErrAborted
	}
	e.state = stateClosed
	e.vw.Close()
	e.closeErr = e.finish()
	return e.closeErr
}

func (e *cvEncoder) finish() error {
	var err error
	if e.frames == 0 {
		err = fmt.Errorf("encode %s: no frames were written", e.output)
	} else if st, serr := os.Stat(e.tmp.name); serr != nil || st.Size() == 0 {
		// OpenCV reports no errors; an empty file is the only sign.
		err = fmt.Errorf("encode %s: OpenCV wrote no data; install ffmpeg", e.output)
	}
	if err != nil {
		e.tmp.remove()
		return err
	}
	return e.tmp.commit(e.output)
}

func (e *cvEncoder) Abort() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != stateOpen {
		return nil
	}
	e.state = stateAborted
	e.vw.Close()
	return e.tmp.remove()
}
