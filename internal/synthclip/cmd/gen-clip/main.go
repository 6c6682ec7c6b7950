// Command gen-clip writes the synthetic test and demo clip (see package
// synthclip): people-like figures in the colours the synthetic models
// recognise, over a textured background.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/anonymize-dev/anonymize/internal/synthclip"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-clip:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen-clip", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "output `path` of the MP4 clip (required)")
	width := fs.Int("width", 640, "frame width in pixels (even)")
	height := fs.Int("height", 360, "frame height in pixels (even)")
	frames := fs.Int("frames", 90, "number of frames")
	audio := fs.Bool("audio", true, "add a 440 Hz AAC tone track")
	seed := fs.Int64("seed", 0, "seed of the background noise")
	ffmpeg := fs.String("ffmpeg", "ffmpeg", "ffmpeg executable")
	disguise := disguiseFlag{}
	fs.Var(disguise, "disguise", "`LABEL:FRAME,FRAME,...` draws the figure's body in a colour the synthetic detector does not know in those frames, "+
		"so it misses the person there; repeatable (labels: "+synthclip.LabelWalker+", "+synthclip.LabelNoNose+", "+synthclip.LabelDiagonal+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("usage: gen-clip -out PATH [-width W -height H -frames N -audio=BOOL]")
	}
	bin, err := exec.LookPath(*ffmpeg)
	if err != nil {
		return fmt.Errorf("find ffmpeg: %w (install it, or pass its path with -ffmpeg)", err)
	}
	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create output folder: %w", err)
		}
	}
	scene := synthclip.DefaultScene(*width, *height, *frames)
	scene.Audio = *audio
	if len(disguise) > 0 {
		scene.Disguise = disguise
	}
	scene.Seed = *seed
	return scene.Write(ctx, *out, bin)
}

// disguiseFlag collects -disguise LABEL:FRAME,FRAME,... values.
type disguiseFlag map[string][]int

func (d disguiseFlag) String() string { return fmt.Sprint(map[string][]int(d)) }

func (d disguiseFlag) Set(v string) error {
	label, list, ok := strings.Cut(v, ":")
	if !ok || label == "" || list == "" {
		return fmt.Errorf("want LABEL:FRAME,FRAME,..., got %q", v)
	}
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return fmt.Errorf("frame %q of %s is not a frame index", f, label)
		}
		d[label] = append(d[label], n)
	}
	return nil
}
