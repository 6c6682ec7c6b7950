package video

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

const (
	stateOpen = iota
	stateClosed
	stateAborted
)

// ffmpegEncoder pipes raw BGR frames into an ffmpeg process.
type ffmpegEncoder struct {
	ctx       context.Context
	log       *slog.Logger
	output    string
	tmp       string
	w, h      int
	frameSize int

	cmd    *exec.Cmd
	stdin  *os.File
	stderr *tailBuffer
	done   chan struct{} // closed when ffmpeg has exited
	// waitErr is ffmpeg's exit status; read it only after done is closed.
	waitErr error

	mu       sync.Mutex // serialises WriteFrame, Close and the end of Abort
	state    int
	failed   error // set once a write failed; the encode cannot continue
	closeErr error
	frames   int
	scratch  gocv.Mat // continuous copy of non-continuous frames
	scratchN bool     // scratch was allocated
}

func newFFmpegEncoder(ctx context.Context, opts EncoderOptions, ffmpeg string) (*ffmpegEncoder, error) {
	var src probeResult
	haveSrc := false
	if opts.AudioSource != "" {
		ffprobe := findFFprobe(ffmpeg, opts.lookPath)
		if ffprobe != "" {
			r, err := probeWith(ctx, opts.AudioSource, ffprobe)
			if err != nil {
				return nil, fmt.Errorf("encoder: %w", err)
			}
			src, haveSrc = r, true
		} else if _, err := checkInput(opts.AudioSource); err != nil {
			return nil, fmt.Errorf("encoder: %w", err)
		}
	}

	tmp, err := createTemp(opts.Output, opts.TempDir)
	if err != nil {
		return nil, err
	}
	args := ffmpegArgs(opts, tmp, src, haveSrc)
	pr, pw, err := os.Pipe()
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("encoder: %w", err)
	}
	growPipe(pw, opts.Width*opts.Height*3)

	e := &ffmpegEncoder{
		ctx:       ctx,
		log:       opts.Logger,
		output:    opts.Output,
		tmp:       tmp,
		w:         opts.Width,
		h:         opts.Height,
		frameSize: opts.Width * opts.Height * 3,
		stdin:     pw,
		stderr:    newTailBuffer(16 << 10),
		done:      make(chan struct{}),
	}
	e.cmd = exec.CommandContext(ctx, ffmpeg, args...)
	// ffmpeg reads the pipe directly; no copying goroutine sits in between.
	e.cmd.Stdin = pr
	e.cmd.Stderr = e.stderr
	e.cmd.WaitDelay = 5 * time.Second
	e.log.Debug("starting ffmpeg", "cmd", ffmpeg, "args", args)
	err = e.cmd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("encoder: start ffmpeg: %w", err)
	}
	go func() {
		e.waitErr = e.cmd.Wait()
		close(e.done)
	}()
	return e, nil
}

// findFFprobe returns the ffprobe that ships with ffmpeg, else the one on
// PATH, else "".
func findFFprobe(ffmpeg string, lookPath func(string) (string, error)) string {
	beside := filepath.Join(filepath.Dir(ffmpeg), "ffprobe")
	if st, err := os.Stat(beside); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return beside
	}
	p, err := lookPath("ffprobe")
	if err != nil {
		return ""
	}
	return p
}

// Global metadata worth keeping. Everything else, in particular GPS
// location and device make, model and software, is left out: the point of
// the tool is to make footage less identifying.
var keptTags = []string{"creation_time", "date", "title", "description", "comment", "copyright"}

// Colour description values ffmpeg accepts for the matching output
// options; others are dropped rather than risk failing the encode.
var (
	okColorSpace     = []string{"bt709", "smpte170m", "bt470bg", "smpte240m", "bt2020nc", "bt2020c", "fcc", "ycgco"}
	okColorPrimaries = []string{"bt709", "smpte170m", "bt470bg", "bt470m", "smpte240m", "film", "bt2020", "smpte428", "smpte431", "smpte432"}
	okColorTransfer  = []string{"bt709", "smpte170m", "gamma22", "gamma28", "smpte240m", "linear", "iec61966-2-1", "iec61966-2-4", "bt2020-10", "bt2020-12", "smpte2084", "arib-std-b67"}
)

// ffmpegArgs builds the command line: raw frames on stdin as input 0, the
// source (for audio) as input 1.
func ffmpegArgs(opts EncoderOptions, tmp string, src probeResult, haveSrc bool) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		"-f", "rawvideo", "-pix_fmt", "bgr24",
		"-s", fmt.Sprintf("%dx%d", opts.Width, opts.Height),
		"-framerate", opts.FPS.String(),
		"-i", "pipe:0",
	}
	ext := strings.ToLower(filepath.Ext(opts.Output))
	// With an unknown source (no ffprobe) still try: "1:a?" maps nothing
	// when there is no audio.
	withAudio := opts.Audio == AudioCopy && opts.AudioSource != "" && (!haveSrc || src.HasAudio)
	if withAudio {
		if opts.MaxDuration > 0 {
			args = append(args, "-t", strconv.FormatFloat(opts.MaxDuration.Seconds(), 'f', 6, 64))
		}
		args = append(args, "-i", "file:"+opts.AudioSource)
	}
	args = append(args, "-map", "0:v:0")
	if withAudio {
		args = append(args, "-map", "1:a?")
	}
	args = append(args, "-c:v", "libx264", "-preset", opts.Preset, "-crf", strconv.Itoa(opts.CRF), "-pix_fmt", "yuv420p")
	if opts.Width%2 != 0 || opts.Height%2 != 0 {
		// 4:2:0 chroma needs even dimensions; pad one black row/column.
		opts.Logger.Warn("frame size is odd; padding the output by one pixel for H.264",
			"width", opts.Width, "height", opts.Height)
		args = append(args, "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2")
	}
	if withAudio {
		switch {
		case ext == ".mkv" || haveSrc && audioCopyable(ext, src.audioCodecs):
			args = append(args, "-c:a", "copy")
		case !haveSrc:
			opts.Logger.Info("ffprobe not found, so the source's audio codec is unknown; re-encoding any audio as AAC 192 kb/s")
			args = append(args, "-c:a", "aac", "-b:a", "192k")
		default:
			opts.Logger.Warn("source audio cannot be stored in the output container; re-encoding it as AAC 192 kb/s",
				"audio_codecs", src.audioCodecs, "container", ext)
			args = append(args, "-c:a", "aac", "-b:a", "192k")
		}
	}
	if haveSrc {
		for _, k := range keptTags {
			if v, ok := lookupTag(src.tags, k); ok && v != "" {
				args = append(args, "-metadata", k+"="+v)
			}
		}
		if slices.Contains(okColorSpace, src.color.space) {
			args = append(args, "-colorspace:v", src.color.space)
		}
		if slices.Contains(okColorPrimaries, src.color.primaries) {
			args = append(args, "-color_primaries:v", src.color.primaries)
		}
		if slices.Contains(okColorTransfer, src.color.transfer) {
			args = append(args, "-color_trc:v", src.color.transfer)
		}
	}
	if ext == ".mp4" || ext == ".m4v" || ext == ".mov" {
		// Put the index first so players can start before the whole file
		// has loaded.
		args = append(args, "-movflags", "+faststart")
	}
	return append(args, "file:"+tmp)
}

func lookupTag(tags map[string]string, key string) (string, bool) {
	for k, v := range tags {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// audioCopyable reports whether every source audio codec can be stored in
// a container with extension ext.
func audioCopyable(ext string, codecs []string) bool {
	if len(codecs) == 0 {
		return false
	}
	for _, c := range codecs {
		if !audioFits(ext, c) {
			return false
		}
	}
	return true
}

// audioFits reports whether ffmpeg can store codec in the container for ext
// without experimental flags. Matroska takes everything.
func audioFits(ext, codec string) bool {
	switch ext {
	case ".mkv":
		return true
	case ".mp4", ".m4v":
		return slices.Contains([]string{"aac", "mp3", "ac3", "eac3", "alac", "opus"}, codec)
	case ".mov":
		return slices.Contains([]string{"aac", "mp3", "ac3", "eac3", "alac"}, codec) || strings.HasPrefix(codec, "pcm_")
	case ".avi":
		return slices.Contains([]string{"mp3", "mp2", "ac3", "aac", "pcm_s16le", "pcm_u8"}, codec)
	}
	return false
}

func (e *ffmpegEncoder) Backend() string { return "ffmpeg libx264" }

func (e *ffmpegEncoder) WriteFrame(frame gocv.Mat) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.state != stateOpen:
		return errors.New("encoder: write after Close or Abort")
	case e.failed != nil:
		return e.failed
	}
	if err := checkFrame(&frame, e.w, e.h); err != nil {
		return err
	}
	data, err := e.frameBytes(&frame)
	if err != nil {
		return err
	}
	if _, err := e.stdin.Write(data); err != nil {
		e.failed = e.writeFailed(err)
		return e.failed
	}
	e.frames++
	return nil
}

// frameBytes returns the frame's pixels without copying them, unless the
// Mat is a view into a larger image whose rows are not adjacent.
func (e *ffmpegEncoder) frameBytes(frame *gocv.Mat) ([]byte, error) {
	src := frame
	if !frame.IsContinuous() {
		if !e.scratchN {
			e.scratch, e.scratchN = gocv.NewMat(), true
		}
		frame.CopyTo(&e.scratch)
		src = &e.scratch
	}
	data, err := src.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("encoder: %w", err)
	}
	if len(data) != e.frameSize {
		return nil, fmt.Errorf("encoder: frame holds %d bytes, want %d", len(data), e.frameSize)
	}
	return data, nil
}

// writeFailed explains a failed write to ffmpeg's stdin. The pipe breaks
// because ffmpeg exited, so the useful information is its exit status and
// stderr, not EPIPE.
func (e *ffmpegEncoder) writeFailed(werr error) error {
	e.stdin.Close()
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		// ffmpeg closed its input but keeps running: give up on it.
		e.cmd.Process.Kill()
		<-e.done
	}
	if e.ctx.Err() != nil {
		return fmt.Errorf("encode %s: %w", e.output, e.ctx.Err())
	}
	if e.waitErr != nil {
		return e.ffmpegError(e.waitErr)
	}
	return fmt.Errorf("ffmpeg stopped reading frames (%v): %s", werr, e.stderrSummary())
}

func (e *ffmpegEncoder) ffmpegError(waitErr error) error {
	return fmt.Errorf("ffmpeg failed (%v): %s", waitErr, e.stderrSummary())
}

func (e *ffmpegEncoder) stderrSummary() string {
	lines := e.stderr.lastLines(5)
	if len(lines) == 0 {
		return "no error output"
	}
	return strings.Join(lines, "; ")
}

func (e *ffmpegEncoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state {
	case stateClosed:
		return e.closeErr
	case stateAborted:
		return ErrAborted
	}
	e.state = stateClosed
	e.closeErr = e.finish()
	return e.closeErr
}

// finish lets ffmpeg complete the file and moves it into place.
func (e *ffmpegEncoder) finish() error {
	defer e.release()
	e.stdin.Close() // EOF tells ffmpeg to flush and write the index
	<-e.done
	var err error
	switch {
	case e.failed != nil:
		err = e.failed
	case e.ctx.Err() != nil:
		err = fmt.Errorf("encode %s: %w", e.output, e.ctx.Err())
	case e.waitErr != nil:
		err = e.ffmpegError(e.waitErr)
	case e.frames == 0:
		err = fmt.Errorf("encode %s: no frames were written", e.output)
	}
	if err != nil {
		os.Remove(e.tmp)
		return err
	}
	if lines := e.stderr.lastLines(5); len(lines) > 0 {
		e.log.Warn("ffmpeg reported problems", "stderr", strings.Join(lines, "; "))
	}
	return commit(e.tmp, e.output)
}

func (e *ffmpegEncoder) Abort() error {
	// Kill first, without the lock, so that a WriteFrame blocked on a full
	// pipe returns and releases it.
	select {
	case <-e.done:
	default:
		e.cmd.Process.Kill()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != stateOpen {
		return nil
	}
	e.state = stateAborted
	defer e.release()
	e.stdin.Close()
	<-e.done
	if err := os.Remove(e.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove temporary output: %w", err)
	}
	return nil
}

func (e *ffmpegEncoder) release() {
	if e.scratchN {
		e.scratch.Close()
		e.scratchN = false
	}
}
