package video

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gocv.io/x/gocv"
)

// StreamMode says whether a kind of the source's streams (audio,
// subtitles) is carried over.
type StreamMode int

const (
	// Copy carries the streams over: audio unchanged, or as AAC when the
	// output container cannot hold its codec; subtitles where the output
	// container can hold them (text subtitles in its own text format),
	// with a warning about the others.
	Copy StreamMode = iota
	// Drop leaves them out.
	Drop
)

// Each kind of stream has its mode; they share the type and its values.
type (
	AudioMode    = StreamMode
	SubtitleMode = StreamMode
)

// The modes under the names of their streams.
const (
	AudioCopy     = Copy
	AudioDrop     = Drop
	SubtitlesCopy = Copy
	SubtitlesDrop = Drop
)

// String returns the mode as a command-line flag spells it.
func (m StreamMode) String() string {
	switch m {
	case Copy:
		return "copy"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("StreamMode(%d)", int(m))
}

// Set parses "copy" or "drop" into m, as a pflag.Value.
func (m *StreamMode) Set(s string) error {
	v, err := parseStreamMode("stream", s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Type names the value in the flag's help.
func (*StreamMode) Type() string { return "mode" }

// ParseAudioMode parses "copy" or "drop", as a command-line flag spells them.
func ParseAudioMode(s string) (AudioMode, error) { return parseStreamMode("audio", s) }

// ParseSubtitleMode parses "copy" or "drop", as a command-line flag spells
// them.
func ParseSubtitleMode(s string) (SubtitleMode, error) { return parseStreamMode("subtitle", s) }

func parseStreamMode(kind, s string) (StreamMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "copy":
		return Copy, nil
	case "drop":
		return Drop, nil
	}
	return 0, fmt.Errorf("invalid %s mode %q: use copy or drop", kind, s)
}

// Encoder settings: CRF 18 is visually close to lossless for x264, which
// matters because the output replaces footage people care about;
// veryfast keeps the encoder from being the slowest stage on a GPU
// machine (see README, Measuring speed). The command's defaults are these.
const (
	DefaultCRF            = 18
	DefaultPreset  Preset = "veryfast"
	MinCRF, MaxCRF        = 1, 51
)

// EncoderOptions configures NewEncoder.
type EncoderOptions struct {
	// Output is the final path. The container follows its extension
	// (.mp4, .m4v, .mov, .mkv or .avi).
	Output string
	// TempDir, when set, holds the partial file until the final rename,
	// instead of Output's folder; it must be on the same file system.
	TempDir string
	// Width and Height are the frame size. H.264 in 4:2:0 needs even
	// sizes, so odd ones gain one black column at the right or row at the
	// bottom (see EncodedSize).
	Width, Height int
	// FPS is the nominal frame rate (for a variable-rate video, the
	// average): the encoder's rate control uses it. Every frame keeps the
	// time WriteFrame gives it, except in AVI and the OpenCV fallback,
	// which only know a constant rate.
	FPS Rational
	// TimeBase is the clock the output's timestamps are counted in,
	// normally the source's, so that they come out exactly as they went
	// in; zero means a clock of at least 10 kHz in which frames at FPS
	// fall on exact ticks.
	TimeBase Rational
	// SAR is the pixel shape to record (non-square pixels of anamorphic
	// video); zero means square.
	SAR Rational
	// VariableRate says the frames are unevenly spaced, for a warning
	// where the output cannot keep that (the OpenCV fallback).
	VariableRate bool
	CRF          int    // x264 quality, MinCRF (best) to MaxCRF; 0 means DefaultCRF
	Preset       Preset // x264 preset; "" means DefaultPreset
	// Codec is the video encoder; "" means libx264, auto NVENC H.264 where
	// a test encode works (see ResolveCodec).
	Codec Codec
	// Threads caps libx264's threads; 0 leaves it to x264 (about 1.5 per
	// core), which is right unless other work shares the machine.
	Threads int
	Audio   AudioMode
	// Subtitles says whether the source's subtitle streams are copied.
	Subtitles SubtitleMode
	// AudioSource is the input video. Its audio and subtitles are copied
	// (as Audio and Subtitles say), its creation time, title, timecode and
	// colour description are carried over; location and device metadata,
	// data streams and cover pictures are not. "" means none.
	AudioSource string
	// MaxDuration, when positive, cuts the audio and subtitles to this
	// length; set it when only the first frames of the input are processed.
	MaxDuration time.Duration
	// FFmpegPath is the ffmpeg binary; "" looks up "ffmpeg" on PATH and, if
	// there is none, falls back to OpenCV's writer (MPEG-4 part 2, no
	// audio). A path that does not exist is an error, not a fallback.
	FFmpegPath string
	Logger     *slog.Logger // nil discards log messages

	// lookPath replaces exec.LookPath in tests.
	lookPath func(file string) (string, error)
}

// ErrAborted is returned by Close after Abort.
var ErrAborted = errors.New("encoding was aborted")

// Encoder writes frames to a video file. Frames go to a temporary file
// beside the output, which only Close moves into place, so an output path
// either holds a complete video or nothing. The temporary file is locked
// while it is written: a later encoder for the same output removes one
// that a killed process left behind.
//
// Every Encoder must end with Close or Abort, which release the ffmpeg
// process and the goroutine waiting for it. WriteFrame and Close must be
// called from one goroutine; Abort may also be called from another one,
// for example to stop a WriteFrame blocked on a stalled ffmpeg.
type Encoder interface {
	// WriteFrame appends a BGR frame of the configured size, shown at pts
	// (counted from the start of the source, as Reader.Read returns it;
	// each frame later than the one before). The encoder is done with the
	// frame's memory when WriteFrame returns.
	WriteFrame(frame gocv.Mat, pts time.Duration) error
	// Close finishes the file and renames it onto the output; on failure it
	// removes the temporary file. Calling it again returns the same result.
	Close() error
	// Abort stops encoding and removes the temporary file. It is a no-op
	// after Close or a previous Abort.
	Abort() error
	// Backend names the encoder in use: "ffmpeg libx264", "ffmpeg
	// h264_nvenc", ... or "opencv mp4v".
	Backend() string
}

// NewEncoder starts an encoder for opts. It uses ffmpeg (H.264, audio)
// when available and OpenCV's writer otherwise; ctx bounds the ffmpeg
// process, which is killed when ctx is cancelled.
func NewEncoder(ctx context.Context, opts EncoderOptions) (Encoder, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.lookPath == nil {
		opts.lookPath = exec.LookPath
	}
	if opts.CRF == 0 {
		opts.CRF = DefaultCRF
	}
	if opts.Preset == "" {
		opts.Preset = DefaultPreset
	}
	switch {
	case opts.Output == "":
		return nil, errors.New("encoder: no output path given")
	case opts.Width <= 0 || opts.Height <= 0:
		return nil, fmt.Errorf("encoder: invalid frame size %dx%d", opts.Width, opts.Height)
	case !opts.FPS.Valid():
		return nil, fmt.Errorf("encoder: invalid frame rate %s", opts.FPS)
	case opts.CRF < MinCRF || opts.CRF > MaxCRF:
		return nil, fmt.Errorf("encoder: CRF %d is out of range; use %d to %d (lower is better quality)", opts.CRF, MinCRF, MaxCRF)
	case opts.Audio != Copy && opts.Audio != Drop:
		return nil, fmt.Errorf("encoder: invalid audio mode %v", opts.Audio)
	case opts.Subtitles != Copy && opts.Subtitles != Drop:
		return nil, fmt.Errorf("encoder: invalid subtitle mode %v", opts.Subtitles)
	case opts.Threads < 0:
		return nil, fmt.Errorf("encoder: %d threads", opts.Threads)
	case opts.Codec == CodecHEVCNVENC && strings.EqualFold(filepath.Ext(opts.Output), ".avi"):
		return nil, fmt.Errorf("encoder: HEVC cannot be stored in AVI (%s): use .mp4, .mkv or .mov, or --encoder h264_nvenc", opts.Output)
	}
	if opts.Codec != "" {
		if _, err := ParseCodec(string(opts.Codec)); err != nil {
			return nil, fmt.Errorf("encoder: %w", err)
		}
	}
	if err := CheckOutputExt(opts.Output); err != nil {
		return nil, err
	}
	ffmpeg, err := findFFmpeg(opts)
	if err != nil {
		return nil, err
	}
	if ffmpeg == "" {
		opts.Logger.Warn("ffmpeg not found on PATH; writing with OpenCV instead: audio and subtitles are dropped, frames are evenly spaced and quality is lower (install ffmpeg for H.264 output that keeps them)",
			"output", opts.Output)
		return newCVEncoder(opts)
	}
	return newFFmpegEncoder(ctx, opts, ffmpeg)
}

// findFFmpeg returns the ffmpeg binary to use, or "" to fall back to
// OpenCV.
func findFFmpeg(opts EncoderOptions) (string, error) {
	if opts.FFmpegPath == "" {
		p, err := opts.lookPath("ffmpeg")
		if err != nil {
			return "", nil
		}
		return p, nil
	}
	p, err := opts.lookPath(opts.FFmpegPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("ffmpeg %s not found; fix the path or leave it empty to use ffmpeg from PATH", opts.FFmpegPath)
		}
		return "", fmt.Errorf("ffmpeg %s: %w", opts.FFmpegPath, err)
	}
	return p, nil
}

// checkFrame makes sure frame matches the size and layout the encoder was
// set up for; anything else would garble the raw stream.
func checkFrame(frame *gocv.Mat, w, h int) error {
	if frame.Empty() {
		return errors.New("encoder: empty frame")
	}
	if frame.Cols() != w || frame.Rows() != h || frame.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("encoder: frame is %dx%d of type %v, want %dx%d BGR (CV_8UC3)",
			frame.Cols(), frame.Rows(), frame.Type(), w, h)
	}
	return nil
}

// EncodedSize is the size a w×h video is written at: H.264 in 4:2:0
// needs even sizes, so an odd width or height gains one black column at
// the right or row at the bottom. Padding, rather than cropping, keeps
// every pixel of the source and its coordinates.
func EncodedSize(w, h int) (int, int) {
	return w + w%2, h + h%2
}
