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

// AudioMode says what happens to the source's audio.
type AudioMode int

const (
	// AudioCopy carries the source's audio streams over unchanged, or as
	// AAC when the output container cannot hold their codec.
	AudioCopy AudioMode = iota
	// AudioDrop writes a video without audio.
	AudioDrop
)

// String returns the mode as ParseAudioMode accepts it.
func (m AudioMode) String() string {
	switch m {
	case AudioCopy:
		return "copy"
	case AudioDrop:
		return "drop"
	}
	return fmt.Sprintf("AudioMode(%d)", int(m))
}

// ParseAudioMode parses "copy" or "drop", as a command-line flag spells them.
func ParseAudioMode(s string) (AudioMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "copy":
		return AudioCopy, nil
	case "drop":
		return AudioDrop, nil
	}
	return 0, fmt.Errorf("invalid audio mode %q: use copy or drop", s)
}

// Default encoder settings: CRF 18 is visually close to lossless for x264,
// which matters because the output replaces footage people care about.
const (
	DefaultCRF    = 18
	DefaultPreset = "medium"
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
	// sizes, so odd ones gain one black row or column.
	Width, Height int
	FPS           Rational // exact output rate, normally the source's
	CRF           int      // x264 quality, 1 (best) to 51; 0 means DefaultCRF
	Preset        string   // x264 preset; "" means DefaultPreset
	Audio         AudioMode
	// AudioSource is the input video. Its audio is copied (with AudioCopy),
	// and its creation time, title and colour description are carried
	// over; location and device metadata are not. "" means none.
	AudioSource string
	// MaxDuration, when positive, cuts the audio to this length; set it when
	// only the first frames of the input are processed.
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
// either holds a complete video or nothing.
//
// Every Encoder must end with Close or Abort, which release the ffmpeg
// process and the goroutine waiting for it. WriteFrame and Close must be
// called from one goroutine; Abort may also be called from another one,
// for example to stop a WriteFrame blocked on a stalled ffmpeg.
type Encoder interface {
	// WriteFrame appends a BGR frame of the configured size. The encoder
	// is done with the frame's memory when WriteFrame returns.
	WriteFrame(frame gocv.Mat) error
	// Close finishes the file and renames it onto the output; on failure it
	// removes the temporary file. Calling it again returns the same result.
	Close() error
	// Abort stops encoding and removes the temporary file. It is a no-op
	// after Close or a previous Abort.
	Abort() error
	// Backend names the encoder in use: "ffmpeg libx264" or "opencv mp4v".
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
	case opts.CRF < 0 || opts.CRF > 51:
		return nil, fmt.Errorf("encoder: CRF %d is out of range; use 1 to 51 (lower is better quality)", opts.CRF)
	case opts.Audio != AudioCopy && opts.Audio != AudioDrop:
		return nil, fmt.Errorf("encoder: invalid audio mode %v", opts.Audio)
	}
	if err := checkOutputExt(opts.Output); err != nil {
		return nil, err
	}
	ffmpeg, err := findFFmpeg(opts)
	if err != nil {
		return nil, err
	}
	if ffmpeg == "" {
		opts.Logger.Warn("ffmpeg not found on PATH; writing with OpenCV instead: audio is dropped and quality is lower (install ffmpeg for H.264 output with audio)",
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

// tempGlob matches the temporary files an encoder for output creates.
func tempGlob(output string) string {
	dir, base := filepath.Split(output)
	return filepath.Join(dir, "."+base+".anonymize-*"+filepath.Ext(base))
}
