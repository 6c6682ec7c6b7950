package synthclip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
	"gocv.io/x/gocv"
)

// Write renders every frame and encodes the clip as MP4 at path with
// ffmpeg (H.264, yuv420p, the scene's exact rate; with Audio, a 440 Hz AAC
// tone as long as the video). The file appears at path only once complete.
func (s Scene) Write(ctx context.Context, path string, ffmpeg string) (err error) {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("generate clip: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := path + ".part"
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()

	var stderr tailBuffer
	cmd := exec.CommandContext(ctx, ffmpeg, s.ffmpegArgs(tmp)...)
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("encode %s: start ffmpeg %q (install ffmpeg or pass its path): %w", path, ffmpeg, err)
	}

	frame := gocv.NewMat()
	defer frame.Close()
	var writeErr error
	for i := 0; i < s.Frames && writeErr == nil; i++ {
		if ctx.Err() != nil {
			break
		}
		s.Render(i, &frame)
		buf, _ := frame.DataPtrUint8() // Render leaves frame continuous
		_, writeErr = stdin.Write(buf)
	}
	// Closing stdin is what tells ffmpeg the video has ended.
	closeErr := stdin.Close()
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("encode %s: %w", path, ctx.Err())
	case waitErr != nil:
		return fmt.Errorf("encode %s: ffmpeg failed: %w: %s", path, waitErr, stderr.String())
	case writeErr != nil:
		return fmt.Errorf("encode %s: feed frames to ffmpeg: %w", path, writeErr)
	case closeErr != nil && !errors.Is(closeErr, os.ErrClosed):
		return fmt.Errorf("encode %s: %w", path, closeErr)
	}
	if err := atomicfile.Publish(tmp, path); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return nil
}

func (s Scene) ffmpegArgs(out string) []string {
	rate := strconv.Itoa(s.FPSNum) + "/" + strconv.Itoa(s.FPSDen)
	args := []string{
		"-hide_banner", "-loglevel", "error", "-y",
		"-f", "rawvideo", "-pix_fmt", "bgr24",
		"-s", strconv.Itoa(s.Width) + "x" + strconv.Itoa(s.Height),
		"-framerate", rate, "-i", "pipe:0",
	}
	if s.Audio {
		// The tone is cut to the video's length twice over: by its own
		// duration, and by -shortest against AAC's frame padding.
		dur := strconv.FormatFloat(s.Duration(), 'f', 6, 64)
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+dur,
			"-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "128k", "-shortest")
	}
	args = append(args,
		// -tune psnr turns off the psychovisual tuning that trades colour
		// fidelity for perceived detail: the clip is measured, not watched,
		// and without it the figures' edges come back with colours within
		// a few units of passing for another palette colour.
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "psnr", "-crf", "16", "-pix_fmt", "yuv420p",
		"-r", rate, "-movflags", "+faststart",
		// The temporary name has no extension to guess the format from.
		"-f", "mp4", out)
	return args
}

// tailBuffer keeps the last few KiB of ffmpeg's error output: enough for
// the message that explains a failure, without growing on a chatty run.
type tailBuffer struct{ b []byte }

const tailMax = 4096

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = t.b[len(t.b)-tailMax:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	s := strings.TrimSpace(string(bytes.ToValidUTF8(t.b, nil)))
	if s == "" {
		return "no error output"
	}
	return s
}
