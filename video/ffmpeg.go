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

// ffmpegEncoder streams raw frames with their timestamps into an
// ffmpeg process, as Matroska on its stdin (see mkvWriter). ffmpeg starts
// with the first frame, whose time decides where the video starts next to
// the audio.
type ffmpegEncoder struct {
	ctx       context.Context
	log       *slog.Logger
	opts      EncoderOptions
	ffmpeg    string
	src       probeResult
	haveSrc   bool
	tmp       *tempFile
	frameSize int
	// i420 says frames go to ffmpeg as planar 4:2:0 (I420), converted
	// here, rather than as BGR: x264 takes 4:2:0, so this halves what
	// goes through the pipe and takes the conversion (swscale, on
	// ffmpeg's main thread, in front of x264) into OpenCV's vectorised,
	// threaded code. Odd sizes stay BGR: 4:2:0 needs even ones, and
	// ffmpeg pads them first.
	i420 bool

	cmd    *exec.Cmd
	stdin  *os.File
	mkv    *mkvWriter
	stderr *tailBuffer
	done   chan struct{} // closed when ffmpeg has exited
	// waitErr is ffmpeg's exit status; read it only after done is closed.
	waitErr error

	procMu sync.Mutex  // guards proc, which Abort reads without mu
	proc   *os.Process // the running ffmpeg; nil before the first frame

	mu       sync.Mutex // serialises WriteFrame, Close and the end of Abort
	state    int
	failed   error // set once a write failed; the encode cannot continue
	closeErr error
	frames   int
	first    time.Duration // the first frame's time
	last     time.Duration // the previous frame's time
	scratch  gocv.Mat      // the frame in I420, or a continuous copy of a non-continuous one
	scratchN bool          // scratch was allocated
}

func newFFmpegEncoder(ctx context.Context, opts EncoderOptions, ffmpeg string) (*ffmpegEncoder, error) {
	e := &ffmpegEncoder{
		ctx:    ctx,
		log:    opts.Logger,
		opts:   opts,
		ffmpeg: ffmpeg,
		i420:   opts.Width%2 == 0 && opts.Height%2 == 0,
		stderr: newTailBuffer(16 << 10),
		done:   make(chan struct{}),
	}
	codec, why := ResolveCodec(ctx, ffmpeg, opts.Codec)
	if why != nil {
		opts.Logger.Debug("NVENC is not usable, encoding with libx264", "reason", why)
	}
	opts.Codec = codec
	e.opts.Codec = codec
	if opts.AudioSource != "" {
		ffprobe := findFFprobe(ffmpeg, opts.lookPath)
		if ffprobe != "" {
			r, err := probeStreams(ctx, opts.AudioSource, ffprobe)
			if err != nil {
				return nil, fmt.Errorf("encoder: %w", err)
			}
			e.src, e.haveSrc = r, true
		} else if _, err := checkInput(opts.AudioSource); err != nil {
			return nil, fmt.Errorf("encoder: %w", err)
		}
	}
	e.frameSize = opts.Width * opts.Height * 3 // BGR
	if e.i420 {
		e.frameSize /= 2 // a full luma plane, two quarter-size chroma planes
	}
	tmp, err := createTemp(opts.Output, opts.TempDir)
	if err != nil {
		return nil, err
	}
	e.tmp = tmp
	return e, nil
}

// start runs ffmpeg; first is the first frame's time.
func (e *ffmpegEncoder) start(first time.Duration) error {
	args := ffmpegArgs(e.opts, e.tmp.name, e.src, e.haveSrc, first)
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("encoder: %w", err)
	}
	growPipe(pw, e.frameSize)
	e.cmd = command(e.ctx, e.ffmpeg, args...)
	// ffmpeg reads the pipe directly; no copying goroutine sits in between.
	e.cmd.Stdin = pr
	e.cmd.Stderr = e.stderr
	e.cmd.WaitDelay = 5 * time.Second
	e.log.Debug("starting ffmpeg", "cmd", e.ffmpeg, "args", args)
	err = e.cmd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		return fmt.Errorf("encoder: start ffmpeg: %w", err)
	}
	e.stdin = pw
	e.procMu.Lock()
	e.proc = e.cmd.Process
	e.procMu.Unlock()
	go func() {
		e.waitErr = e.cmd.Wait()
		close(e.done)
	}()
	pixels := mkvBGR24
	if e.i420 {
		pixels = mkvI420
	}
	if e.mkv, err = newMKVWriter(pw, e.opts.Width, e.opts.Height, e.opts.FPS.Duration(1), pixels); err != nil {
		return e.writeFailed(err)
	}
	return nil
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

// ffmpegArgs builds the command line: the frames as Matroska on stdin as
// input 0, the source (for audio and subtitles) as input 1. first is the
// first frame's time: ffmpeg counts every input's times from its own
// start, so the frames' input is offset by it to keep the video where it
// was next to the audio.
func ffmpegArgs(opts EncoderOptions, tmp string, src probeResult, haveSrc bool, first time.Duration) []string {
	ext := strings.ToLower(filepath.Ext(opts.Output))
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		// Everything about the stream is in the Matroska header; without
		// these ffmpeg would buffer seconds of raw frames to guess it.
		"-f", "matroska", "-probesize", "32", "-analyzeduration", "1",
	}
	if first != 0 {
		args = append(args, "-itsoffset", strconv.FormatFloat(first.Seconds(), 'f', 6, 64))
	}
	args = append(args, "-i", "pipe:0")

	// With an unknown source (no ffprobe) still try: "1:a?" maps nothing
	// when there is no audio.
	withAudio := opts.Audio == AudioCopy && opts.AudioSource != "" && (!haveSrc || src.HasAudio)
	subs := keptSubtitles(opts, ext, src, haveSrc)
	if withAudio || len(subs) > 0 {
		if opts.MaxDuration > 0 {
			args = append(args, "-t", strconv.FormatFloat(opts.MaxDuration.Seconds(), 'f', 6, 64))
		}
		args = append(args, "-i", "file:"+opts.AudioSource)
	}
	args = append(args, "-map", "0:v:0")
	if withAudio {
		args = append(args, "-map", "1:a?")
	}
	for _, s := range subs {
		args = append(args, "-map", fmt.Sprintf("1:%d", s.stream.Index))
	}

	// Each frame keeps its time, in the source's clock, so that a
	// variable-rate video stays in step with its audio. AVI has no
	// timestamps, only a frame rate.
	tb := Rational{1, opts.TimeBase.Den}
	switch {
	case ext == ".avi":
		tb = Rational{opts.FPS.Den, opts.FPS.Num}
	case !opts.TimeBase.Valid():
		// Fine enough for any frame time, exact for the nominal rate.
		tb = Rational{1, opts.FPS.Num}
		for tb.Den < 10000 {
			tb.Den *= 2
		}
	}
	args = append(args, "-fps_mode:v", "passthrough", "-enc_time_base:v", tb.String())
	args = append(args, encoderArgs(opts.Codec, opts.Preset, opts.CRF, opts.Threads)...)
	if opts.Codec == CodecHEVCNVENC && (ext == ".mp4" || ext == ".m4v" || ext == ".mov") {
		// The tag Apple's players need to play HEVC from MP4 and MOV.
		args = append(args, "-tag:v", "hvc1")
	}
	var filters []string
	if w, h := EncodedSize(opts.Width, opts.Height); w != opts.Width || h != opts.Height {
		// H.264 in 4:2:0 needs even sizes: one black column or row goes
		// to the right or the bottom, so pixel coordinates stay valid.
		filters = append(filters, fmt.Sprintf("pad=%d:%d:0:0:black", w, h))
	}
	if opts.SAR.Valid() {
		filters = append(filters, "setsar="+opts.SAR.String())
	}
	if len(filters) > 0 {
		args = append(args, "-vf", strings.Join(filters, ","))
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
	for i, s := range subs {
		args = append(args, fmt.Sprintf("-c:s:%d", i), s.codec)
	}
	if haveSrc {
		args = append(args, streamArgs(opts, ext, src)...)
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

// TranscodeArgs is the ffmpeg command line that decodes input and encodes
// its video (and copies its audio) into output with the same encoder
// settings as an anonymize run: the floor that a run, which does the same
// decoding and encoding plus its own work, is measured against.
func TranscodeArgs(input, output string, codec Codec, preset Preset, crf, threads int) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		"-i", "file:" + input, "-map", "0:v:0", "-map", "0:a?"}
	args = append(args, encoderArgs(codec, preset, crf, threads)...)
	return append(args, "-c:a", "copy", "file:"+output)
}

// keptSubtitle is a source subtitle stream and the codec it is written
// with.
type keptSubtitle struct {
	stream Stream
	codec  string // "copy" or an encoder name
}

// Text subtitle codecs, which every container here can hold in its own
// text format.
var textSubtitles = []string{"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}

// keptSubtitles chooses how each subtitle stream of the source is
// written into a container with extension ext, warning in one line about
// those that cannot be.
func keptSubtitles(opts EncoderOptions, ext string, src probeResult, haveSrc bool) []keptSubtitle {
	if !haveSrc || opts.Subtitles == SubtitlesDrop {
		return nil
	}
	var kept []keptSubtitle
	var dropped []string
	for _, s := range src.Subtitles {
		text := slices.Contains(textSubtitles, s.Codec)
		switch {
		case ext == ".mkv" && s.Codec == "mov_text":
			kept = append(kept, keptSubtitle{s, "srt"})
		case ext == ".mkv":
			kept = append(kept, keptSubtitle{s, "copy"})
		case (ext == ".mp4" || ext == ".m4v" || ext == ".mov") && text:
			kept = append(kept, keptSubtitle{s, "mov_text"})
		case (ext == ".mp4" || ext == ".m4v") && s.Codec == "dvd_subtitle":
			kept = append(kept, keptSubtitle{s, "copy"})
		default:
			dropped = append(dropped, s.String())
		}
	}
	if len(dropped) > 0 {
		opts.Logger.Warn(fmt.Sprintf("subtitle streams %s cannot be stored in %s and are left out; write .mkv to keep them",
			strings.Join(dropped, ", "), ext))
	}
	return kept
}

// streamArgs carries the source's timecode and says, in one line each,
// what else of the source is left out.
func streamArgs(opts EncoderOptions, ext string, src probeResult) []string {
	var args []string
	var dropped []string
	for _, d := range src.Data {
		if d.Tag == "tmcd" && src.timecode != "" {
			continue // carried below, as the output's own timecode
		}
		dropped = append(dropped, d.String())
	}
	if src.timecode != "" {
		args = append(args, "-timecode", src.timecode)
		if ext == ".mp4" || ext == ".m4v" {
			args = append(args, "-write_tmcd", "1")
		}
	}
	if len(dropped) > 0 {
		opts.Logger.Warn(fmt.Sprintf("data streams %s are left out: anonymize does not copy data streams, which can hold location and sensor readings",
			strings.Join(dropped, ", ")))
	}
	if src.CoverArt {
		opts.Logger.Warn("the source's cover picture or thumbnail is left out: still pictures are not anonymized")
	}
	if src.attachments > 0 {
		opts.Logger.Warn(fmt.Sprintf("%d attachments (fonts, pictures) of the source are left out", src.attachments))
	}
	return args
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

func (e *ffmpegEncoder) Backend() string { return "ffmpeg " + string(e.opts.Codec) }

func (e *ffmpegEncoder) WriteFrame(frame gocv.Mat, pts time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.state != stateOpen:
		return errors.New("encoder: write after Close or Abort")
	case e.failed != nil:
		return e.failed
	}
	if err := checkFrame(&frame, e.opts.Width, e.opts.Height); err != nil {
		return err
	}
	if e.frames > 0 && pts <= e.last {
		return fmt.Errorf("encoder: frame %d is timed at %v, not after the previous frame's %v", e.frames, pts, e.last)
	}
	data, err := e.frameBytes(&frame)
	if err != nil {
		return err
	}
	if e.frames == 0 {
		if err := e.start(pts); err != nil {
			e.failed = err
			return err
		}
		e.first = pts
	}
	if err := e.mkv.writeFrame(data, pts-e.first); err != nil {
		e.failed = e.writeFailed(err)
		return e.failed
	}
	e.frames++
	e.last = pts
	return nil
}

// frameBytes returns the frame's pixels as they go to ffmpeg: converted
// to I420 when the encoder sends that, else BGR without a copy, unless the
// Mat is a view into a larger image whose rows are not adjacent.
func (e *ffmpegEncoder) frameBytes(frame *gocv.Mat) ([]byte, error) {
	src := frame
	if e.i420 || !frame.IsContinuous() {
		if !e.scratchN {
			e.scratch, e.scratchN = gocv.NewMat(), true
		}
		if e.i420 {
			gocv.CvtColor(*frame, &e.scratch, gocv.ColorBGRToYUVI420)
		} else {
			frame.CopyTo(&e.scratch)
		}
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
		return fmt.Errorf("encode %s: %w", e.opts.Output, e.ctx.Err())
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
	var err error
	if e.stdin != nil {
		e.stdin.Close() // EOF tells ffmpeg to flush and write the index
		<-e.done
	}
	switch {
	case e.failed != nil:
		err = e.failed
	case e.ctx.Err() != nil:
		err = fmt.Errorf("encode %s: %w", e.opts.Output, e.ctx.Err())
	case e.frames == 0:
		err = fmt.Errorf("encode %s: no frames were written", e.opts.Output)
	case e.waitErr != nil:
		err = e.ffmpegError(e.waitErr)
	}
	if err != nil {
		e.tmp.remove()
		return err
	}
	if lines := e.stderr.lastLines(5); len(lines) > 0 {
		e.log.Warn("ffmpeg reported problems", "stderr", strings.Join(lines, "; "))
	}
	return e.tmp.commit(e.opts.Output)
}

func (e *ffmpegEncoder) Abort() error {
	// Kill first, without the lock, so that a WriteFrame blocked on a full
	// pipe returns and releases it.
	e.kill()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != stateOpen {
		return nil
	}
	e.state = stateAborted
	defer e.release()
	if e.stdin != nil {
		// ffmpeg may have started after the kill above.
		e.kill()
		e.stdin.Close()
		<-e.done
	}
	return e.tmp.remove()
}

// kill stops ffmpeg if it runs. Killed, it leaves a partial file that
// Abort removes; closing its input instead would let it finish the file.
func (e *ffmpegEncoder) kill() {
	e.procMu.Lock()
	p := e.proc
	e.procMu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-e.done:
	default:
		p.Kill()
	}
}

func (e *ffmpegEncoder) release() {
	if e.scratchN {
		e.scratch.Close()
		e.scratchN = false
	}
}
